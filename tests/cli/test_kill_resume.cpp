// Training survives SIGKILL at any moment: `hax train` is killed at random times (with a checkpoint every update,
// so many kills land inside a checkpoint write), resumed each time from whatever it left, and must end with the same
// bits as a run that was never interrupted: model, AdamW moments and trainer state.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "cli_support.h"
#include "hax/engine/rng.h"

extern char** environ;

namespace hax::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Starts `hax args...` with stdout and stderr to /dev/null.
pid_t spawn_hax(const std::vector<std::string>& args) {
  std::vector<std::string> all = {HAX_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, HAX_BINARY, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(spawned, 0);
  return pid;
}

// Waits for `pid`, killing it with SIGKILL at `deadline` if it is still running; true if it exited by itself with 0.
bool run_until(pid_t pid, Clock::time_point deadline) {
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (Clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// A checkpoint write was under way: its sibling temp folder, or the previous version set aside, is still there.
bool left_a_write_behind(const fs::path& run) {
  for (const char* name : {"last.tmp", "last.old", "best.tmp", "best.old"})
    if (fs::exists(run / name)) return true;
  return false;
}

std::vector<std::string> train_args(const fs::path& config, const fs::path& out, bool resume, int steps = 60) {
  std::vector<std::string> args = {"train", "--config", config.string(), "--out", out.string(), "--steps",
                                   std::to_string(steps),
                                   "--batch-size", "4", "--eval-every", "1", "--log-every", "1", "--threads", "1",
                                   "--min-contexts", "2", "--max-contexts", "3", "--min-keys", "2", "--max-keys", "3",
                                   "--values", "4", "--train-per-cell", "32", "--eval-per-cell", "2"};
  if (resume) args.push_back("--resume");
  return args;
}

TEST(KillAndResume, SigkillAtRandomMomentsThenResumeEndsBitIdentical) {
  const ScratchDir dir;
  const fs::path config = write_tiny_config(dir);
  const auto seconds_of = [&](const fs::path& out, int steps) {
    const auto start = Clock::now();
    EXPECT_TRUE(run_until(spawn_hax(train_args(config, out, false, steps)), Clock::time_point::max()));
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  // The whole run first: it warms the caches, so the startup timed after it is what a resumed attempt pays.
  const double whole_seconds = seconds_of(dir / "whole", 60);
  const double startup_seconds = seconds_of(dir / "one_update", 1);
  const double training_seconds = std::max(whole_seconds - startup_seconds, 0.0);

  // Ten attempts, each killed after its startup (as timed for a one-update run) plus a time drawn uniformly below 8%
  // of the uninterrupted run's training: together they get through less than half of the run, with room for the
  // machine to be twice as fast as when it was timed, so the kills land from the first checkpoints to late ones, and
  // a last attempt finishes it.
  Rng rng(2026);
  const fs::path run = dir / "killed";
  int kills = 0, kills_in_writes = 0;
  bool finished = false;
  for (int attempt = 0; attempt < 10 && !finished; ++attempt) {
    const bool resume = fs::exists(run / "last") || fs::exists(run / "last.old");
    const auto delay = std::chrono::duration<double>(startup_seconds + training_seconds * 0.08 * rng.uniform_double());
    finished = run_until(spawn_hax(train_args(config, run, resume)),
                         Clock::now() + std::chrono::duration_cast<Clock::duration>(delay));
    kills += !finished;
    kills_in_writes += !finished && left_a_write_behind(run);
  }
  if (!finished) {
    const bool resume = fs::exists(run / "last") || fs::exists(run / "last.old");
    ASSERT_TRUE(run_until(spawn_hax(train_args(config, run, resume)), Clock::time_point::max()));
  }
  EXPECT_GE(kills, 5) << "the runs finished before they could be killed: the test checks little";
  EXPECT_GE(kills_in_writes, 1) << "no kill landed inside a checkpoint write";
  for (const char* file : {"last/model.safetensors", "last/optimizer.safetensors", "last/trainer_state.json",
                           "best/model.safetensors"})
    EXPECT_EQ(read_file(run / file), read_file(dir / "whole" / file)) << file << " after " << kills << " kills";
}

}  // namespace
}  // namespace hax::testing
