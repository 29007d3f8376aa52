#!/usr/bin/env bash
# Fuzzes every reader of user files (fuzz/readers.h) with libFuzzer + AddressSanitizer + UBSan, each target for a
# bounded time, and prints how many inputs each ran. Usage:
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 60 s each, every target in fuzz/targets/)
# Starts from the committed seed corpus (fuzz/corpus/<target>/) and the regression inputs (fuzz/regressions/), and
# keeps what it learns in build-fuzz/corpus/<target>/, so a second run goes on where the first stopped. A finding
# (crash, sanitizer report, uncaught non-hax exception, hang over 10 s, allocation over 1 GiB) is saved as
# build-fuzz/findings/<target>-crash-<hash> (or -timeout-, -oom-, -leak-) and the script exits 1: turn each into a
# file under fuzz/regressions/<target>/ (tests/io/test_fuzz_replay.cpp replays them) and fix the reader.
# Summary (JSON lines, one per target): build-fuzz/fuzz-summary.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2; }

scripts/install-deps.sh fuzz
CC=clang CXX=clang++ cmake -S fuzz -B build-fuzz >/dev/null
cmake --build build-fuzz -j "$(nproc)"

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in fuzz/targets/*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi

mkdir -p build-fuzz/findings
summary=build-fuzz/fuzz-summary.jsonl
: > "$summary"
found=0
for t in "${targets[@]}"; do
  [ -x "build-fuzz/fuzz_$t" ] || { echo "fuzz.sh: no target '$t' (fuzz/targets/$t.cpp)" >&2; exit 2; }
  work="build-fuzz/corpus/$t"
  mkdir -p "$work"
  seeds=("fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && seeds+=("fuzz/regressions/$t")
  log="build-fuzz/fuzz-$t.log"
  echo "== fuzz: $t for ${seconds} s =="
  set +e
  "build-fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -max_len=16384 -print_final_stats=1 -artifact_prefix="build-fuzz/findings/$t-" "$work" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(find "$work" -type f | wc -l)
  status=clean
  if [ "$rc" -ne 0 ]; then
    status=finding
    found=1
    grep -E "^==[0-9]+==ERROR|^SUMMARY|runtime error|uncaught|Test unit written" "$log" | head -5 >&2 || true
    echo "fuzz.sh: $t: finding (exit $rc); the whole log: $log" >&2
  fi
  printf '  %-16s %10s inputs in %s s, corpus %s, %s\n' "$t" "${runs:-?}" "$seconds" "$corpus" "$status"
  printf '{"target": "%s", "seconds": %s, "executions": %s, "corpus": %s, "status": "%s"}\n' \
    "$t" "$seconds" "${runs:-null}" "$corpus" "$status" >> "$summary"
done
exit "$found"
