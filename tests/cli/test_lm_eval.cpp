// `hax lm eval` end to end on a tiny prepared corpus and a tiny untrained model of its vocabulary: every output
// file with the grid's shape, prompts fixed by the seed, and bad input as one error line. (Scores of an untrained
// model are ~0; that a perfect reader scores 100 is checked on the library in tests/inference/test_ruler.cpp.)
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <sstream>

#include "../data/lm_corpus_fixture.h"
#include "cli_support.h"
#include "hax/data/lm_corpus.h"

namespace hax::testing {
namespace {

namespace fs = std::filesystem;

// A corpus prepared once for the suite from the corpus tests' synthetic documents, and an untrained tiny model of
// its vocabulary.
class CliLmEval : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir;
    write_text_folder(*dir_ / "text");
    data::CorpusPrepareOptions options;
    options.heldout_fraction = 0.25;
    options.tokenizer.vocab_size = 400;
    data::prepare_corpus(*dir_ / "text", corpus(), options);
    models::ModelConfig config = tiny_mamba_config();
    config.vocab_size = data::LmCorpus::open(corpus()).vocab_size();
    training::save_model(checkpoint(), models::Model(config));
  }
  static void TearDownTestSuite() { delete dir_; }

  static fs::path corpus() { return *dir_ / "corpus"; }
  static fs::path checkpoint() { return *dir_ / "model"; }
  // The tokenizer of this small corpus is nearly byte-level, so 4 needles with their question take ~500 tokens.
  static std::string eval_args(const fs::path& out, const std::string& extra = "", int context = 768) {
    return cat("lm eval --checkpoint ", quoted(checkpoint()), " --corpus ", quoted(corpus()), " --context ", context,
               " --lengths 1,2 --depths 0,50,100 --samples 2 --threads 1 --ppl-sequences 2 --out ", quoted(out),
               extra);
  }

  static ScratchDir* dir_;
};

ScratchDir* CliLmEval::dir_ = nullptr;

std::vector<nlohmann::json> jsonl(const fs::path& path) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

