// hax lm eval: long-context evaluation of a language-model checkpoint on a prepared corpus's held-out documents:
// perplexity by position up to several times the training context, and RULER-style needle-in-a-haystack and
// variable-tracking tasks over context length x needle depth, all by streaming inference.
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <iterator>
#include <algorithm>
#include <numeric>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hax/cli/commands.h"
#include "hax/cli/progress.h"
#include "hax/data/lm_corpus.h"
#include "hax/engine/blas.h"
#include "hax/engine/error.h"
#include "hax/inference/generate.h"
#include "hax/inference/long_context_eval.h"
#include "hax/io/atomic_file.h"
#include "hax/training/checkpoint.h"
#include "hax/training/experiment.h"

namespace hax::cli {
namespace {

namespace fs = std::filesystem;

struct LmEvalCommand {
  std::string checkpoint, corpus, out, tasks = "all", answer_prefix = "needle";
  int context = 0;
  std::vector<double> lengths{1, 2, 4}, depths{0, 25, 50, 75, 100};
  int samples = 4;
  std::uint64_t seed = 1;
  int ppl_sequences = 8, ppl_bucket = 0, chunk = 4096, threads = 0;
};

class TokenizerCodec : public inference::TextCodec {
 public:
  explicit TokenizerCodec(const data::Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::vector<std::int32_t> encode(std::string_view text) const override { return tokenizer_.encode(text); }
  std::string decode(std::span<const std::int32_t> ids) const override { return tokenizer_.decode(ids); }

 private:
  const data::Tokenizer& tokenizer_;
};

// The command line as the shell saw it (for results.json), from /proc/self/cmdline.
std::string this_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (std::size_t at = 0; at < raw.size();) {
    const std::size_t end = raw.find('\0', at);
    args.push_back(raw.substr(at, end - at));
    at = end == std::string::npos ? raw.size() : end + 1;
  }
  if (args.empty()) return "hax lm eval";
  const std::string program = args.front();
  args.erase(args.begin());
  return training::command_line(program, args);
}

inference::RulerGrid grid_of(const LmEvalCommand& c) {
  inference::RulerGrid g;
  g.tasks = inference::parse_ruler_tasks(c.tasks);
  for (const double multiple : c.lengths) {
    check(multiple > 0, "--lengths are multiples of --context and must be > 0, got ", multiple);
    g.lengths.push_back(static_cast<int>(std::lround(multiple * c.context)));
  }
  g.depths = c.depths;
  g.samples = c.samples;
  g.seed = c.seed;
  g.prefix = inference::parse_answer_prefix(c.answer_prefix);
  inference::validate(g);
  return g;
}

// The held-out split as one stream of ids (each document followed by eos, as the corpus stores it).
std::vector<std::int32_t> heldout_stream(const data::LmCorpus& corpus) {
  check(corpus.documents(data::Split::valid) > 0 && !corpus.tokens(data::Split::valid).empty(), "corpus '",
        corpus.dir().string(), "' has an empty held-out split: nothing to evaluate on (prepare it with a larger "
        "--heldout-fraction)");
  const auto tokens = corpus.tokens(data::Split::valid);
  return {tokens.begin(), tokens.end()};
}

void run_lm_eval(const LmEvalCommand& c) {
  const auto started = std::chrono::steady_clock::now();
  set_num_threads(c.threads);
  check(c.context >= 2, "--context must be >= 2 tokens, got ", c.context);
  const inference::RulerGrid grid = grid_of(c);
  auto model = training::load_model(c.checkpoint);
  model->start_state();  // a model that cannot stream says so before the corpus is read
  const data::LmCorpus corpus = data::LmCorpus::open(c.corpus);
  check(model->config().vocab_size == corpus.vocab_size(), "checkpoint '", c.checkpoint, "' has a vocabulary of ",
        model->config().vocab_size, " tokens but corpus '", c.corpus, "' has ", corpus.vocab_size(),
        ": the model was not trained on this corpus's tokenizer");
  const std::vector<std::int32_t> heldout = heldout_stream(corpus);
  const TokenizerCodec codec(corpus.tokenizer());
  // A length too short for a task's fixed text fails here, before any work.
  const int shortest = *std::min_element(grid.lengths.begin(), grid.lengths.end());
  for (const inference::RulerTask task : grid.tasks)
    inference::ruler_sample_prompt(grid, task, shortest, grid.depths[0], 0, codec, heldout);

  inference::LongContextReport report;
  report.context = c.context;
  report.grid = grid;
  report.bucket_width = c.ppl_bucket > 0 ? c.ppl_bucket : std::max(1, c.context / 4);
  const int longest = *std::max_element(grid.lengths.begin(), grid.lengths.end());
  const std::vector<data::TokenSequence> sequences =
      inference::position_sequences(heldout, std::max(2, longest), c.ppl_sequences);
  report.perplexity_sequences = sequences.size();

  std::uint64_t total = 0;
  for (const auto& s : sequences) total += s.size();
  const std::uint64_t ruler_tokens = static_cast<std::uint64_t>(grid.tasks.size()) * grid.depths.size() *
                                     static_cast<std::uint64_t>(grid.samples) *
                                     std::accumulate(grid.lengths.begin(), grid.lengths.end(), std::uint64_t(0));
  total += ruler_tokens;
  std::cerr << "hax lm eval: " << c.checkpoint << " on the held-out split of " << c.corpus << " ("
            << corpus.documents(data::Split::valid) << " documents, " << heldout.size() << " tokens)\n  perplexity: "
            << sequences.size() << " sequences of up to " << longest << " tokens; RULER: " << grid.tasks.size()
            << " tasks x " << grid.lengths.size() << " lengths x " << grid.depths.size() << " depths x "
            << grid.samples << " samples; threads: " << num_threads() << "\n";

  std::error_code error;
  fs::create_directories(c.out, error);
  check(!error, "cannot create the output folder '", c.out, "': ", error.message());
  io::AtomicFile samples_file(fs::path(c.out) / "samples.jsonl");  // an unwritable --out fails before the work
  Progress bar("eval", total, "tok");
  std::uint64_t done = 0;
  report.perplexity = inference::score_sequences(*model, sequences, {c.chunk, report.bucket_width},
                                                 [&](std::uint64_t n) { bar.update(done += n, "perplexity"); });
  // One prefill per prompt: the candidates are scored from, and the greedy continuation starts from, its state.
  const inference::PromptRunner greedy = [&](std::span<const std::int32_t> prompt, int max_new,
                                             const std::vector<std::vector<std::int32_t>>& candidates) {
    inference::SavedStream stream = inference::start_stream(*model);
    inference::generate_stream(*model, stream, prompt, 0, {}, c.seed, c.chunk);
    inference::PromptOutcome out;
    for (const auto& candidate : candidates)
      out.log_likelihoods.push_back(inference::continuation_log_likelihood(*model, stream, candidate));
    out.generated = inference::generate_stream(*model, stream, {}, max_new, {}, c.seed, c.chunk);
    return out;
  };
  report.cells = inference::run_ruler(grid, codec, heldout, greedy, [&](const inference::RulerSample& s) {
    nlohmann::json line{{"task", inference::ruler_task_name(s.task)}, {"length", s.length}, {"depth", s.depth},
                        {"sample", s.sample}, {"answers", s.answers}, {"generated", s.generated},
                        {"found", s.match.found}, {"expected", s.match.expected}};
    if (s.choice)
      line["choice"] = {{"answer_log_likelihood", s.choice->answer_log_likelihood},
                        {"foil_log_likelihood", s.choice->foil_log_likelihood},
                        {"answer_tokens", s.choice->answer_tokens}, {"recalled", s.choice->recalled()}};
    samples_file.stream() << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    bar.update(done += static_cast<std::uint64_t>(s.length), inference::ruler_task_name(s.task));
  });
  bar.finish();
  samples_file.commit();

  report.run = {{"command", this_command_line()}, {"checkpoint", c.checkpoint}, {"corpus", c.corpus},
                {"tasks_flag", c.tasks}, {"threads", num_threads()}, {"chunk", c.chunk}};
  report.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  inference::write_report(c.out, report);
  std::cout << inference::report_markdown(report);
  std::cerr << "hax lm eval: wrote results.json, results.md, samples.jsonl and the SVGs to " << c.out << " in "
            << report.wall_seconds << " s\n";
}

}  // namespace

void register_lm_eval_command(CLI::App& lm) {
  auto* command = lm.add_subcommand("eval", "Long-context evaluation on held-out text: perplexity by position and "
                                            "RULER-style tasks");
  command->option_defaults()->always_capture_default();
  command->footer(
      "Perplexity by position: held-out documents, one stream, cut into --ppl-sequences sequences of the longest\n"
      "length, NLL per --ppl-bucket positions. RULER-style tasks (all, or a comma-separated list):\n"
      "  niah_single_number, niah_single_word, niah_single_uuid, niah_multikey, niah_multivalue,\n"
      "  niah_multiquery, variable_tracking\n"
      "Each prompt is exactly length tokens: an instruction, held-out text (the corpus's own token ids, from a\n"
      "seeded random offset) with the needles, and a question. The queried needle sits at the depth (moved to a\n"
      "sentence end within 16 tokens), the others at random depths. The greedy continuation counts each expected\n"
      "value it contains, ignoring case (RULER's string_match_all); a cell's accuracy is the mean over samples.\n"
      "--answer-prefix needle ends the prompt with the queried needle's own lead-in (\"One of the special magic\n"
      "numbers for calm-river is:\"), which a base model can complete; ruler ends it with RULER's answer prefix.\n"
      "With needle, each NIAH prompt is also a forced choice: the needle's value against a foil of its kind, both\n"
      "scored teacher-forced after the lead-in; it counts when the value is the likelier (chance 50%). This tells\n"
      "models apart that all fail the exact match (small ones).\n"
      "The same --seed gives the same prompts. `causal` models only. Writes to --out: results.json, results.md,\n"
      "samples.jsonl (every prompt's answers and continuation), ruler_<task>.svg, perplexity_by_position.svg.");
  auto c = std::make_shared<LmEvalCommand>();
  command->add_option("--checkpoint", c->checkpoint, "Checkpoint folder (config.json + model.safetensors)")
      ->required();
  command->add_option("--corpus", c->corpus, "Corpus folder written by `hax lm prepare`")->required();
  command->add_option("--context", c->context, "The training context in tokens; --lengths are multiples of it")
      ->required();
  command->add_option("--lengths", c->lengths, "Context lengths as multiples of --context")->delimiter(',');
  command->add_option("--depths", c->depths, "Needle depths in percent of the haystack")->delimiter(',');
  command->add_option("--samples", c->samples, "Prompts per length x depth cell")->check(CLI::PositiveNumber);
  command->add_option("--tasks", c->tasks, "all, or a comma-separated list of task names");
  command->add_option("--seed", c->seed, "Seed of the prompts");
  command->add_option("--answer-prefix", c->answer_prefix, "needle or ruler (see below)");
  command->add_option("--ppl-sequences", c->ppl_sequences, "Held-out sequences for perplexity by position")
      ->check(CLI::PositiveNumber);
  command->add_option("--ppl-bucket", c->ppl_bucket, "Positions per perplexity bucket (0: --context / 4)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--chunk", c->chunk, "Tokens per prefill step")->check(CLI::PositiveNumber);
  command->add_option("--threads", c->threads, "Threads (0: all cores)")->check(CLI::NonNegativeNumber);
  command->add_option("--out", c->out, "Output folder (created if missing; its files are replaced)")->required();
  command->callback([c] { run_lm_eval(*c); });
}

}  // namespace hax::cli
