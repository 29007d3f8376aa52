#include "hax/cli/bench_common.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "hax/io/json_file.h"

namespace hax::cli::bench {

Machine probe_machine() {
  Machine m;
  m.cores = static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  std::ifstream in("/proc/cpuinfo");
  double mhz_sum = 0;
  int mhz_count = 0;
  for (std::string line; std::getline(in, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    key.erase(key.find_last_not_of(" \t") + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name") m.cpu = value;
    if (key == "cpu MHz") mhz_sum += std::atof(value.c_str()), ++mhz_count;
    if (key == "flags") m.avx2_fma = (" " + value + " ").find(" avx2 ") != std::string::npos &&
                                     (" " + value + " ").find(" fma ") != std::string::npos;
  }
  if (mhz_count > 0) m.mhz = mhz_sum / mhz_count;
  return m;
}

std::string LoadAverage::text() const { return fmt(one, 2) + " " + fmt(five, 2) + " " + fmt(fifteen, 2); }

nlohmann::json LoadAverage::to_json() const { return {{"1min", one}, {"5min", five}, {"15min", fifteen}}; }

LoadAverage load_average() {
  LoadAverage l;
  std::ifstream in("/proc/loadavg");
  in >> l.one >> l.five >> l.fifteen;
  if (!in) l = {};
  return l;
}

double max_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string fmt(double v, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, v);
  return text;
}

std::string grouped(double v) {
  std::string digits = fmt(std::round(v), 0), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out += ',';
    out += digits[i];
  }
  return out;
}

std::pair<std::string, int> run_capture(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return {"", -1};
  std::string out;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
  const int status = pclose(pipe);
  return {out, status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

nlohmann::json parse_last_json_line(const std::string& out) {
  std::istringstream lines(out);
  nlohmann::json found;
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] == '{') found = nlohmann::json::parse(line, nullptr, false);
  return found;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

void write_json(const std::string& path, const nlohmann::json& j) { io::write_json_file(path, j); }

}  // namespace hax::cli::bench
