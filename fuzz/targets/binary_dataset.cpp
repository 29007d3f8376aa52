// libFuzzer target: "binary_dataset" of fuzz/readers.h.
#include "fuzz/fuzz_input.h"

HAX_FUZZ_TARGET("binary_dataset")
