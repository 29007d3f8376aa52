#!/usr/bin/env bash
# Installs dependencies, then configures and builds hax. Usage: scripts/build.sh [release|asan]
#   release (default): build/       -O3 -march=x86-64-v3
#   asan:              build-asan/  -O2 -g (asserts on) with AddressSanitizer + UndefinedBehaviorSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-release}"
"scripts/install-deps.sh"
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DHAX_SANITIZE=ON -DHAX_BUILD_BENCHMARKS=OFF) ;;
  *) echo "build.sh: unknown build kind '$kind' (expected release or asan)" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
