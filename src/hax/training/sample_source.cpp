#include "hax/training/sample_source.h"

#include <algorithm>
#include <optional>

#include "hax/data/dataset_binary.h"

namespace hax::training {
namespace {

class DatasetSource final : public SampleSource {
 public:
  explicit DatasetSource(const std::string& path) : path_(path), dataset_(path) {
    check(dataset_.size() > 0, "dataset '", path, "' holds no samples");
    for (std::uint64_t i = 0; i < dataset_.size(); ++i) longest_ = std::max(longest_, dataset_.length(i));
  }
  std::uint64_t size() const override { return dataset_.size(); }
  void read(std::uint64_t index, data::Sample& out) override { out = dataset_.sample(index); }
  std::string describe() const override { return cat(path_, " (", dataset_.size(), " samples)"); }
  std::uint32_t longest() const override { return longest_; }  // the file's pad_len may be longer

 private:
  std::string path_;
  data::BinaryDataset dataset_;
  std::uint32_t longest_ = 0;
};

// Generation is sequential: reading index i after i-1 costs one sample; any other jump restarts the stream there.
class JointRecallSource final : public SampleSource {
 public:
  JointRecallSource(const data::JointRecallConfig& config, data::Split split) : config_(config), split_(split) {
    config_.validate();
  }
  std::uint64_t size() const override { return config_.split_size(split_); }
  void read(std::uint64_t index, data::Sample& out) override {
    check(index < size(), "sample ", index, " is past the end of the ", data::split_name(split_), " split");
    if (!generator_ || index != next_) generator_.emplace(config_, split_, index);
    generator_->next(out);
    next_ = index + 1;
  }
  std::string describe() const override {
    return cat("joint-recall ", data::split_name(split_), " split, seed ", config_.seed, ", generated on the fly (",
               size(), " samples)");
  }
  std::uint32_t longest() const override { return config_.pad_len(); }

 private:
  data::JointRecallConfig config_;
  data::Split split_;
  std::optional<data::JointRecallGenerator> generator_;
  std::uint64_t next_ = 0;
};

}  // namespace

std::unique_ptr<SampleSource> open_dataset(const std::string& path) { return std::make_unique<DatasetSource>(path); }

std::unique_ptr<SampleSource> joint_recall_source(const data::JointRecallConfig& config, data::Split split) {
  return std::make_unique<JointRecallSource>(config, split);
}

}  // namespace hax::training
