// What the `hax bench` subcommands share: the machine they ran on, the load on it, timing helpers, and number
// formatting for their tables.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace hax::cli::bench {

inline constexpr double kFlopPerCycle = 32;  // AVX2 FMA fp32: 2 FMA units x 8 lanes x 2 FLOP

struct Machine {
  std::string cpu = "unknown CPU";
  int cores = 1;
  double mhz = 0;  // 0: unknown
  bool avx2_fma = false;
  double peak_gflops() const { return cores * mhz * 1e-3 * kFlopPerCycle; }
};

// /proc/cpuinfo's "model name", "cpu MHz" (averaged over the cores: the current clock, which on a VM is the host's
// nominal one) and whether the flags have AVX2 and FMA, on which the 32 FLOP/cycle of the peak rests.
Machine probe_machine();

// The 1-, 5- and 15-minute load averages of /proc/loadavg (zeros when unreadable): how busy the machine was, which
// on a shared machine says how much of the wall time was ours.
struct LoadAverage {
  double one = 0, five = 0, fifteen = 0;
  std::string text() const;  // "1.97 2.23 2.07"
  nlohmann::json to_json() const;
};
LoadAverage load_average();

// The peak resident set of this process so far (getrusage), in MiB.
double max_rss_mib();

double cpu_seconds();  // all threads of this process
double median_of(std::vector<double> v);

std::string fmt(double v, int decimals);
std::string grouped(double v);  // 1234567 -> "1,234,567"
std::string shell_quote(const std::string& s);

// Runs a shell command; its stdout and exit status (-1 when it did not exit normally).
std::pair<std::string, int> run_capture(const std::string& command);
// The JSON object on the last line of `out` that starts with '{' (null when none parses): how a child reports.
nlohmann::json parse_last_json_line(const std::string& out);

// Writes j (indented) to path atomically.
void write_json(const std::string& path, const nlohmann::json& j);

}  // namespace hax::cli::bench
