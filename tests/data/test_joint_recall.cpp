#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "hax/data/joint_recall.h"
#include "hax/engine/error.h"
#include "hax/io/dataset_text.h"

namespace hax::data {
namespace {

const char* const kFixture = HAX_SOURCE_DIR "/tests/fixtures/joint_recall_seed1_train_first288.txt";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string as_text(const JointRecallConfig& config, const std::vector<Sample>& samples) {
  std::ostringstream text;
  io::TextDatasetWriter writer(text, config.pad_len(), kJointRecallPad);
  for (const Sample& sample : samples) writer.add(sample);
  return text.str();
}

TEST(JointRecall, FirstTrainSamplesOfSeedOneMatchThePaperByteForByte) {
  const JointRecallConfig config;
  EXPECT_EQ(config.pad_len(), 1058u);
  EXPECT_EQ(config.split_size(Split::train), 1440000u);
  EXPECT_EQ(config.split_size(Split::valid), 14400u);
  const std::string expected = read_file(kFixture);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(as_text(config, generate_joint_recall(config, Split::train, 0, 288)), expected);
}
}  // namespace
}  // namespace hax::data
