// libFuzzer target: fuzz/readers.h read_tokens_file.
#include "fuzz/fuzz_input.h"

HAX_FUZZ_TARGET(read_tokens_file)