TEST_F(CliLmEval, WritesTheTableHeatmapsChartAndEverySampleForTheGrid) {
  const ScratchDir out;
  const CommandResult r = run_hax(eval_args(out / "eval", " --seed 3"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(read_file(out / "eval" / "results.json"));
  EXPECT_EQ(j.at("lengths"), (std::vector<int>{768, 1536}));
  EXPECT_EQ(j.at("context"), 768);
  EXPECT_NE(j.at("command").get<std::string>().find("lm eval --checkpoint"), std::string::npos) << j.at("command");
  EXPECT_EQ(j.at("checkpoint"), checkpoint().string());
  EXPECT_GT(j.at("wall_seconds").get<double>(), 0);
  ASSERT_EQ(j.at("tasks").size(), 7u);
  for (const auto& [name, task] : j.at("tasks").items()) {
    ASSERT_EQ(task.at("cells").size(), 2u * 3) << name;
    for (const auto& cell : task.at("cells")) {
      EXPECT_EQ(cell.at("samples"), 2);
      EXPECT_GE(cell.at("accuracy").get<double>(), 0.0);
      EXPECT_LE(cell.at("accuracy").get<double>(), 100.0);
    }
    const std::string svg = read_file(out / "eval" / ("ruler_" + name + ".svg"));
    EXPECT_NO_THROW(xml_elements(svg)) << name;
    EXPECT_NE(svg.find("50%"), std::string::npos);
  }
  // Perplexity: up to two sequences of 1536 held-out tokens (one, shorter, if the split is smaller), buckets of
  // 192 positions (context / 4).
  const std::size_t heldout = data::LmCorpus::open(corpus()).tokens(data::Split::valid).size();
  const std::size_t sequences = std::clamp<std::size_t>(heldout / 1536, 1, 2);
  const std::size_t length = std::min<std::size_t>(heldout, 1536);
  EXPECT_EQ(j.at("perplexity").at("sequences"), sequences);
  EXPECT_EQ(j.at("perplexity").at("tokens_scored"), sequences * (length - 1));
  EXPECT_EQ(j.at("perplexity").at("by_position").size(), (length + 191) / 192);
  EXPECT_NO_THROW(xml_elements(read_file(out / "eval" / "perplexity_by_position.svg")));
  const std::string md = read_file(out / "eval" / "results.md");
  EXPECT_NE(md.find("| Length | niah_single_number | niah_single_word |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1536 (2x) |"), std::string::npos) << md;
  EXPECT_NE(r.out.find("| 768 (1x) |"), std::string::npos) << "the table goes to stdout too";
  const std::vector<nlohmann::json> samples = jsonl(out / "eval" / "samples.jsonl");
  ASSERT_EQ(samples.size(), 7u * 2 * 3 * 2);
  for (const auto& s : samples) EXPECT_FALSE(s.at("answers").empty());

  // The same seed gives the same prompts (and, greedy on one thread, the same continuations); another, others.
  ASSERT_EQ(run_hax(eval_args(out / "again", " --seed 3 --tasks niah_multikey")).exit_code, 0);
  const std::vector<nlohmann::json> again = jsonl(out / "again" / "samples.jsonl");
  ASSERT_EQ(again.size(), 2u * 3 * 2);
  const auto first_multikey = std::find_if(samples.begin(), samples.end(),
                                           [](const auto& s) { return s.at("task") == "niah_multikey"; });
  for (std::size_t i = 0; i < again.size(); ++i) EXPECT_EQ(again[i], first_multikey[static_cast<std::ptrdiff_t>(i)]);
  ASSERT_EQ(run_hax(eval_args(out / "other", " --seed 4 --tasks niah_multikey")).exit_code, 0);
  EXPECT_NE(jsonl(out / "other" / "samples.jsonl")[0].at("answers"), again[0].at("answers"));
}

TEST_F(CliLmEval, BadInputIsOneErrorLine) {
  const ScratchDir dir;
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(eval_args(dir / "o", " --tasks niah_single_number,needle")),
                                    "unknown task 'needle'"));
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(eval_args(dir / "o", " --depths 0,120")), "[0, 100]"));
  const fs::path other_vocab = save_untrained_checkpoint(dir);  // vocabulary 100
  EXPECT_TRUE(FailsWithOneErrorLine(
      run_hax(cat("lm eval --checkpoint ", quoted(other_vocab), " --corpus ", quoted(corpus()),
                  " --context 768 --out ", quoted(dir / "o"))),
      "vocabulary of 100 tokens but corpus"));
  models::ModelConfig paper = tiny_mamba_config();
  paper.vocab_size = data::LmCorpus::open(corpus()).vocab_size();
  paper.sparse_arch = "sign_bin_lsh+key_selection";
  paper.sparse_keys = 8;
  paper.num_hash = 3;
  paper.data_max_length = 32;
  paper.semantics = ops::sparse::Semantics::paper;
  training::save_model(dir / "paper", models::Model(paper));
  EXPECT_TRUE(FailsWithOneErrorLine(
      run_hax(cat("lm eval --checkpoint ", quoted(dir / "paper"), " --corpus ", quoted(corpus()),
                  " --context 768 --out ", quoted(dir / "o"))),
      "causal"));
  EXPECT_TRUE(FailsWithOneErrorLine(run_hax(eval_args(dir / "o", "", 64)), "cannot hold"));
  EXPECT_FALSE(fs::exists(dir / "o" / "results.json")) << "nothing is written for a failed run";
  // A corpus whose held-out split is empty.
  fs::copy(corpus(), dir / "empty", fs::copy_options::recursive);
  auto meta = nlohmann::json::parse(read_file(dir / "empty" / "corpus.json"));
  meta["splits"]["valid"] = {{"documents", 0}, {"tokens", 0}};
  write_file(dir / "empty" / "corpus.json", meta.dump());
  write_file(dir / "empty" / "valid.tokens", "");
  write_file(dir / "empty" / "valid.index", std::string(8, '\0'));
  EXPECT_TRUE(FailsWithOneErrorLine(
      run_hax(cat("lm eval --checkpoint ", quoted(checkpoint()), " --corpus ", quoted(dir / "empty"),
                  " --context 768 --out ", quoted(dir / "o"))),
      "valid split must hold at least one document"));
}

}  // namespace
}  // namespace hax::testing
