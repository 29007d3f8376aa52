// libFuzzer target: fuzz/readers.h read_experiment.
#include "fuzz/fuzz_input.h"

HAX_FUZZ_TARGET(read_experiment)
