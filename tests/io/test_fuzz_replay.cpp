// Replays every fuzz target's inputs (fuzz/readers.h) in the suite, so the Release and sanitizer builds check them
// without clang or libFuzzer: the seed corpus (fuzz/corpus/<target>/, files hax writes) must read without any
// error, and every regression input (fuzz/regressions/<target>/: what fuzzing found, one file per finding) must be
// refused with a hax::Error, never anything else.
#include <gtest/gtest.h>

#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "../support/test_support.h"
#include "fuzz/readers.h"

namespace hax::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inputs(const std::string& kind, const std::string& target) {
  std::vector<fs::path> files;
  const fs::path dir = fs::path(HAX_SOURCE_DIR) / "fuzz" / kind / target;
  if (fs::is_directory(dir))
    for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  return files;
}

void PrintTo(const Target& target, std::ostream* out) { *out << target.name; }

// Reads `input` as the target does: the file itself, or a prepared copy of it (named like it, so errors still name
// it) for targets that prepare their inputs.
void read_as_target(const Target& target, const fs::path& input, const testing::ScratchDir& scratch) {
  if (!target.prepare) return target.read(input.string());
  std::string bytes = testing::read_file(input);
  target.prepare(bytes);
  const fs::path copy = scratch / input.filename();
  testing::write_file(copy, bytes);
  target.read(copy.string());
}

class FuzzReplay : public ::testing::TestWithParam<Target> {};

TEST_P(FuzzReplay, SeedCorpusReadsWithoutError) {
  const Target target = GetParam();
  const testing::ScratchDir scratch;
  const std::vector<fs::path> seeds = inputs("corpus", target.name);
  EXPECT_FALSE(seeds.empty()) << "fuzz/corpus/" << target.name << " is empty";
  for (const fs::path& seed : seeds) {
    try {
      read_as_target(target, seed, scratch);
    } catch (const std::exception& e) {
      ADD_FAILURE() << seed << ": " << e.what();
    }
  }
}

TEST_P(FuzzReplay, RegressionInputsAreRefusedByName) {
  const Target target = GetParam();
  const testing::ScratchDir scratch;
  for (const fs::path& input : inputs("regressions", target.name)) {
    try {
      read_as_target(target, input, scratch);
      ADD_FAILURE() << input << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(input.filename().string()), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << input << ": not a hax::Error: " << e.what();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Readers, FuzzReplay, ::testing::ValuesIn(kTargets),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace hax::fuzz
