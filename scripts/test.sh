#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds, and runs every test, first in the Release build and then
# in the AddressSanitizer + UBSan build. Usage: scripts/test.sh [release|asan|all] (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
run_suite() {
  local kind="$1" dir="$2"
  scripts/build.sh "$kind"
  echo "== tests: $kind build =="
  (cd "$dir" && ctest --output-on-failure -j "$(nproc)")
}
case "$which" in
  release) run_suite release build ;;
  asan) run_suite asan build-asan ;;
  all) run_suite release build; run_suite asan build-asan ;;
  *) echo "test.sh: unknown suite '$which' (expected release, asan or all)" >&2; exit 2 ;;
esac
