// libFuzzer target: "text_dataset" of fuzz/readers.h.
#include "fuzz/fuzz_input.h"

HAX_FUZZ_TARGET("text_dataset")
