// libFuzzer target: "safetensors" of fuzz/readers.h.
#include "fuzz/fuzz_input.h"

HAX_FUZZ_TARGET("safetensors")
