#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../support/test_support.h"
#include "hax/data/joint_recall.h"
#include "hax/engine/error.h"
#include "hax/data/dataset_text.h"

namespace hax::data {
namespace {

const char* const kFixture = HAX_SOURCE_DIR "/tests/fixtures/joint_recall_seed1_train_first288.txt";
const char* const kOracle = HAX_SOURCE_DIR "/tools/oracle/joint_recall_numpy.py";

std::string as_text(const JointRecallConfig& config, const std::vector<Sample>& samples) {
  std::ostringstream text;
  data::TextDatasetWriter writer(text, config.pad_len(), kJointRecallPad);
  for (const Sample& sample : samples) writer.add(sample);
  return text.str();
}

// One string per sample (its two lines), in stream order.
std::vector<std::string> split_samples(const std::string& text) {
  std::vector<std::string> samples;
  std::istringstream in(text);
  for (std::string tokens, mask; std::getline(in, tokens) && std::getline(in, mask);)
    samples.push_back(tokens + "\n" + mask + "\n");
  return samples;
}

// The numpy oracle's whole stream (train, valid, test) for `config`.
std::vector<std::string> oracle_stream(const JointRecallConfig& c) {
  const std::string command = "/usr/bin/python3 " + std::string(kOracle) + " --seed " + std::to_string(c.seed) +
                              " --min-contexts " + std::to_string(c.min_contexts) + " --max-contexts " +
                              std::to_string(c.max_contexts) + " --min-keys " + std::to_string(c.min_keys) +
                              " --max-keys " + std::to_string(c.max_keys) + " --values " + std::to_string(c.values) +
                              " --train-per-cell " + std::to_string(c.train_per_cell) + " --eval-per-cell " +
                              std::to_string(c.eval_per_cell);
  const auto result = testing::run_command(command);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return split_samples(result.out);
}

// Checks every split, from its start and from offsets that make the generator skip across split boundaries.
void expect_matches_oracle(const JointRecallConfig& config) {
  const std::vector<std::string> oracle = oracle_stream(config);
  const std::uint64_t train = config.split_size(Split::train), eval = config.split_size(Split::valid);
  ASSERT_EQ(oracle.size(), train + 2 * eval);
  std::uint64_t split_start = 0;
  for (Split split : kSplits) {
    const std::uint64_t size = config.split_size(split);
    for (std::uint64_t offset : {std::uint64_t{0}, size / 2, size - 1}) {
      const auto ours = split_samples(as_text(config, generate_joint_recall(config, split, offset, size - offset)));
      const std::vector<std::string> expected(oracle.begin() + static_cast<std::ptrdiff_t>(split_start + offset),
                                              oracle.begin() + static_cast<std::ptrdiff_t>(split_start + size));
      EXPECT_EQ(ours, expected) << split_name(split) << " from offset " << offset;
    }
    split_start += size;
  }
}

TEST(JointRecall, FirstTrainSamplesOfSeedOneMatchThePaperByteForByte) {
  const JointRecallConfig config;
  EXPECT_EQ(config.pad_len(), 1058u);
  EXPECT_EQ(config.split_size(Split::train), 1440000u);
  EXPECT_EQ(config.split_size(Split::valid), 14400u);
  EXPECT_EQ(config.split_size(Split::test), 14400u);
  const std::string expected = testing::read_file(kFixture);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(as_text(config, generate_joint_recall(config, Split::train, 0, 288)), expected);
}

TEST(JointRecall, MatchesNumpyOracleOnEverySplitAndOffset) {
  JointRecallConfig config;
  config.seed = 7;
  config.min_contexts = 5;
  config.max_contexts = 7;
  config.min_keys = 5;
  config.max_keys = 6;
  config.train_per_cell = 3;
  config.eval_per_cell = 2;
  expect_matches_oracle(config);
}

TEST(JointRecall, DedupRedrawsRepeatsExactlyLikeTheReference) {
  // Cell (1, 1) with 4 values has only 4 distinct samples and must hold 4 (2 train, 1 valid, 1 test): the
  // reference's redraw loop runs many times, across splits, and we must consume the RNG exactly as it does.
  JointRecallConfig config;
  config.seed = 3;
  config.min_contexts = 1;
  config.max_contexts = 2;
  config.min_keys = 1;
  config.max_keys = 2;
  config.values = 4;
  config.train_per_cell = 2;
  config.eval_per_cell = 1;
  expect_matches_oracle(config);
  std::set<std::vector<std::int32_t>> distinct;
  for (Split split : kSplits)
    for (const Sample& sample : generate_joint_recall(config, split, 0, config.split_size(split)))
      EXPECT_TRUE(distinct.insert(sample.tokens).second);
}

TEST(JointRecall, SamplesHaveTheDocumentedLayout) {
  const JointRecallConfig config;
  for (const Sample& sample : generate_joint_recall(config, Split::train, 130, 20)) {
    const std::uint32_t g1 = sample.cell.n_context, g2 = sample.cell.n_key;
    ASSERT_EQ(sample.tokens.size(), 2 + 2 * g1 * (1 + 2 * g2));
    EXPECT_EQ(sample.tokens.front(), kJointRecallBos);
    EXPECT_EQ(sample.tokens[sample.tokens.size() / 2], kJointRecallSep);
    std::size_t scored = 0;
    for (std::size_t t = 0; t < sample.tokens.size(); ++t) {
      if (!sample.mask[t]) continue;
      ++scored;
      EXPECT_GT(t, sample.tokens.size() / 2);
      EXPECT_GE(sample.tokens[t], config.key_token(0));  // a key ...
      EXPECT_LT(sample.tokens[t], config.context_token(0));
      EXPECT_LT(sample.tokens[t + 1], config.key_token(0));  // ... followed by its value
    }
    EXPECT_EQ(scored, g1 * g2);
    if (g1 == 16 && g2 == 16) EXPECT_EQ(sample.tokens.size(), config.pad_len());
  }
  EXPECT_EQ(config.cell_at(13), (Cell{6, 6}));
  EXPECT_EQ(config.cell_at(143), (Cell{16, 16}));
  EXPECT_EQ(config.cell_at(144), (Cell{5, 5}));
  EXPECT_EQ(config.highest_token(), 57);
}

TEST(JointRecall, RejectsBadKnobsNamingTheFlag) {
  auto message = [](JointRecallConfig config) {
    try {
      config.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  JointRecallConfig config;
  config.max_contexts = 60;
  EXPECT_NE(message(config).find("does not fit --vocab 100"), std::string::npos) << message(config);
  config = {};
  config.min_keys = 9;
  config.max_keys = 8;
  EXPECT_NE(message(config).find("--max-keys 8 is out of range"), std::string::npos) << message(config);
  config = {};
  config.min_contexts = 0;
  EXPECT_NE(message(config).find("--min-contexts"), std::string::npos);
  config = {};
  config.seed = -3;
  EXPECT_NE(message(config).find("--seed"), std::string::npos);
  config = {};
  config.vocab = 70000;
  EXPECT_NE(message(config).find("--vocab"), std::string::npos);
  config = {};
  config.min_contexts = config.max_contexts = config.min_keys = config.max_keys = 1;
  config.values = 2;
  config.train_per_cell = 3;
  config.eval_per_cell = 0;
  EXPECT_NE(message(config).find("has only 2"), std::string::npos) << message(config);
  EXPECT_THROW(JointRecallGenerator(JointRecallConfig{}, Split::test, 14401), Error);
  JointRecallConfig tiny;
  tiny.max_contexts = tiny.min_contexts;
  tiny.max_keys = tiny.min_keys;
  tiny.train_per_cell = 1;
  JointRecallGenerator generator(tiny, Split::train);
  Sample sample;
  generator.next(sample);
  EXPECT_EQ(generator.remaining(), 0u);
  EXPECT_THROW(generator.next(sample), Error);
}

}  // namespace
}  // namespace hax::data
