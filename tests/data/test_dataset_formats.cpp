#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "../support/test_support.h"
#include "hax/data/joint_recall.h"
#include "hax/data/mqar.h"
#include "hax/engine/error.h"
#include "hax/data/dataset_binary.h"
#include "hax/data/dataset_text.h"

namespace hax::data {
namespace {

const char* const kFixture = HAX_SOURCE_DIR "/tests/fixtures/joint_recall_seed1_train_first288.txt";

DatasetInfo joint_recall_info() {
  const data::JointRecallConfig config;
  return {"joint-recall", {{"seed", 1}}, config.pad_len(), data::kJointRecallPad, 100};
}

// The fixture's samples, with the cells the generator's order gives them.
std::vector<Sample> fixture_samples() {
  auto samples = read_text_dataset(kFixture, data::kJointRecallPad);
  for (std::size_t i = 0; i < samples.size(); ++i) samples[i].cell = data::JointRecallConfig{}.cell_at(i);
  return samples;
}

void write_binary(const std::filesystem::path& path, const DatasetInfo& info,
                  const std::vector<Sample>& samples) {
  BinaryDatasetWriter writer(path, info);
  for (const auto& sample : samples) writer.add(sample);
  writer.finish();
}

std::string dataset_error(const std::filesystem::path& path) {
  try {
    BinaryDataset dataset(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "opened";
}

class BinaryFile : public ::testing::Test {
 protected:
  void SetUp() override { write_binary(path_, joint_recall_info(), fixture_samples()); }

  std::string damaged(const std::function<void(std::string&)>& damage) {
    std::string bytes = testing::read_file(path_);
    damage(bytes);
    const auto broken = dir_ / "broken.bin";
    testing::write_file(broken, bytes);
    return dataset_error(broken);
  }

  testing::ScratchDir dir_;
  std::filesystem::path path_ = dir_ / "data.bin";
};

TEST(TextFormat, ReadingAndWritingTheFixtureIsTheIdentity) {
  const auto samples = read_text_dataset(kFixture, data::kJointRecallPad);
  ASSERT_EQ(samples.size(), 288u);
  EXPECT_EQ(samples[0].tokens.size(), 2 + 2 * 5 * (1 + 2 * 5));
  std::ostringstream text;
  TextDatasetWriter writer(text, 1058, data::kJointRecallPad);
  for (const auto& sample : samples) writer.add(sample);
  EXPECT_EQ(text.str(), testing::read_file(kFixture));
}

TEST(TextFormat, MalformedInputNamesFileAndLine) {
  const testing::ScratchDir dir;
  const auto path = dir / "bad.txt";
  testing::write_file(path, "1 5 3 3\n0 1 0 0\n1 5 3\n0 0 0\n");
  try {
    read_text_dataset(path, 3);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.txt:3: 3 tokens where the first sample has 4"), std::string::npos)
        << e.what();
  }
  testing::write_file(path, "1 5 3 3\n0 0 1 0\n");
  EXPECT_THROW(read_text_dataset(path, 3), Error);  // mask on padding
  testing::write_file(path, "1 x 3 3\n0 0 0 0\n");
  EXPECT_THROW(read_text_dataset(path, 3), Error);
  testing::write_file(path, "1 5 3 3\n");
  EXPECT_THROW(read_text_dataset(path, 3), Error);  // no mask line
}

TEST_F(BinaryFile, RoundTripsTheFixtureThroughTextBinaryText) {
  const BinaryDataset dataset(path_);
  ASSERT_EQ(dataset.size(), 288u);
  EXPECT_EQ(dataset.pad_len(), 1058u);
  EXPECT_EQ(dataset.pad_id(), 3);
  EXPECT_EQ(dataset.header().token_width, 1u);
  EXPECT_EQ(dataset.info().task, "joint-recall");
  EXPECT_EQ(dataset.info().params["seed"], 1);
  EXPECT_EQ(dataset.cell(0), (Cell{5, 5}));
  EXPECT_EQ(dataset.cell(287), (Cell{16, 16}));
  EXPECT_EQ(dataset.length(287), 1058u);
  std::ostringstream text;
  TextDatasetWriter writer(text, dataset.pad_len(), dataset.pad_id());
  for (std::uint64_t i = 0; i < dataset.size(); ++i) writer.add(dataset.sample(i));
  EXPECT_EQ(text.str(), testing::read_file(kFixture));
}

TEST_F(BinaryFile, ReadPaddedFillsPadAndZeroMask) {
  const BinaryDataset dataset(path_);
  std::vector<std::int32_t> tokens(dataset.pad_len(), -1);
  std::vector<std::uint8_t> mask(dataset.pad_len(), 7);
  dataset.read_padded(0, tokens.data(), mask.data());
  const auto expected = fixture_samples()[0];
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    EXPECT_EQ(tokens[t], t < expected.tokens.size() ? expected.tokens[t] : 3) << t;
    EXPECT_EQ(mask[t], t < expected.mask.size() ? expected.mask[t] : 0) << t;
  }
}

TEST_F(BinaryFile, TruncationIsDetected) {
  const auto size = std::filesystem::file_size(path_);
  for (std::uint64_t keep : {size - 1, size / 2, std::uint64_t{100}, std::uint64_t{3}, std::uint64_t{0}}) {
    const std::string error = damaged([&](std::string& bytes) { bytes.resize(keep); });
    EXPECT_NE(error.find("truncated"), std::string::npos) << keep << ": " << error;
    EXPECT_NE(error.find("broken.bin"), std::string::npos) << error;
  }
  EXPECT_NE(damaged([](std::string& bytes) { bytes += "extra"; }).find("unexpected bytes"), std::string::npos);
}

TEST_F(BinaryFile, AnyFlippedByteIsDetected) {
  const auto size = std::filesystem::file_size(path_);
  // Header fields (vocab, pad_len, offsets, the checksum itself), metadata, data and index.
  for (std::uint64_t at : {std::uint64_t{32}, std::uint64_t{40}, std::uint64_t{64}, std::uint64_t{100},
                           std::uint64_t{130}, size / 2, size - 1}) {
    const std::string error = damaged([&](std::string& bytes) { bytes[at] ^= 0x10; });
    EXPECT_NE(error.find("checksum mismatch"), std::string::npos) << at << ": " << error;
  }
  EXPECT_NE(damaged([](std::string& bytes) { bytes[0] = 'X'; }).find("bad magic"), std::string::npos);
  EXPECT_NE(damaged([](std::string& bytes) { bytes[8] = 9; }).find("version 9"), std::string::npos);
  EXPECT_NE(dataset_error(kFixture).find("bad magic"), std::string::npos);
  EXPECT_NE(dataset_error(dir_ / "missing.bin").find("missing.bin"), std::string::npos);
}

TEST(BinaryFormat, TwoByteTokensRoundTrip) {
  const testing::ScratchDir dir;
  data::MqarConfig config;
  config.train_size = 20;
  const data::MqarGenerator generator(config);
  std::vector<Sample> samples(20);
  for (std::uint64_t i = 0; i < samples.size(); ++i) generator.generate(data::Split::train, i, samples[i]);
  write_binary(dir / "mqar.bin", {"mqar", {}, config.pad_len(), data::kMqarPad, 8192}, samples);
  const BinaryDataset dataset(dir / "mqar.bin");
  EXPECT_EQ(dataset.header().token_width, 2u);
  for (std::uint64_t i = 0; i < samples.size(); ++i) {
    EXPECT_EQ(dataset.sample(i).tokens, samples[i].tokens);
    EXPECT_EQ(dataset.sample(i).mask, samples[i].mask);
    EXPECT_EQ(dataset.cell(i), (Cell{1, 16}));
  }
}

// Found by fuzzing (fuzz/regressions/binary_dataset_sealed/): sample() allocated pad_len tokens before trimming them
// to the sample's length, so a header claiming a pad_len of 2^30 cost 5 GiB per sample read; and a pad_len past
// 2^31 - 1 overflowed the int lengths of a batch.
TEST(BinaryFormat, ASampleCostsItsOwnLengthWhateverThePadLenAndPadLenFitsAnInt) {
  const testing::ScratchDir dir;
  const std::vector<Sample> samples = {fixture_samples()[0]};
  DatasetInfo info = joint_recall_info();
  info.pad_len = 1u << 30;
  write_binary(dir / "long_pad.bin", info, samples);
  const BinaryDataset dataset(dir / "long_pad.bin");
  EXPECT_EQ(dataset.sample(0).tokens, samples[0].tokens);
  info.pad_len = (1u << 31) + 5;
  write_binary(dir / "too_long.bin", info, samples);
  EXPECT_NE(dataset_error(dir / "too_long.bin").find("pad_len 2147483653 is longer than any sequence hax can hold"),
            std::string::npos)
      << dataset_error(dir / "too_long.bin");
}

TEST(BinaryFormat, EmptyDatasetIsValid) {
  const testing::ScratchDir dir;
  write_binary(dir / "empty.bin", joint_recall_info(), {});
  EXPECT_EQ(BinaryDataset(dir / "empty.bin").size(), 0u);
}

TEST(BinaryFormat, BadSamplesAbortTheWriteAndLeaveNoFile) {
  const testing::ScratchDir dir;
  auto samples = fixture_samples();
  samples.resize(3);
  samples[2].tokens[5] = 100;  // outside the vocabulary of 100
  EXPECT_THROW(write_binary(dir / "out.bin", joint_recall_info(), samples), Error);
  samples[2].tokens[5] = 10;
  samples[2].mask.pop_back();
  EXPECT_THROW(write_binary(dir / "out.bin", joint_recall_info(), samples), Error);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

}  // namespace
}  // namespace hax::data
