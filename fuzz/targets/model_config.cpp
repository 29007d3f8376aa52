// libFuzzer target: fuzz/readers.h read_model_config.
#include "fuzz/fuzz_input.h"

HAX_FUZZ_TARGET(read_model_config)
