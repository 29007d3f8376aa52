// hax bench decode: streaming inference over long contexts. For each sparse arch (plain included), thread count and
// context length T: prefill T random tokens in chunks, then decode tokens one at a time from that state, and report
// prefill and decode tokens/s and the peak resident memory. Each (arch, threads, T) runs in a child process (the
// same binary, --one), so that its peak RSS is its own: the whole process, model, state, arena and heap, not only
// the arena. Lengths go up in order; a series stops before a length whose predicted prefill time (from the last
// one, linear in T, quadratic for `full` and `dilated`) exceeds --time-limit, and the table says so.
// The weights are random, but they reach the child as a checkpoint folder written once per arch, so the child loads
// them as `hax score` would (a mapping of model.safetensors) and the table reports that load's time.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "hax/cli/bench_common.h"
#include "hax/cli/commands.h"
#include "hax/cli/model_options.h"
#include "hax/engine/blas.h"
#include "hax/engine/error.h"
#include "hax/engine/rng.h"
#include "hax/inference/logit_stream.h"
#include "hax/models/model.h"
#include "hax/training/checkpoint.h"

namespace hax::cli {
namespace {

using nlohmann::json;
using namespace bench;

struct DecodeBenchOptions {
  std::string config_path = "configs/mamba.json";
  std::vector<std::string> archs{"plain", "sign_bin_lsh+key_selection", "sliding_window", "full"};
  std::vector<int> lengths{1024, 16384, 262144, 1048576};
  std::vector<int> threads{1, 0};
  int chunk = 4096;
  int decode_tokens = 256;
  double time_limit = 300;  // seconds of prefill per run, predicted
  std::uint64_t seed = 1;
  std::string json_path;
  // --one: a single run, in this process, printed as one JSON line (what the parent runs)
  bool one = false;
  std::string arch = "plain";
  int length = 1024;
  int thread_count = 1;
  std::string checkpoint;  // with --one: load the weights from this folder (else initialize them here)
};

// One run's figures.
struct DecodeRun {
  double prefill_s = 0, decode_s = 0, rss_mib = 0, load_s = 0;
  int length = 0, decoded = 0;
  json to_json() const {
    return {{"length", length},   {"prefill_seconds", prefill_s}, {"decode_seconds", decode_s},
            {"decoded", decoded}, {"max_rss_mib", rss_mib}, {"load_seconds", load_s},
            {"prefill_tokens_per_second", length / std::max(prefill_s, 1e-9)},
            {"decode_tokens_per_second", decoded / std::max(decode_s, 1e-9)}};
  }
};

models::ModelConfig config_for(const DecodeBenchOptions& o, const std::string& arch) {
  models::ModelConfig config = models::ModelConfig::load(o.config_path);
  config.sparse_arch = arch == "plain" ? "" : arch;
  config.validate(o.config_path);
  return config;
}

void run_one(const DecodeBenchOptions& o) {
  using clock = std::chrono::steady_clock;
  set_num_threads(o.thread_count);
  const auto loading = clock::now();
  const std::unique_ptr<models::Model> loaded =
      o.checkpoint.empty() ? std::make_unique<models::Model>(config_for(o, o.arch)) : training::load_model(o.checkpoint);
  const double load_s = std::chrono::duration<double>(clock::now() - loading).count();
  models::Model& model = *loaded;
  const int V = model.config().vocab_size;
  // Tokens are drawn chunk by chunk: a buffer of the whole context (4 MiB at 1M tokens) would count in the peak RSS
  // that the table attributes to the model.
  Rng rng(o.seed);
  std::vector<std::int32_t> chunk(o.chunk);
  const auto next_tokens = [&](int n) -> std::span<const std::int32_t> {
    for (int i = 0; i < n; ++i) chunk[i] = static_cast<std::int32_t>(rng.below(V));
    return {chunk.data(), std::size_t(n)};
  };
  inference::LogitStream stream(model);
  DecodeRun r;
  r.length = o.length;
  r.load_s = load_s;
  const auto start = clock::now();
  for (int t0 = 0; t0 < o.length; t0 += o.chunk) stream.feed(next_tokens(std::min(o.chunk, o.length - t0)));
  const auto prefilled = clock::now();
  for (int i = 0; i < o.decode_tokens; ++i) stream.feed(next_tokens(1));
  r.prefill_s = std::chrono::duration<double>(prefilled - start).count();
  r.decode_s = std::chrono::duration<double>(clock::now() - prefilled).count();
  r.decoded = o.decode_tokens;
  r.rss_mib = max_rss_mib();
  std::cout << r.to_json().dump() << std::endl;
}

// The child's command line for one run.
std::string child_command(const DecodeBenchOptions& o, const std::string& arch, const std::string& checkpoint, int T,
                          int threads) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  return cat(shell_quote(self), " bench decode --one --config ", shell_quote(o.config_path), " --arch ",
             shell_quote(arch), " --checkpoint ", shell_quote(checkpoint), " --length ", T, " --thread-count ",
             threads, " --chunk ", o.chunk, " --decode-tokens ", o.decode_tokens, " --seed ", o.seed, " 2>&1");
}

// A folder of random-weight checkpoints (one per arch) for the children, removed with this object.
class BenchCheckpoints {
 public:
  BenchCheckpoints()
      : root_(std::filesystem::temp_directory_path() / cat("hax-bench-decode-", ::getpid())) {
    std::filesystem::create_directories(root_);
  }
  ~BenchCheckpoints() {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  BenchCheckpoints(const BenchCheckpoints&) = delete;
  BenchCheckpoints& operator=(const BenchCheckpoints&) = delete;
  std::string write(const DecodeBenchOptions& o, const std::string& arch) const {
    const std::filesystem::path dir = root_ / std::to_string(written_++);
    training::save_model(dir, models::Model(config_for(o, arch)));
    return dir.string();
  }

 private:
  std::filesystem::path root_;
  mutable int written_ = 0;
};

// Prefill grows linearly in T for every bounded pattern and quadratically where the key lists grow with T.
double predicted_seconds(const std::string& arch, double last_seconds, int last_T, int T) {
  const bool grows = arch.find("full") != std::string::npos || arch.find("dilated") != std::string::npos;
  const double ratio = double(T) / last_T;
  return last_seconds * (grows ? ratio * ratio : ratio);
}

struct Series {
  std::string arch;
  int threads = 0;
  std::vector<DecodeRun> runs;
  std::string stopped;  // why the longer lengths did not run
};

Series run_series(const DecodeBenchOptions& o, const std::string& arch, const std::string& checkpoint, int threads) {
  Series s{arch, threads, {}, ""};
  for (int T : o.lengths) {
    if (!s.runs.empty()) {
      const double predicted = predicted_seconds(arch, s.runs.back().prefill_s, s.runs.back().length, T);
      if (predicted > o.time_limit) {
        s.stopped = cat("stopped before T = ", T, ": predicted prefill ", fmt(predicted, 0), " s > --time-limit ",
                        fmt(o.time_limit, 0), " s");
        break;
      }
    }
    std::cerr << "bench decode: " << arch << ", " << threads << " thread(s), T = " << grouped(T) << " ..."
              << std::endl;
    const auto [out, status] = run_capture(child_command(o, arch, checkpoint, T, threads));
    const json j = parse_last_json_line(out);
    if (status != 0 || !j.is_object()) {
      s.stopped = cat("T = ", T, " failed (exit ", status, "): ", out.substr(0, 300));
      break;
    }
    DecodeRun r;
    r.length = T;
    r.prefill_s = j.at("prefill_seconds"), r.decode_s = j.at("decode_seconds"), r.decoded = j.at("decoded");
    r.rss_mib = j.at("max_rss_mib"), r.load_s = j.at("load_seconds");
    s.runs.push_back(r);
  }
  return s;
}

void print_series(const std::vector<Series>& all) {
  std::cout << "\n| arch | threads | context T | load s | prefill tok/s | decode tok/s | peak RSS MiB |\n"
               "|---|---:|---:|---:|---:|---:|---:|\n";
  for (const Series& s : all) {
    for (const DecodeRun& r : s.runs)
      std::cout << "| " << s.arch << " | " << s.threads << " | " << grouped(r.length) << " | " << fmt(r.load_s, 3)
                << " | " << grouped(std::round(r.length / r.prefill_s)) << " | " << grouped(std::round(r.decoded / r.decode_s))
                << " | " << fmt(r.rss_mib, 1) << " |\n";
    if (!s.stopped.empty())
      std::cout << "| " << s.arch << " | " << s.threads << " | " << s.stopped << " | | | | |\n";
  }
}

void run_table(DecodeBenchOptions o) {
  const Machine machine = probe_machine();
  for (int& t : o.threads)
    if (t == 0) t = machine.cores;
  for (const std::string& arch : o.archs) config_for(o, arch);  // a bad arch fails here, before any run
  const BenchCheckpoints checkpoints;
  std::vector<Series> all;
  for (const std::string& arch : o.archs) {
    const std::string checkpoint = checkpoints.write(o, arch);
    for (int threads : o.threads) all.push_back(run_series(o, arch, checkpoint, threads));
  }
  std::cout << "hax bench decode: " << o.config_path << ", prefill in chunks of " << o.chunk << ", then "
            << o.decode_tokens << " tokens decoded one at a time; random weights and tokens (seed " << o.seed
            << ")\n  machine: " << machine.cpu << ", " << machine.cores << " cores; load average "
            << load_average().text() << "\n";
  print_series(all);
  if (o.json_path.empty()) return;
  json series = json::array();
  for (const Series& s : all) {
    json runs = json::array();
    for (const DecodeRun& r : s.runs) runs.push_back(r.to_json());
    series.push_back({{"arch", s.arch}, {"threads", s.threads}, {"runs", runs}, {"stopped", s.stopped}});
  }
  write_json(o.json_path, {{"config", o.config_path}, {"chunk", o.chunk}, {"decode_tokens", o.decode_tokens},
                           {"seed", o.seed}, {"machine", {{"cpu", machine.cpu}, {"cores", machine.cores}}},
                           {"load_average", load_average().to_json()}, {"series", series}});
}

}  // namespace

void register_decode_bench(CLI::App& bench) {
  auto* command = bench.add_subcommand("decode", "Streaming inference over long contexts: prefill and decode "
                                                 "tokens/s and peak RSS, per sparse arch, threads and length");
  command->option_defaults()->always_capture_default();
  auto o = std::make_shared<DecodeBenchOptions>();
  command->add_option("--config", o->config_path, "Model config (random weights)");
  command->add_option("--archs", o->archs, "Sparse archs to compare (plain: none)")->delimiter(',');
  command->add_option("--lengths", o->lengths, "Context lengths, in increasing order")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  command->add_option("--threads", o->threads, "Thread counts (0: all cores)")
      ->delimiter(',')
      ->check(CLI::NonNegativeNumber);
  command->add_option("--chunk", o->chunk, "Prefill chunk")->check(CLI::PositiveNumber);
  command->add_option("--decode-tokens", o->decode_tokens, "Tokens decoded one at a time after the prefill")
      ->check(CLI::PositiveNumber);
  command->add_option("--time-limit", o->time_limit, "Skip lengths whose predicted prefill takes longer (seconds)")
      ->check(CLI::PositiveNumber);
  command->add_option("--seed", o->seed, "Seed of the weights' initialization and of the tokens");
  command->add_option("--json", o->json_path, "Also write the figures to this JSON file");
  // One run in this process: what the table runs in children (each has its own peak RSS).
  auto* one = command->add_flag("--one", o->one, "Run one (arch, length, threads) here and print it as JSON");
  command->add_option("--arch", o->arch, "With --one: the sparse arch")->needs(one);
  command->add_option("--length", o->length, "With --one: the context length")->needs(one)->check(CLI::PositiveNumber);
  command->add_option("--thread-count", o->thread_count, "With --one: threads")->needs(one)->check(CLI::PositiveNumber);
  command->add_option("--checkpoint", o->checkpoint, "With --one: load the weights from this checkpoint folder")
      ->needs(one);
  command->callback([o] { o->one ? run_one(*o) : run_table(*o); });
}

}  // namespace hax::cli
