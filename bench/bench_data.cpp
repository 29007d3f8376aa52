// Data pipeline throughput: joint-recall generation and skipping, MQAR generation, binary write and read.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "hax/data/joint_recall.h"
#include "hax/data/mqar.h"
#include "hax/data/dataset_binary.h"

namespace {

using hax::data::Split;

constexpr std::uint64_t kSlice = 14400;  // 100 rounds of the 144 cells: the mix of lengths of the full split

std::vector<hax::data::Sample> joint_recall_slice() {
  static const auto samples = hax::data::generate_joint_recall({}, Split::train, 0, kSlice);
  return samples;
}

std::filesystem::path bench_file(const char* name) {
  return std::filesystem::temp_directory_path() / ("hax-bench-" + std::to_string(getpid()) + "-" + name);
}

hax::data::DatasetInfo joint_recall_info() {
  const hax::data::JointRecallConfig config;
  return {"joint-recall", {}, config.pad_len(), hax::data::kJointRecallPad, 100};
}

void write_slice(const std::filesystem::path& path) {
  hax::data::BinaryDatasetWriter writer(path, joint_recall_info());
  for (const auto& sample : joint_recall_slice()) writer.add(sample);
  writer.finish();
}

void BM_JointRecallGenerate(benchmark::State& state) {
  hax::data::JointRecallGenerator generator({}, Split::train);
  hax::data::Sample sample;
  for (auto _ : state) {
    generator.next(sample);
    benchmark::DoNotOptimize(sample.tokens.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_JointRecallGenerate);

// Positioning at an offset draws every earlier sample without building it.
void BM_JointRecallSkip(benchmark::State& state) {
  for (auto _ : state) {
    hax::data::JointRecallGenerator generator({}, Split::train, kSlice);
    benchmark::DoNotOptimize(generator.remaining());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kSlice));
}
BENCHMARK(BM_JointRecallSkip)->Unit(benchmark::kMillisecond);

void BM_MqarGenerate(benchmark::State& state) {
  const hax::data::MqarGenerator generator({});
  hax::data::Sample sample;
  std::uint64_t index = 0;
  for (auto _ : state) {
    generator.generate(Split::train, index++ % 100000, sample);
    benchmark::DoNotOptimize(sample.tokens.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MqarGenerate);

// Encoding, checksum, fsync and rename of 14,400 joint-recall samples.
void BM_BinaryWrite(benchmark::State& state) {
  joint_recall_slice();
  const auto path = bench_file("write.bin");
  for (auto _ : state) write_slice(path);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kSlice));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(std::filesystem::file_size(path)));
  std::filesystem::remove(path);
}
BENCHMARK(BM_BinaryWrite)->Unit(benchmark::kMillisecond);

// Opening validates everything: checksum, offsets, every token id.
void BM_BinaryOpen(benchmark::State& state) {
  const auto path = bench_file("open.bin");
  write_slice(path);
  for (auto _ : state) {
    const hax::data::BinaryDataset dataset(path);
    benchmark::DoNotOptimize(dataset.size());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(std::filesystem::file_size(path)));
  std::filesystem::remove(path);
}
BENCHMARK(BM_BinaryOpen)->Unit(benchmark::kMillisecond);

// What the trainer does per sample: a padded copy into the batch.
void BM_BinaryReadPadded(benchmark::State& state) {
  const auto path = bench_file("read.bin");
  write_slice(path);
  const hax::data::BinaryDataset dataset(path);
  std::vector<std::int32_t> tokens(dataset.pad_len());
  std::vector<std::uint8_t> mask(dataset.pad_len());
  std::uint64_t i = 0;
  for (auto _ : state) {
    dataset.read_padded(i++ % dataset.size(), tokens.data(), mask.data());
    benchmark::DoNotOptimize(tokens.data());
  }
  state.SetItemsProcessed(state.iterations());
  std::filesystem::remove(path);
}
BENCHMARK(BM_BinaryReadPadded);

}  // namespace
