// libFuzzer target: "binary_dataset_sealed" of fuzz/readers.h.
#include "fuzz/fuzz_input.h"

HAX_FUZZ_TARGET("binary_dataset_sealed")
