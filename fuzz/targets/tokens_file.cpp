// libFuzzer target: "tokens_file" of fuzz/readers.h.
#include "fuzz/fuzz_input.h"

HAX_FUZZ_TARGET("tokens_file")
