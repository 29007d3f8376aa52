// libFuzzer target: fuzz/readers.h read_binary_dataset.
#include "fuzz/fuzz_input.h"

HAX_FUZZ_TARGET(read_binary_dataset)
