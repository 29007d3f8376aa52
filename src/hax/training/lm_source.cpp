#include "hax/training/lm_source.h"

#include <numeric>
#include <vector>

#include "hax/engine/error.h"
#include "hax/engine/rng.h"

namespace hax::training {
namespace {

constexpr std::uint64_t kWindowOrder = 0x6c6d6f72646572;  // "lmorder": the stream of the epochs' permutations

class LmWindowSource final : public SampleSource {
 public:
  LmWindowSource(std::span<const std::uint16_t> tokens, const LmWindowOptions& o, std::string name)
      : tokens_(tokens), options_(o), name_(std::move(name)) {
    check(o.context_length > 0, name_, ": the context length must be > 0, got ", o.context_length);
    const std::uint64_t C = static_cast<std::uint64_t>(o.context_length);
    windows_ = tokens.size() > C ? (tokens.size() - 1) / C : 0;
    check(windows_ > 0, name_, " holds ", tokens.size(), " tokens, fewer than one window of ", C + 1,
          " (context + 1): lower --context or use a larger corpus");
    if (o.max_windows > 0) windows_ = std::min(windows_, o.max_windows);
  }

  std::uint64_t size() const override { return windows_; }
  void read(std::uint64_t index, data::Sample& out) override {
    check(index < windows_, name_, ": window ", index, " is past the last (", windows_, " windows)");
    read_window(options_.shuffle ? permutation(0)[index] : index, out);
  }
  void read_stream(std::uint64_t position, data::Sample& out) override {
    const std::uint64_t epoch = position / windows_, index = position % windows_;
    read_window(options_.shuffle ? permutation(epoch)[index] : index, out);
  }
  std::string describe() const override {
    return cat(name_, ": ", tokens_.size(), " tokens, ", windows_, " windows of ", options_.context_length,
               options_.shuffle ? " (shuffled each epoch)" : " (in order)");
  }
  std::uint32_t longest() const override { return static_cast<std::uint32_t>(options_.context_length) + 1; }

 private:
  void read_window(std::uint64_t window, data::Sample& out) const {
    const std::size_t C = static_cast<std::size_t>(options_.context_length);
    const auto window_tokens = tokens_.subspan(window * C, C + 1);
    out.tokens.assign(window_tokens.begin(), window_tokens.end());
    out.mask.assign(C + 1, 1);
    out.mask.back() = 0;  // the last token is only a target
    out.cell = {};
  }

  // Fisher-Yates from the epoch's own stream; the current epoch's order is kept (one pass reads it in sequence).
  const std::vector<std::uint64_t>& permutation(std::uint64_t epoch) {
    if (epoch == order_epoch_ && !order_.empty()) return order_;
    order_.resize(windows_);
    std::iota(order_.begin(), order_.end(), std::uint64_t{0});
    Rng rng = Rng(options_.seed).fork(kWindowOrder).fork(epoch);
    for (std::uint64_t i = windows_ - 1; i > 0; --i) std::swap(order_[i], order_[rng.below(i + 1)]);
    order_epoch_ = epoch;
    return order_;
  }

  std::span<const std::uint16_t> tokens_;
  LmWindowOptions options_;
  std::string name_;
  std::uint64_t windows_ = 0;
  std::vector<std::uint64_t> order_;
  std::uint64_t order_epoch_ = 0;
};

}  // namespace

std::unique_ptr<SampleSource> lm_window_source(std::span<const std::uint16_t> tokens, const LmWindowOptions& options,
                                               std::string name) {
  return std::make_unique<LmWindowSource>(tokens, options, std::move(name));
}

}  // namespace hax::training
