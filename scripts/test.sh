#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds, and runs every test, first in the Release build and then
# in the AddressSanitizer + UBSan build, then fuzzes every reader of user files for 30 s each (scripts/fuzz.sh;
# HAX_FUZZ_SECONDS changes the time). Usage: scripts/test.sh [release|asan|fuzz|all] (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
# The test oracles (PyTorch, numpy) on top of what the build needs; build.sh below finds the base set installed.
scripts/install-deps.sh test
run_suite() {
  local kind="$1" dir="$2"
  scripts/build.sh "$kind"
  echo "== tests: $kind build =="
  (cd "$dir" && ctest --output-on-failure -j "$(nproc)")
}
case "$which" in
  release) run_suite release build ;;
  asan) run_suite asan build-asan ;;
  fuzz) scripts/fuzz.sh "${HAX_FUZZ_SECONDS:-30}" ;;
  all) run_suite release build; run_suite asan build-asan; scripts/fuzz.sh "${HAX_FUZZ_SECONDS:-30}" ;;
  *) echo "test.sh: unknown suite '$which' (expected release, asan, fuzz or all)" >&2; exit 2 ;;
esac
