#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "hax/data/mqar.h"
#include "hax/engine/error.h"

namespace hax::data {
namespace {

Sample mqar_sample(const MqarConfig& config, Split split, std::uint64_t index) {
  Sample sample;
  MqarGenerator(config).generate(split, index, sample);
  return sample;
}

TEST(Mqar, EveryQueryIsAKeyFollowedByItsValue) {
  const MqarConfig config;
  const MqarGenerator generator(config);
  Sample sample;
  for (std::uint64_t index = 0; index < 50; ++index) {
    generator.generate(Split::train, index, sample);
    ASSERT_EQ(sample.tokens.size(), 256u);
    ASSERT_EQ(sample.mask.size(), 256u);
    EXPECT_EQ(sample.cell, (Cell{1, 16}));
    std::map<std::int32_t, std::int32_t> value_of;
    std::set<std::int32_t> values;
    for (std::size_t i = 0; i < 16; ++i) {
      const std::int32_t key = sample.tokens[2 * i], value = sample.tokens[2 * i + 1];
      EXPECT_GE(key, 1);
      EXPECT_LT(key, config.first_value());
      EXPECT_GE(value, config.first_value());
      EXPECT_LT(value, config.vocab);
      EXPECT_TRUE(value_of.emplace(key, value).second) << "keys must be distinct";
      EXPECT_TRUE(values.insert(value).second) << "values must be distinct";
      EXPECT_EQ(sample.mask[2 * i], 0);
      EXPECT_EQ(sample.mask[2 * i + 1], 0);
    }
    std::set<std::int32_t> queried;
    for (std::size_t t = 32; t < 256; ++t) {
      EXPECT_GE(sample.tokens[t], 1);  // never the pad id
      EXPECT_LT(sample.tokens[t], config.vocab);
      if (!sample.mask[t]) continue;
      EXPECT_EQ((t - 32) % 2, 0u) << "queries sit at the start of a slot";
      ASSERT_TRUE(value_of.contains(sample.tokens[t]));
      EXPECT_EQ(sample.tokens[t + 1], value_of[sample.tokens[t]]);
      queried.insert(sample.tokens[t]);
    }
    EXPECT_EQ(queried.size(), 16u) << "each key is queried exactly once";
  }
}

TEST(Mqar, QueriesFavourEarlySlots) {
  MqarConfig config;
  config.power_a = 0.01;
  const MqarGenerator generator(config);
  Sample sample;
  std::uint64_t early = 0, late = 0;
  for (std::uint64_t index = 0; index < 200; ++index) {
    generator.generate(Split::train, index, sample);
    for (std::size_t t = 32; t < 256; ++t) {
      if (sample.mask[t]) ++(t < 32 + 112 ? early : late);
    }
  }
  EXPECT_GT(early, 2 * late);
}

TEST(Mqar, DeterministicIndependentOfOrderAndSplitsDiffer) {
  MqarConfig config;
  config.seq_len = 64;
  config.kv_pairs = 4;
  config.vocab = 300;  // two-byte tokens
  const Sample first = mqar_sample(config, Split::train, 17);
  const MqarGenerator generator(config);
  Sample again;
  generator.generate(Split::train, 3, again);
  generator.generate(Split::train, 17, again);
  EXPECT_EQ(first.tokens, again.tokens);
  EXPECT_EQ(first.mask, again.mask);
  EXPECT_NE(mqar_sample(config, Split::valid, 17).tokens, first.tokens);
  EXPECT_NE(mqar_sample(config, Split::valid, 17).tokens, mqar_sample(config, Split::test, 17).tokens);
  EXPECT_NE(mqar_sample(config, Split::train, 18).tokens, first.tokens);
  config.seed = 2;
  EXPECT_NE(mqar_sample(config, Split::train, 17).tokens, first.tokens);
}

TEST(Mqar, RejectsBadKnobsNamingTheFlag) {
  auto message = [](const MqarConfig& config) {
    try {
      config.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  MqarConfig config;
  config.seq_len = 60;
  EXPECT_NE(message(config).find("--seq-len 60"), std::string::npos) << message(config);
  config = {};
  config.kv_pairs = 5000;
  EXPECT_NE(message(config).find("--kv-pairs 5000"), std::string::npos) << message(config);
  config = {};
  config.power_a = 0;
  EXPECT_NE(message(config).find("--power-a"), std::string::npos);
  config = {};
  config.vocab = 100000;
  EXPECT_NE(message(config).find("--vocab"), std::string::npos);
  config = {};
  config.eval_size = 5;
  Sample sample;
  EXPECT_THROW(MqarGenerator(config).generate(Split::test, 5, sample), Error);
}

}  // namespace
}  // namespace hax::data
