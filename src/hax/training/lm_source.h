// Language-model samples from a token stream (a split of a prepared corpus, data/lm_corpus.h): non-overlapping
// windows of context_length + 1 tokens, the inputs and their next-token targets, every position scored. Documents
// are packed across their eos boundaries, as usual in LM pre-training: a window may span several documents.
//
// Window w covers tokens [w * C, w * C + C + 1), so consecutive windows share one token (the last target of one is
// the first input of the next) and every token but the first is a target once per pass. The training order is a
// seeded shuffle of the windows, a new one each pass (epoch), a function of the position only: a resumed run reads
// the same windows as an uninterrupted one. Validation reads windows in order (the first N are the fixed held-out
// set).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "hax/training/sample_source.h"

namespace hax::training {

struct LmWindowOptions {
  int context_length = 512;        // C: input tokens per window
  bool shuffle = true;             // training: a seeded permutation per epoch; validation: false (in order)
  std::uint64_t seed = 1;          // of the permutations
  std::uint64_t max_windows = 0;   // use only the first this many windows (0: all)
};

// Windows over `tokens`, which must outlive the source. `name` says where the tokens come from (messages,
// describe()). hax::Error when the stream is shorter than one window.
std::unique_ptr<SampleSource> lm_window_source(std::span<const std::uint16_t> tokens, const LmWindowOptions& options,
                                               std::string name);

}  // namespace hax::training
