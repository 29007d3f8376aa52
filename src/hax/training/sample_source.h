// Where training and evaluation samples come from: a `hax gen` binary file (mmap'd, random access) or the
// joint-recall generator run on the fly. Both are read by index, so a resumed run continues at its data position.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "hax/data/joint_recall.h"
#include "hax/data/sample.h"

namespace hax::training {

class SampleSource {
 public:
  virtual ~SampleSource() = default;
  virtual std::uint64_t size() const = 0;                          // samples in one pass
  virtual void read(std::uint64_t index, data::Sample& out) = 0;   // index < size(); sequential reads are fastest
  virtual std::string describe() const = 0;
  virtual std::uint32_t longest() const = 0;  // no sample is longer: sizes the worst batch
  // The training stream's sample at `position` (every sample drawn so far counts, across passes). By default the
  // source repeated in index order; a source may reorder each pass (lm_source.h reshuffles every epoch). A function
  // of the position only, so a resumed run reads what the uninterrupted one would have.
  virtual void read_stream(std::uint64_t position, data::Sample& out) { read(position % size(), out); }
};

// A binary dataset written by `hax gen` (validated when opened).
std::unique_ptr<SampleSource> open_dataset(const std::string& path);

// A split of the joint-recall stream, generated as it is read.
std::unique_ptr<SampleSource> joint_recall_source(const data::JointRecallConfig& config, data::Split split);

}  // namespace hax::training
