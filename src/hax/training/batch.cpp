#include "hax/training/batch.h"

namespace hax::training {

models::TokenBatch pack_samples(std::span<const data::Sample> samples) {
  models::TokenBatch tb;
  std::size_t rows = 0;
  for (const data::Sample& s : samples) rows += s.tokens.empty() ? 0 : s.tokens.size() - 1;
  tb.inputs.reserve(rows);
  tb.labels.reserve(rows);
  tb.scored.reserve(rows);
  for (const data::Sample& s : samples) {
    check(s.mask.size() == s.tokens.size(), "sample has ", s.tokens.size(), " tokens but ", s.mask.size(),
          " mask entries");
    const int length = s.tokens.empty() ? 0 : static_cast<int>(s.tokens.size()) - 1;
    check(s.tokens.empty() || s.mask.back() == 0, "sample scores a prediction past its last token");
    for (int t = 0; t < length; ++t) {
      tb.inputs.push_back(s.tokens[t]);
      tb.labels.push_back(s.tokens[t + 1]);
      tb.scored.push_back(s.mask[t]);
    }
    tb.batch.add_sequence(length);
  }
  return tb;
}

}  // namespace hax::training
