// hax score and hax generate: a checkpoint's likelihood of token files of any length, and continuations of a
// prompt, both by streaming inference (`causal` models).
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hax/cli/commands.h"
#include "hax/cli/progress.h"
#include "hax/data/tokens_file.h"
#include "hax/engine/blas.h"
#include "hax/engine/error.h"
#include "hax/inference/generate.h"
#include "hax/inference/score.h"
#include "hax/io/atomic_file.h"
#include "hax/training/checkpoint.h"

namespace hax::cli {
namespace {

struct ScoreCommand {
  std::string checkpoint, tokens_path, json_path;
  inference::ScoreOptions options;
  int threads = 0;
};

nlohmann::json score_json(const ScoreCommand& c, const inference::ScoreResult& r) {
  nlohmann::json j{{"checkpoint", c.checkpoint}, {"tokens_file", c.tokens_path}, {"tokens_scored", r.tokens},
                   {"mean_nll", r.mean_nll()}, {"perplexity", r.perplexity()}, {"chunk", c.options.chunk}};
  if (c.options.bucket_width > 0) {
    nlohmann::json buckets = nlohmann::json::array();
    for (std::size_t b = 0; b < r.bucket_tokens.size(); ++b) {
      const std::uint64_t n = r.bucket_tokens[b];
      buckets.push_back({{"first_position", b * c.options.bucket_width},
                         {"last_position", (b + 1) * c.options.bucket_width - 1},
                         {"tokens", n},
                         {"mean_nll", n ? nlohmann::json(r.bucket_mean_nll(b)) : nullptr}});
    }
    j["by_position"] = buckets;
  }
  return j;
}

void run_score(const ScoreCommand& c) {
  set_num_threads(c.threads);
  auto model = training::load_model(c.checkpoint);
  model->start_state();  // a model that cannot stream says so before the file is read
  const std::vector<data::TokenSequence> sequences =
      data::read_token_sequences(c.tokens_path, model->config().vocab_size);
  const std::uint64_t total = std::accumulate(sequences.begin(), sequences.end(), std::uint64_t(0),
                                              [](std::uint64_t n, const auto& s) { return n + s.size(); });
  std::cerr << "hax score: " << c.checkpoint << "\n  " << sequences.size() << " sequences, " << total
            << " tokens from " << c.tokens_path << "\n  prefill in chunks of " << c.options.chunk
            << " tokens, threads: " << num_threads() << "\n";
  Progress bar("score", total, "tok");
  std::uint64_t done = 0;
  const inference::ScoreResult r =
      inference::score_sequences(*model, sequences, c.options, [&](std::uint64_t n) { bar.update(done += n); });
  bar.finish();
  std::cout << std::fixed << std::setprecision(4) << "tokens scored: " << r.tokens << "\nmean NLL: " << r.mean_nll()
            << " nats\nperplexity: " << r.perplexity() << "\n";
  for (std::size_t b = 0; b < r.bucket_tokens.size(); ++b) {
    if (r.bucket_tokens[b] == 0) continue;
    std::cout << "positions " << b * c.options.bucket_width << "-" << (b + 1) * c.options.bucket_width - 1 << ": "
              << r.bucket_tokens[b] << " tokens, mean NLL " << r.bucket_mean_nll(b) << "\n";
  }
  if (!c.json_path.empty()) {
    io::AtomicFile file(c.json_path);
    file.stream() << score_json(c, r).dump(2) << "\n";
    file.commit();
    std::cerr << "hax score: wrote " << c.json_path << "\n";
  }
}

struct GenerateCommand {
  std::string checkpoint, prompt_path;
  int max_new = 0;
  inference::SamplingOptions sampling;
  std::uint64_t seed = 1;
  int chunk = 4096;
  int threads = 0;
};

void run_generate(const GenerateCommand& c) {
  set_num_threads(c.threads);
  inference::validate(c.sampling);
  auto model = training::load_model(c.checkpoint);
  const std::vector<data::TokenSequence> prompts =
      data::read_token_sequences(c.prompt_path, model->config().vocab_size);
  check(prompts.size() == 1, "prompt file '", c.prompt_path, "' holds ", prompts.size(),
        " sequences: it must hold one (one line of token ids)");
  bool first = true;
  inference::generate(*model, prompts[0], c.max_new, c.sampling, c.seed, c.chunk, [&](std::int32_t token) {
    std::cout << (first ? "" : " ") << token << std::flush;
    first = false;
  });
  std::cout << "\n";
}

void add_common(CLI::App* command, std::string& checkpoint, int& threads) {
  command->add_option("--checkpoint", checkpoint, "Checkpoint folder (config.json + model.safetensors), e.g. "
                                                  "RUN/best")->required();
  command->add_option("--threads", threads, "Threads (0: all cores)")->check(CLI::NonNegativeNumber);
}

void register_score(CLI::App& app) {
  auto* command = app.add_subcommand("score", "Mean negative log-likelihood and perplexity of token sequences");
  command->option_defaults()->always_capture_default();
  command->footer(
      "Input: one sequence a line (one long line for one long sequence), token ids separated by spaces.\n"
      "Each sequence is read by streaming inference from an empty state, --chunk tokens at a time; every token after\n"
      "a sequence's first is scored by the logits of the tokens before it. Only one chunk's logits are held, so the\n"
      "input may be as long as the token file. `causal` models only.");
  auto c = std::make_shared<ScoreCommand>();
  add_common(command, c->checkpoint, c->threads);
  command->add_option("--tokens", c->tokens_path, "Token sequences: one a line, ids separated by spaces")->required();
  command->add_option("--chunk", c->options.chunk, "Tokens per prefill step")->check(CLI::PositiveNumber);
  command->add_option("--by-position", c->options.bucket_width,
                      "Also the mean NLL per bucket of this many positions (0: none)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--json", c->json_path, "Also write the figures as JSON here");
  command->callback([c] { run_score(*c); });
}

void register_generate(CLI::App& app) {
  auto* command = app.add_subcommand("generate", "Continue a prompt: greedy or sampled tokens, to stdout");
  command->option_defaults()->always_capture_default();
  command->footer(
      "The prompt file holds one line of token ids. The new tokens go to stdout on one line, separated by spaces.\n"
      "--temperature 0 (the default) is greedy; above 0, each token is drawn from softmax(logits / T), over the\n"
      "--top-k most likely tokens when it is set; --seed repeats a draw. `causal` models only.");
  auto c = std::make_shared<GenerateCommand>();
  add_common(command, c->checkpoint, c->threads);
  command->add_option("--prompt", c->prompt_path, "Prompt: one line of token ids")->required();
  command->add_option("--max-new", c->max_new, "Tokens to generate")->required()->check(CLI::NonNegativeNumber);
  command->add_option("--temperature", c->sampling.temperature, "Sampling temperature (0: greedy)");
  command->add_option("--top-k", c->sampling.top_k, "Draw among the k most likely tokens only (0: all)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--seed", c->seed, "Seed of the draws");
  command->add_option("--chunk", c->chunk, "Tokens per prefill step of the prompt")->check(CLI::PositiveNumber);
  command->callback([c] { run_generate(*c); });
}

}  // namespace

void register_inference_commands(CLI::App& app) {
  register_score(app);
  register_generate(app);
}

}  // namespace hax::cli
