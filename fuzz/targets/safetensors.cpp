// libFuzzer target: fuzz/readers.h read_safetensors.
#include "fuzz/fuzz_input.h"

HAX_FUZZ_TARGET(read_safetensors)
