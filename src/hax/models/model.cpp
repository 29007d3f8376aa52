#include "hax/models/model.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "hax/engine/blas.h"
#include "hax/engine/rng.h"
#include "hax/models/blocks.h"
#include "hax/models/model_params.h"
#include "hax/ops/accuracy_ref.h"
#include "hax/ops/cross_entropy.h"
#include "hax/ops/embedding.h"
#include "hax/ops/linear.h"
#include "hax/ops/residual.h"
#include "hax/ops/rmsnorm.h"

namespace hax::models {
namespace {

std::size_t rows_times(int rows, int width) { return std::size_t(rows) * std::size_t(width); }

// Streaming calls below this many token x weight products run on one thread (Model::prefill).
constexpr double kMinSharedStreamWork = double(1 << 22);

}  // namespace

Model::Model(const ModelConfig& config, bool initialize)
    : Model(config, [&](ParamStore& params, ParamStore& buffers) {
        if (initialize) init_parameters(params, config), init_buffers(buffers, config);
      }) {}

Model::Model(const ModelConfig& config, const ParamsLoader& load) : config_(config) {
  config_.validate("model config");
  declare_parameters(params_, config_);
  params_.allocate();
  declare_buffers(buffers_, config_);
  buffers_.allocate();
  load(params_, buffers_);
  blocks_ = build_blocks(config_, params_, buffers_);
}

const std::vector<std::vector<std::int32_t>>& Model::gate_candidates(int block) const {
  static const std::vector<std::vector<std::int32_t>> none;
  const auto* candidates = blocks_.at(block).mixer->gate_candidates();
  return candidates ? *candidates : none;
}

std::size_t Model::arena_floats(const layers::PackedBatch& batch, int scored, int padded_length) const {
  const std::size_t D = config_.hidden_size, V = config_.vocab_size;
  const std::size_t M = batch.rows(), S = scored, pad = AlignedBuffer::kAlignFloats;  // pad: alignment slack per block
  // Embeddings; per block its norm's output and rstd, the mixer's output (the next residual stream) and what the
  // mixer keeps; the largest mixer backward scratch; the head (gathered rows, logits and their gradients) and the
  // backward's residual-stream gradients.
  std::size_t floats = M * D + pad, scratch = 0;
  for (const Block& block : blocks_) {
    const layers::Mixer::ArenaNeeds needs = block.mixer->arena_floats(batch, padded_length);
    floats += M * (2 * D + 1) + 3 * pad + needs.kept;
    scratch = std::max(scratch, needs.scratch);
  }
  const std::size_t head = S * (4 * D + 1 + 2 * V) + 2 * M * D + 8 * pad;
  return floats + scratch + head;
}

void Model::forward_body(std::span<const std::int32_t> inputs, const layers::PackedBatch& batch,
                              const ForwardOptions& options, int padded_length, Arena& arena, ModelState* state) {
  const int M = batch.rows(), D = config_.hidden_size, L = static_cast<int>(blocks_.size());
  check(static_cast<int>(inputs.size()) == M, "model input has ", inputs.size(), " tokens for a batch of ", M,
        " rows");
  hidden_.assign(L + 1, nullptr);
  normed_.assign(L, nullptr);
  rstd_.assign(L, nullptr);
  hidden_[0] = arena.alloc(rows_times(M, D), "embeddings").data();
  ops::embedding_forward(hidden_[0], inputs.data(), params_.param(kEmbeddingsName).data(), M,
                         config_.vocab_size, D);
  const float eps = static_cast<float>(config_.layer_norm_epsilon);
  for (int l = 0; l < L; ++l) {
    normed_[l] = arena.alloc(rows_times(M, D), "layer norm out").data();
    rstd_[l] = arena.alloc(M, "layer norm rstd").data();
    ops::rmsnorm_forward(normed_[l], rstd_[l], hidden_[l], params_.param(blocks_[l].norm_name).data(), M, D, eps);
    float* mixed = arena.alloc(rows_times(M, D), "mixer out").data();
    // Each block draws from its own stream of the call's seed.
    const layers::SparseStep step{options.training, Rng(options.noise_seed).fork(l).next_u64(), padded_length};
    if (state)
      blocks_[l].mixer->forward_chunk(mixed, normed_[l], M, state->blocks[l], arena);
    else
      blocks_[l].mixer->forward(mixed, normed_[l], batch, step, arena);
    hidden_[l + 1] = mixed;  // residual add in place: h_{l+1} = h_l + mixer(norm(h_l))
    ops::residual_forward(hidden_[l + 1], hidden_[l], mixed, rows_times(M, D));
  }
}

BatchResult Model::forward(const TokenBatch& tb, Arena& arena, const ForwardOptions& options) {
  arena.reset();
  training_ = options.training;
  forward_body(tb.inputs, tb.batch, options, tb.padded_length, arena);
  const int D = config_.hidden_size, V = config_.vocab_size, M = tb.batch.rows();
  check(tb.labels.size() == tb.inputs.size() && tb.scored.size() == tb.inputs.size(),
        "labels/scored sizes do not match the inputs");
  // Only the scored rows need the final norm and the logits: gather them.
  scored_rows_.clear();
  scored_labels_.clear();
  for (int m = 0; m < M; ++m)
    if (tb.scored[m]) scored_rows_.push_back(m), scored_labels_.push_back(tb.labels[m]);
  const int S = static_cast<int>(scored_rows_.size());
  final_in_ = arena.alloc(rows_times(S, D), "final norm in").data();
  final_rstd_ = arena.alloc(S, "final norm rstd").data();
  final_out_ = arena.alloc(rows_times(S, D), "final norm out").data();
  logits_ = arena.alloc(rows_times(S, V), "logits").data();
  const float* last = hidden_.back();
  for (int i = 0; i < S; ++i)
    std::copy_n(last + rows_times(scored_rows_[i], D), D, final_in_ + rows_times(i, D));
  ops::rmsnorm_forward(final_out_, final_rstd_, final_in_, params_.param("norm_f.weight").data(), S, D,
                       static_cast<float>(config_.layer_norm_epsilon));
  ops::tied_output_forward(logits_, final_out_, params_.param(output_weight_name(config_)).data(), S, D, V);

  BatchResult result;
  result.scored_rows = S;
  for (const Block& block : blocks_) result.gate_loss += block.mixer->gate_loss();
  const std::vector<std::uint8_t> all_scored(S, 1);
  result.loss = ops::cross_entropy_forward(logits_, scored_labels_.data(), all_scored.data(), S, V);
  // Per-sequence accuracy over the gathered rows (scored_rows_ is sorted, so sequences are contiguous in it).
  result.sequence_accuracy.assign(tb.batch.num_sequences(), std::numeric_limits<double>::quiet_NaN());
  int i = 0;
  for (int q = 0; q < tb.batch.num_sequences(); ++q) {
    int total = 0, correct = 0;
    for (; i < S && scored_rows_[i] < tb.batch.start(q + 1); ++i, ++total)
      correct += ops::ref::argmax(logits_ + rows_times(i, V), V) == scored_labels_[i];
    if (total > 0) result.sequence_accuracy[q] = static_cast<double>(correct) / total;
  }
  return result;
}

void Model::backward(const TokenBatch& tb, Arena& arena) {
  const int D = config_.hidden_size, V = config_.vocab_size, M = tb.batch.rows(), L = static_cast<int>(blocks_.size());
  const int S = static_cast<int>(scored_rows_.size());
  const std::size_t mark = arena.mark();
  float* dlogits = arena.alloc(rows_times(S, V), "d logits").data();
  const std::vector<std::uint8_t> all_scored(S, 1);
  ops::cross_entropy_backward(dlogits, 1.0f, logits_, scored_labels_.data(), all_scored.data(), S, V);
  float* d_final_out = arena.alloc(rows_times(S, D), "d final norm out").data();
  // Tied: the output layer's gradient and the embedding lookup's (below) both add into the embedding's.
  const char* output = output_weight_name(config_);
  ops::tied_output_backward(d_final_out, params_.grad(output).data(), dlogits, final_out_,
                            params_.param(output).data(), S, D, V);
  float* d_final_in = arena.alloc(rows_times(S, D), "d final norm in").data();
  ops::rmsnorm_backward(d_final_in, params_.grad("norm_f.weight").data(), d_final_out, final_in_,
                        params_.param("norm_f.weight").data(), final_rstd_, S, D);
  // The residual stream's gradient: a single (M, D) buffer, updated layer by layer from the top.
  float* dh = arena.alloc(rows_times(M, D), "d hidden").data();
  for (int i = 0; i < S; ++i)
    std::copy_n(d_final_in + rows_times(i, D), D, dh + rows_times(scored_rows_[i], D));
  float* dnormed = arena.alloc(rows_times(M, D), "d layer norm out").data();
  for (int l = L - 1; l >= 0; --l) {
    std::fill(dnormed, dnormed + rows_times(M, D), 0.0f);
    blocks_[l].mixer->backward(dnormed, dh, tb.batch, training_ ? kGateLossWeight : 0.0f, arena);
    // h_{l+1} = h_l + mixer(norm(h_l)): dh_l = dh_{l+1} + norm^T(dnormed); accumulate in place.
    ops::rmsnorm_backward(dh, params_.grad(blocks_[l].norm_name).data(), dnormed, hidden_[l],
                          params_.param(blocks_[l].norm_name).data(), rstd_[l], M, D);
  }
  ops::embedding_backward(params_.grad(kEmbeddingsName).data(), dh, tb.inputs.data(), M, V, D);
  arena.release(mark);
}

void Model::logits(float* out, const std::vector<std::int32_t>& inputs, const layers::PackedBatch& batch,
                        Arena& arena, const ForwardOptions& options, int padded_length) {
  arena.reset();
  training_ = false;
  forward_body(inputs, batch, {false, options.noise_seed}, padded_length, arena);
  output_logits(out, hidden_.back(), batch.rows(), arena);
}

void Model::output_logits(float* out, const float* hidden, int M, Arena& arena) const {
  const int D = config_.hidden_size, V = config_.vocab_size;
  float* normed = arena.alloc(rows_times(M, D), "final norm out").data();
  ops::rmsnorm_forward(normed, nullptr, hidden, params_.param("norm_f.weight").data(), M, D,
                       static_cast<float>(config_.layer_norm_epsilon));
  ops::tied_output_forward(out, normed, params_.param(output_weight_name(config_)).data(), M, D, V);
}

ModelState Model::start_state() const {
  ModelState state;
  for (const Block& block : blocks_) state.blocks.push_back(block.mixer->start_state());
  return state;
}

std::size_t Model::prefill_arena_floats(const ModelState& state, int T) const {
  const std::size_t M = T, D = config_.hidden_size, V = config_.vocab_size, pad = AlignedBuffer::kAlignFloats;
  // Embeddings and per block norm output, rstd and mixer output (all kept until the logits), the largest mixer
  // chunk scratch, then the final norm.
  std::size_t floats = M * D + pad + M * D + pad + M * V, scratch = 0;
  for (const Block& block : blocks_) {
    floats += M * (2 * D + 1) + 3 * pad;
    scratch = std::max(scratch, block.mixer->chunk_arena_floats(T, state.position));
  }
  return floats + scratch;
}

void Model::prefill(float* logits, ModelState& state, std::span<const std::int32_t> tokens, Arena& arena,
                    bool last_only) {
  check(state.blocks.size() == blocks_.size(), "prefill: the state has ", state.blocks.size(), " blocks, the model ",
        blocks_.size(), " (make it with start_state())");
  if (tokens.empty()) return;
  // A call with too little work to share out (a decoded token of a small model) runs on this thread alone: at two
  // threads, waking the other one for each of its many small ops cost more than it saved (Mamba2 decoded 1.5x
  // slower). The work is about tokens x weights.
  const OneThreadIf small(double(tokens.size()) * double(params_.num_parameters()) < kMinSharedStreamWork);
  arena.reset();
  training_ = false;
  const layers::PackedBatch one = layers::PackedBatch::of_one(int(tokens.size()));
  forward_body(tokens, one, {}, 0, arena, &state);
  const int rows = last_only ? 1 : one.rows();
  output_logits(logits, hidden_.back() + rows_times(one.rows() - rows, config_.hidden_size), rows, arena);
  state.position += int(tokens.size());
}

std::vector<float> Model::prefill(ModelState& state, std::span<const std::int32_t> tokens) {
  std::vector<float> out(tokens.size() * std::size_t(config_.vocab_size));
  Arena arena(prefill_arena_floats(state, int(tokens.size())));
  prefill(out.data(), state, tokens, arena);
  return out;
}

std::vector<float> Model::decode(ModelState& state, std::int32_t token) {
  return prefill(state, std::span<const std::int32_t>(&token, 1));
}

}  // namespace hax::models
