// libFuzzer target: "state_file" of fuzz/readers.h.
#include "fuzz/fuzz_input.h"

HAX_FUZZ_TARGET("state_file")
