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
#include "hax/inference/state_file.h"
#include "hax/io/atomic_file.h"
#include "hax/training/checkpoint.h"

namespace hax::cli {
namespace {

struct ScoreCommand {
  std::string checkpoint, tokens_path, json_path, load_state, save_state;
  inference::ScoreOptions options;
  int threads = 0;
};

nlohmann::json score_json(const ScoreCommand& c, const inference::ScoreResult& r) {
  nlohmann::json j{{"checkpoint", c.checkpoint}, {"tokens_file", c.tokens_path}, {"tokens_scored", r.tokens},
                   {"mean_nll", r.mean_nll()}, {"perplexity", r.perplexity()}, {"chunk", c.options.chunk}};
  if (c.options.bucket_width > 0) j["by_position"] = inference::by_position_json(r, c.options.bucket_width);
  return j;
}

void run_score(const ScoreCommand& c) {
  set_num_threads(c.threads);
  auto model = training::load_model(c.checkpoint);
  model->start_state();  // a model that cannot stream says so before the file is read
  const std::vector<data::TokenSequence> sequences =
      data::read_token_sequences(c.tokens_path, model->config().vocab_size);
  const bool stateful = !c.load_state.empty() || !c.save_state.empty();
  check(!stateful || sequences.size() == 1, "tokens file '", c.tokens_path, "' holds ", sequences.size(),
        " sequences: with --load-state or --save-state it must hold one (one line of token ids)");
  inference::SavedStream stream =
      c.load_state.empty() ? inference::start_stream(*model) : inference::load_state_file(c.load_state, *model);
  if (!c.save_state.empty()) io::AtomicFile probe(c.save_state);  // an unwritable path fails before the work
  const std::uint64_t total = std::accumulate(sequences.begin(), sequences.end(), std::uint64_t(0),
                                              [](std::uint64_t n, const auto& s) { return n + s.size(); });
  std::cerr << "hax score: " << c.checkpoint << "\n  " << sequences.size() << " sequences, " << total
            << " tokens from " << c.tokens_path << "\n  prefill in chunks of " << c.options.chunk
            << " tokens, threads: " << num_threads() << "\n";
  if (!c.load_state.empty())
    std::cerr << "  continuing from " << c.load_state << " (" << stream.state.position << " tokens)\n";
  Progress bar("score", total, "tok");
  std::uint64_t done = 0;
  const auto on_tokens = [&](std::uint64_t n) { bar.update(done += n); };
  const inference::ScoreResult r =
      stateful ? inference::score_stream(*model, stream, sequences[0], c.options, on_tokens)
               : inference::score_sequences(*model, sequences, c.options, on_tokens);
  bar.finish();
  if (!c.save_state.empty()) {
    inference::save_state_file(c.save_state, *model, stream);
    std::cerr << "hax score: saved the state after " << stream.state.position << " tokens to " << c.save_state
              << "\n";
  }
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
  std::string checkpoint, prompt_path, load_state, save_state;
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
  check(!c.prompt_path.empty() || !c.load_state.empty(), "hax generate needs --prompt, --load-state or both");
  model->start_state();  // a model that cannot stream says so before the files are read
  data::TokenSequence prompt;
  if (!c.prompt_path.empty()) {
    const std::vector<data::TokenSequence> prompts =
        data::read_token_sequences(c.prompt_path, model->config().vocab_size);
    check(prompts.size() == 1, "prompt file '", c.prompt_path, "' holds ", prompts.size(),
          " sequences: it must hold one (one line of token ids)");
    prompt = prompts[0];
  }
  inference::SavedStream stream =
      c.load_state.empty() ? inference::start_stream(*model) : inference::load_state_file(c.load_state, *model);
  if (!c.save_state.empty()) io::AtomicFile probe(c.save_state);  // an unwritable path fails before the work
  bool first = true;
  const auto print = [&](std::int32_t token) {
    std::cout << (first ? "" : " ") << token << std::flush;
    first = false;
  };
  if (c.load_state.empty() && c.save_state.empty())
    inference::generate(*model, prompt, c.max_new, c.sampling, c.seed, c.chunk, print);
  else
    inference::generate_stream(*model, stream, prompt, c.max_new, c.sampling, c.seed, c.chunk, print);
  std::cout << "\n";
  if (!c.save_state.empty()) {
    inference::save_state_file(c.save_state, *model, stream);
    std::cerr << "hax generate: saved the state after " << stream.state.position << " tokens to " << c.save_state
              << "\n";
  }
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
      "input may be as long as the token file. `causal` models only.\n"
      "--save-state FILE writes the state after the input (one sequence); --load-state FILE continues from one, so\n"
      "the first token is scored too, by the logits of the saved sequence's last: scoring A with --save-state, then\n"
      "B with --load-state, scores every token of A + B as scoring A + B does, with the same per-token bits when\n"
      "A's length is a multiple of --chunk (prefill in other chunks agrees only up to float rounding); the figures\n"
      "printed are of the new tokens only. A state from another model, config or weights is refused.");
  auto c = std::make_shared<ScoreCommand>();
  add_common(command, c->checkpoint, c->threads);
  command->add_option("--tokens", c->tokens_path, "Token sequences: one a line, ids separated by spaces")->required();
  command->add_option("--chunk", c->options.chunk, "Tokens per prefill step")->check(CLI::PositiveNumber);
  command->add_option("--by-position", c->options.bucket_width,
                      "Also the mean NLL per bucket of this many positions (0: none)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--json", c->json_path, "Also write the figures as JSON here");
  command->add_option("--load-state", c->load_state, "Continue the sequence saved here (by score or generate)");
  command->add_option("--save-state", c->save_state, "Save the state after the input here");
  command->callback([c] { run_score(*c); });
}

void register_generate(CLI::App& app) {
  auto* command = app.add_subcommand("generate", "Continue a prompt: greedy or sampled tokens, to stdout");
  command->option_defaults()->always_capture_default();
  command->footer(
      "The prompt file holds one line of token ids. The new tokens go to stdout on one line, separated by spaces.\n"
      "--temperature 0 (the default) is greedy; above 0, each token is drawn from softmax(logits / T), over the\n"
      "--top-k most likely tokens when it is set; --seed repeats a draw. `causal` models only.\n"
      "--save-state FILE writes the state after the prompt and the new tokens (with the generator's state);\n"
      "--load-state FILE continues from one, the prompt (optional then) appended to the saved sequence. Generating\n"
      "a + b tokens equals generating a with --save-state, then b with --load-state and no prompt, bit for bit\n"
      "(tokens, logits, draws); --seed counts only when the state has no generator (one saved by score).");
  auto c = std::make_shared<GenerateCommand>();
  add_common(command, c->checkpoint, c->threads);
  command->add_option("--prompt", c->prompt_path, "Prompt: one line of token ids (required without --load-state)");
  command->add_option("--max-new", c->max_new, "Tokens to generate")->required()->check(CLI::NonNegativeNumber);
  command->add_option("--temperature", c->sampling.temperature, "Sampling temperature (0: greedy)");
  command->add_option("--top-k", c->sampling.top_k, "Draw among the k most likely tokens only (0: all)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--seed", c->seed, "Seed of the draws");
  command->add_option("--chunk", c->chunk, "Tokens per prefill step of the prompt")->check(CLI::PositiveNumber);
  command->add_option("--load-state", c->load_state, "Continue the sequence saved here (by score or generate)");
  command->add_option("--save-state", c->save_state, "Save the state after the new tokens here");
  command->callback([c] { run_generate(*c); });
}

}  // namespace

void register_inference_commands(CLI::App& app) {
  register_score(app);
  register_generate(app);
}

}  // namespace hax::cli
