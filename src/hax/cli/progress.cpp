#include "hax/cli/progress.h"

#include <unistd.h>

#include <cstdio>

namespace hax::cli {
namespace {

std::string human_rate(double per_second) {
  char buf[32];
  if (per_second >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", per_second / 1e6);
  else if (per_second >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", per_second / 1e3);
  else std::snprintf(buf, sizeof buf, "%.1f", per_second);
  return buf;
}

}  // namespace

Progress::Progress(std::string label, std::uint64_t total, std::string unit)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      enabled_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  if (enabled_ && !finished_) std::fputc('\n', stderr);
}

void Progress::update(std::uint64_t done, const std::string& fields) {
  last_done_ = done;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(done, fields);
}

void Progress::finish(const std::string& fields) {
  if (finished_) return;
  if (enabled_) {
    draw(last_done_, fields);
    std::fputc('\n', stderr);
  }
  finished_ = true;
}

void Progress::draw(std::uint64_t done, const std::string& fields) {
  constexpr int kWidth = 28;
  const double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  const int filled = static_cast<int>(frac * kWidth);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - std::min(done, total_)) / rate : 0.0;
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r%s [%s] %5.1f%% %llu/%llu %s %s/s eta %.0fs %s\033[K", label_.c_str(), bar.c_str(),
               100.0 * frac, static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_),
               unit_.c_str(), human_rate(rate).c_str(), eta, fields.c_str());
  std::fflush(stderr);
}

}  // namespace hax::cli
