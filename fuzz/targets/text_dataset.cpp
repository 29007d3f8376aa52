// libFuzzer target: fuzz/readers.h read_text_dataset.
#include "fuzz/fuzz_input.h"

HAX_FUZZ_TARGET(read_text_dataset)
