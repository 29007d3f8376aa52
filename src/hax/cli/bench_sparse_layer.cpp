// hax bench sparse-layer: one HAX layer (a Mamba mixer of configs/mamba.json with its sparse-attention branch),
// forward and backward in training mode (so key selection's gate loss runs too), on one random sequence per length
// T (batch 1). Everything in the layer is O(T) for a fixed key budget, so time and memory per token should stay
// flat: the check is that time(T_last) / time(T_first) stays below 1.25x the length ratio (20 for 4k -> 64k, where
// 16 is exactly linear). Memory is the activation arena's high-water mark (Arena::peak()): every activation the
// layer keeps for backward and its backward scratch; the key lists and a few per-call vectors live on the heap
// and show in the process's peak RSS, reported beside it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hax/cli/bench_common.h"
#include "hax/cli/commands.h"
#include "hax/cli/model_options.h"
#include "hax/engine/blas.h"
#include "hax/engine/error.h"
#include "hax/engine/rng.h"
#include "hax/layers/mamba_mixer.h"
#include "hax/models/blocks.h"
#include "hax/models/model.h"
#include "hax/models/model_params.h"

namespace hax::cli {
namespace {

using nlohmann::json;
using namespace bench;

constexpr const char* kDefaultArch = "sign_bin_lsh+key_selection";

struct LayerBenchOptions {
  std::string config_path = "configs/mamba.json";
  SparseOverrides sparse;
  std::vector<int> lengths{4096, 16384, 65536};
  int warmup = 1;
  int repeats = 5;
  int threads = 0;
  std::uint64_t seed = 1;
  double max_ratio = 0;  // 0: 1.25 x the length ratio
  std::string json_path;
};

struct LengthResult {
  int T = 0;
  double forward_ms = 0, backward_ms = 0, total_ms = 0;  // medians over the repeats
  double cpu_ms = 0;           // median CPU time of forward + backward, all threads (less sensitive to other load)
  double per_token_ratio = 0;  // (total / T) / (total / T at the first length)
  std::size_t arena_peak_floats = 0;
  double max_rss_mib = 0;  // the process's, after this length (lengths run in the order given)
  double gate_loss = 0;
  double keys_per_query = 0;  // mean length of a query's key list: the attention's work per token
  std::vector<double> forward_runs, backward_runs, cpu_runs;
};

double mib(std::size_t floats) { return double(floats) * sizeof(float) / (1024.0 * 1024.0); }

LengthResult time_length(const models::ModelConfig& config, models::Model& model, const LayerBenchOptions& o,
                         int T) {
  using clock = std::chrono::steady_clock;
  auto ms_since = [](clock::time_point t) { return std::chrono::duration<double, std::milli>(clock::now() - t).count(); };
  const layers::MambaMixer mixer(models::mamba_mixer_config(config), model.params(), model.buffers(),
                                 models::layer_mixer_prefix(0));
  layers::PackedBatch batch;
  batch.add_sequence(T);
  const int D = config.hidden_size;
  const std::size_t rows = std::size_t(T) * D;
  // The mixer's input is an RMSNorm output (unit scale per row); the upstream gradient a unit-scale one.
  std::vector<float> u(rows), dout(rows), out(rows), du(rows);
  Rng rng = Rng(o.seed).fork(std::uint64_t(T));
  rng.fill_normal(u, 0.0f, 1.0f);
  rng.fill_normal(dout, 0.0f, 1.0f);
  // `paper` pads the branch to the batch's padded length: here the sequence itself, with no padding.
  Arena arena(model.arena_floats(batch, 0, T));
  LengthResult r;
  r.T = T;
  std::vector<double> totals;
  layers::MambaMixer::Saved saved;  // kept between steps, as the model's mixers keep theirs (layers/mixer.h)
  for (int i = 0; i < o.warmup + o.repeats; ++i) {
    arena.reset();
    model.params().zero_grad();
    std::fill(du.begin(), du.end(), 0.0f);
    const layers::SparseStep step{true, Rng(o.seed).fork(1000 + i).next_u64(), T};
    const double cpu0 = cpu_seconds();
    const auto t0 = clock::now();
    mixer.forward(out.data(), u.data(), batch, step, arena, saved);
    const double forward = ms_since(t0);
    const auto t1 = clock::now();
    mixer.backward(du.data(), dout.data(), batch, saved, models::kGateLossWeight, arena);
    const double backward = ms_since(t1);
    const double cpu = 1e3 * (cpu_seconds() - cpu0);
    r.gate_loss = saved.sparse.gate_loss;
    if (!saved.sparse.keys.empty()) r.keys_per_query = double(saved.sparse.keys[0].total()) / T;
    check(std::all_of(du.begin(), du.end(), [](float v) { return std::isfinite(v); }),
          "hax bench sparse-layer: non-finite input gradient at T = ", T);
    std::cerr << "  T=" << T << " " << (i < o.warmup ? "warm-up" : "timed") << " " << i + 1 << "/"
              << o.warmup + o.repeats << ": forward " << fmt(forward, 1) << " ms, backward " << fmt(backward, 1)
              << " ms\n";
    if (i < o.warmup) continue;
    r.forward_runs.push_back(forward);
    r.backward_runs.push_back(backward);
    totals.push_back(forward + backward);
    r.cpu_runs.push_back(cpu);
  }
  r.forward_ms = median_of(r.forward_runs);
  r.backward_ms = median_of(r.backward_runs);
  r.total_ms = median_of(totals);
  r.cpu_ms = median_of(r.cpu_runs);
  r.arena_peak_floats = arena.peak();
  r.max_rss_mib = max_rss_mib();
  return r;
}

void print_row(const std::vector<std::string>& cells) {
  static const int widths[] = {8, 12, 13, 11, 15, 12, 16, 15, 13};
  std::string line = " ";
  for (std::size_t i = 0; i < cells.size(); ++i) {
    std::string cell = cells[i];
    if (int(cell.size()) < widths[i]) cell.insert(0, widths[i] - cell.size(), ' ');
    line += " " + cell;
  }
  std::cout << line << "\n";
}

void run_sparse_layer(LayerBenchOptions o) {
  check(!o.lengths.empty(), "--lengths needs at least one length");
  for (int T : o.lengths) check(T >= 1, "--lengths: every length must be >= 1, got ", T);
  check(o.repeats >= 1 && o.warmup >= 0, "--repeats must be >= 1 and --warmup >= 0");
  set_num_threads(o.threads);
  models::ModelConfig config = models::ModelConfig::load(o.config_path);
  if (!o.sparse.sparse_arch && !config.has_sparse()) o.sparse.sparse_arch = kDefaultArch;
  o.sparse.apply(config, o.config_path);
  config.num_hidden_layers = 1;  // the layer timed is layer 0: build no other
  models::Model model(config);
  const Machine machine = probe_machine();
  const LoadAverage load_before = load_average();
  const std::string arch = config.has_sparse() ? config.sparse_arch : "none (plain Mamba)";

  std::cout << "hax bench sparse-layer: one Mamba mixer with its sparse branch, forward + backward (training mode: "
               "gate loss included), batch 1, fp32\n"
            << "  model:   " << o.config_path << " (D=" << config.hidden_size << " I=" << config.intermediate_size
            << " N=" << config.state_size << " R=" << config.time_step_rank << " K=" << config.conv_kernel
            << "), sparse arch " << arch << ", " << config.sparse_keys << " keys, num_hash " << config.num_hash
            << ", semantics " << models::semantics_name(config.semantics) << ", LSH projection "
            << config.lsh_resample_mode() << "\n"
            << "  runs:    " << o.warmup << " warm-up + " << o.repeats << " timed per length (medians)\n"
            << "  machine: " << machine.cpu << ", " << machine.cores << " cores; threads used: " << num_threads()
            << "; load average before: " << load_before.text() << "\n\n";
  std::cerr << "hax bench sparse-layer: timing\n";
  std::vector<LengthResult> results;
  for (int T : o.lengths) {
    results.push_back(time_length(config, model, o, T));
    const LengthResult& first = results.front();
    LengthResult& r = results.back();
    r.per_token_ratio = (r.total_ms / r.T) / (first.total_ms / first.T);
  }
  const LoadAverage load_after = load_average();

  print_row({"T", "forward ms", "backward ms", "total ms", "time/T (norm)", "CPU ms", "arena peak MiB",
             "max RSS MiB", "keys/query"});
  for (const LengthResult& r : results)
    print_row({std::to_string(r.T), fmt(r.forward_ms, 1), fmt(r.backward_ms, 1), fmt(r.total_ms, 1),
               fmt(r.per_token_ratio, 2), fmt(r.cpu_ms, 1), fmt(mib(r.arena_peak_floats), 1),
               fmt(r.max_rss_mib, 0), fmt(r.keys_per_query, 1)});
  const LengthResult &first = results.front(), &last = results.back();
  const double length_ratio = double(last.T) / first.T;
  const double max_ratio = o.max_ratio > 0 ? o.max_ratio : 1.25 * length_ratio;
  const double time_ratio = last.total_ms / first.total_ms, cpu_ratio = last.cpu_ms / first.cpu_ms;
  const double memory_ratio = double(last.arena_peak_floats) / double(first.arena_peak_floats);
  const double keys_ratio = first.keys_per_query > 0 ? last.keys_per_query / first.keys_per_query : 0;
  const bool time_ok = time_ratio < max_ratio, memory_ok = memory_ratio < max_ratio;
  std::cout << "\n  time   " << last.T << " / " << first.T << ": " << fmt(time_ratio, 2) << "  (linear: "
            << fmt(length_ratio, 2) << "; limit < " << fmt(max_ratio, 2) << "): " << (time_ok ? "PASS" : "FAIL")
            << "\n  CPU    " << last.T << " / " << first.T << ": " << fmt(cpu_ratio, 2)
            << "  (CPU time of all threads: on a busy machine the steadier figure)"
            << "\n  keys   " << last.T << " / " << first.T << ": " << fmt(keys_ratio, 2)
            << "  (key-list length per query: LSH's 2^h buckets of w slots fill only after 2^h x w tokens, so a "
               "longer sequence does more attention work per token)"
            << "\n  memory " << last.T << " / " << first.T << ": " << fmt(memory_ratio, 2)
            << "  (arena peak; limit < " << fmt(max_ratio, 2) << "): " << (memory_ok ? "PASS" : "FAIL")
            << "\n  load average after: " << load_after.text()
            << " (the 1-minute figure counts this run's own threads)\n";

  if (!o.json_path.empty()) {
    json rows = json::array();
    for (const LengthResult& r : results)
      rows.push_back({{"T", r.T}, {"forward_ms", r.forward_ms}, {"backward_ms", r.backward_ms},
                      {"total_ms", r.total_ms}, {"cpu_ms", r.cpu_ms},
                      {"time_per_token_normalized", r.per_token_ratio},
                      {"arena_peak_floats", r.arena_peak_floats}, {"arena_peak_mib", mib(r.arena_peak_floats)},
                      {"max_rss_mib", r.max_rss_mib}, {"gate_loss", r.gate_loss},
                      {"keys_per_query", r.keys_per_query},
                      {"forward_runs_ms", r.forward_runs}, {"backward_runs_ms", r.backward_runs},
                      {"cpu_runs_ms", r.cpu_runs}});
    const json j{{"benchmark", "sparse-layer"},
                 {"config", o.config_path},
                 {"model", config.to_json()},
                 {"warmup", o.warmup},
                 {"repeats", o.repeats},
                 {"machine", {{"cpu", machine.cpu}, {"cores", machine.cores}, {"threads", num_threads()}}},
                 {"load_average_before", load_before.to_json()},
                 {"load_average_after", load_after.to_json()},
                 {"lengths", rows},
                 {"time_ratio", time_ratio},
                 {"cpu_time_ratio", cpu_ratio},
                 {"memory_ratio", memory_ratio},
                 {"keys_per_query_ratio", keys_ratio},
                 {"length_ratio", length_ratio},
                 {"max_ratio", max_ratio},
                 {"pass", time_ok && memory_ok}};
    write_json(o.json_path, j);
    std::cout << "  written: " << o.json_path << "\n";
  }
}

}  // namespace

void register_sparse_layer_bench(CLI::App& bench) {
  auto* command = bench.add_subcommand("sparse-layer", "Time one HAX layer's forward + backward at T = 4k, 16k, "
                                                       "64k (batch 1) and check that it grows linearly");
  command->option_defaults()->always_capture_default();
  auto o = std::make_shared<LayerBenchOptions>();
  command->add_option("--config", o->config_path, "Hugging Face-style model config (config.json)");
  add_sparse_options(*command, o->sparse);
  command->add_option("--lengths", o->lengths, "Sequence lengths, comma-separated, the first one the reference")
      ->delimiter(',');
  command->add_option("--warmup", o->warmup, "Untimed runs per length first")->check(CLI::NonNegativeNumber);
  command->add_option("--repeats", o->repeats, "Timed runs per length (the median is reported)")
      ->check(CLI::PositiveNumber);
  command->add_option("--threads", o->threads, "Threads (0: all cores)")->check(CLI::NonNegativeNumber);
  command->add_option("--seed", o->seed, "Seed of the inputs and of the training draws");
  command->add_option("--max-ratio", o->max_ratio,
                      "Limit on time(last) / time(first) and on the memory ratio (0: 1.25 x the length ratio, "
                      "20 for 4k -> 64k)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--json", o->json_path, "Also write the figures to this JSON file");
  command->callback([o] { run_sparse_layer(*o); });
}

}  // namespace hax::cli
