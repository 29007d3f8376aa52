// libFuzzer target: fuzz/readers.h read_npy.
#include "fuzz/fuzz_input.h"

HAX_FUZZ_TARGET(read_npy)
