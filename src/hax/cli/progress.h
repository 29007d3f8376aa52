// A one-line progress bar on stderr for long jobs: fraction, rate, ETA and caller-supplied fields (loss, acc).
// It redraws at most 10 times a second, and only when stderr is a terminal, so logs and pipes stay clean.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace hax::cli {

class Progress {
 public:
  Progress(std::string label, std::uint64_t total, std::string unit = "it");
  ~Progress();

  void update(std::uint64_t done, const std::string& fields = "");
  void finish(const std::string& fields = "");  // draws the final state and ends the line

 private:
  void draw(std::uint64_t done, const std::string& fields);

  std::string label_;
  std::uint64_t total_;
  std::string unit_;
  bool enabled_;
  bool finished_ = false;
  std::uint64_t last_done_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace hax::cli
