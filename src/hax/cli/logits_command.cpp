// hax logits: a checkpoint's next-token logits at every position of given token sequences, written as a float32
// .npy array (sequences, positions, vocab) that numpy loads directly: for inspecting a model, and for checking it
// against other implementations of the same architecture.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "hax/cli/commands.h"
#include "hax/cli/progress.h"
#include "hax/data/tokens_file.h"
#include "hax/engine/arena.h"
#include "hax/engine/blas.h"
#include "hax/engine/error.h"
#include "hax/io/npy.h"
#include "hax/layers/packed_batch.h"
#include "hax/training/checkpoint.h"
#include "hax/training/evaluate.h"

namespace hax::cli {
namespace {

namespace fs = std::filesystem;

struct LogitsCommand {
  std::string checkpoint, tokens_path, out_path;
  int batch_size = 64;
  int chunk = 0;  // 0: the parallel forward; otherwise streaming inference, this many tokens a step
  int threads = 0;
};

using Sequence = data::TokenSequence;

std::size_t longest(const std::vector<Sequence>& sequences) {
  std::size_t length = 0;
  for (const Sequence& s : sequences) length = std::max(length, s.size());
  return length;
}

struct PackedTokens {
  std::vector<std::int32_t> inputs;
  layers::PackedBatch batch;
};

PackedTokens pack(const std::vector<Sequence>& sequences, std::size_t begin, std::size_t end) {
  PackedTokens packed;
  for (std::size_t s = begin; s < end; ++s) {
    packed.inputs.insert(packed.inputs.end(), sequences[s].begin(), sequences[s].end());
    packed.batch.add_sequence(static_cast<int>(sequences[s].size()));
  }
  return packed;
}

// The (sequences, positions, vocab) array, zero past each sequence's end. The model runs on `batch_size` sequences
// at a time, so its activations stay bounded however many sequences there are.
std::vector<float> compute_logits(models::Model& model, const std::vector<Sequence>& sequences,
                                  std::size_t positions, int batch_size, Progress& bar) {
  const std::size_t vocab = static_cast<std::size_t>(model.config().vocab_size);
  std::vector<float> out(sequences.size() * positions * vocab, 0.0f);
  std::vector<float> rows;
  Arena arena;
  for (std::size_t begin = 0; begin < sequences.size(); begin += static_cast<std::size_t>(batch_size)) {
    const std::size_t end = std::min(sequences.size(), begin + static_cast<std::size_t>(batch_size));
    const PackedTokens packed = pack(sequences, begin, end);
    const layers::PackedBatch& batch = packed.batch;
    training::reserve_arena(arena, model.arena_floats(batch, 0));
    rows.resize(static_cast<std::size_t>(batch.rows()) * vocab);
    model.logits(rows.data(), packed.inputs, batch, arena);
    for (int s = 0; s < batch.num_sequences(); ++s)
      std::copy_n(rows.data() + static_cast<std::size_t>(batch.start(s)) * vocab,
                  static_cast<std::size_t>(batch.length(s)) * vocab, out.data() + (begin + s) * positions * vocab);
    bar.update(end);
  }
  return out;
}

// The same array by streaming inference (Model::prefill): each sequence from an empty state, `chunk` tokens at
// a time (1: token-by-token decoding). Equal to compute_logits up to float rounding, which is what it is for.
std::vector<float> compute_logits_streaming(models::Model& model, const std::vector<Sequence>& sequences,
                                            std::size_t positions, int chunk, Progress& bar) {
  const std::size_t vocab = static_cast<std::size_t>(model.config().vocab_size);
  std::vector<float> out(sequences.size() * positions * vocab, 0.0f);
  Arena arena;
  for (std::size_t s = 0; s < sequences.size(); ++s) {
    models::ModelState state = model.start_state();
    const std::span<const std::int32_t> tokens(sequences[s]);
    for (std::size_t at = 0; at < tokens.size(); at += static_cast<std::size_t>(chunk)) {
      const auto part = tokens.subspan(at, std::min(tokens.size() - at, static_cast<std::size_t>(chunk)));
      training::reserve_arena(arena, model.prefill_arena_floats(state, static_cast<int>(part.size())));
      model.prefill(out.data() + (s * positions + at) * vocab, state, part, arena);
    }
    bar.update(s + 1);
  }
  return out;
}

void run_logits(const LogitsCommand& c) {
  set_num_threads(c.threads);
  // save_npy creates its file only at the end: a typo in the folder should fail before the model runs.
  const fs::path out_folder = fs::path(c.out_path).parent_path();
  check(out_folder.empty() || fs::is_directory(out_folder), "cannot write '", c.out_path, "': no folder '",
        out_folder.string(), "'");
  auto model = training::load_model(c.checkpoint);
  const std::vector<Sequence> sequences = data::read_token_sequences(c.tokens_path, model->config().vocab_size);
  const std::size_t positions = longest(sequences);
  if (c.chunk > 0) model->start_state();  // `paper` cannot stream: say so before any work
  std::cerr << "hax logits: " << c.checkpoint << "\n  " << sequences.size() << " sequences of up to " << positions
            << " tokens from " << c.tokens_path << "\n  "
            << (c.chunk > 0 ? cat("streaming: prefill in chunks of ", c.chunk, " tokens") : std::string("parallel"))
            << "\n  threads: " << num_threads() << "\n";

  Progress bar("logits", sequences.size(), "sequences");
  const std::vector<float> logits =
      c.chunk > 0 ? compute_logits_streaming(*model, sequences, positions, c.chunk, bar)
                  : compute_logits(*model, sequences, positions, c.batch_size, bar);
  bar.finish();
  io::save_npy(c.out_path, logits,
               {static_cast<std::int64_t>(sequences.size()), static_cast<std::int64_t>(positions),
                static_cast<std::int64_t>(model->config().vocab_size)});
  std::cerr << "hax logits: wrote " << c.out_path << "\n";
}

void register_logits(CLI::App& app) {
  auto* command = app.add_subcommand("logits", "Next-token logits of token sequences, as a float32 .npy array");
  command->option_defaults()->always_capture_default();
  // CLI11 prints a footer as it is: the line breaks are ours.
  command->footer(
      "Input: one sequence a line, token ids separated by spaces; a blank line or an id outside the checkpoint's\n"
      "vocabulary is an error.\n"
      "Output: shape (sequences, positions, vocab); entry [s, t] holds the logits of the token that follows the\n"
      "first t+1 tokens of sequence s. positions is the longest sequence's length: a shorter sequence's entries\n"
      "past its end are zeros.\n"
      "The model runs --batch-size sequences at a time, so its working memory stays bounded; the output array\n"
      "itself (4 bytes a value) is held in memory until it is written.\n"
      "--chunk N computes the same logits by streaming inference instead (a prefill of N tokens at a time from a\n"
      "saved state; N = 1 decodes token by token): equal up to float rounding. `causal` models only.");
  auto c = std::make_shared<LogitsCommand>();
  command->add_option("--checkpoint", c->checkpoint, "Checkpoint folder (config.json + model.safetensors), e.g. "
                                                     "RUN/best")->required();
  command->add_option("--tokens", c->tokens_path, "Token sequences: one a line, ids separated by spaces")->required();
  command->add_option("--out,-o", c->out_path, "Output .npy file (float32, sequences x positions x vocab)")
      ->required();
  command->add_option("--batch-size", c->batch_size, "Sequences per forward pass")->check(CLI::PositiveNumber);
  command->add_option("--chunk", c->chunk, "Tokens per streaming prefill step (0: the parallel forward)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--threads", c->threads, "Threads (0: all cores)")->check(CLI::NonNegativeNumber);
  command->callback([c] { run_logits(*c); });
}

}  // namespace

void register_logits_commands(CLI::App& app) { register_logits(app); }

}  // namespace hax::cli
