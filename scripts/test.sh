#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test through ctest.
# Benchmarks (label bench) are not part of it: scripts/bench.sh runs them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
echo "test: set-up and Release build done after ${SECONDS}s" >&2
# Sanitizer builds: -O1 with line tables only (-g1: symbolized reports with lines) compiles about a
# fifth faster than -O2 -g, which matters on CI's two cores.
sanitizer_flags="-O1 -g1 -DNDEBUG"

# The multi-threaded tests (shards, OTLP ingest) again under ThreadSanitizer (a small build).
if [ "${TRACESLO_SKIP_TSAN:-0}" != 1 ]; then
  tsan_dir="${build_dir}-tsan"
  [ -f "$tsan_dir/build.ninja" ] || cmake -S "$root" -B "$tsan_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$sanitizer_flags" \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="$sanitizer_flags" -DTRACESLO_TSAN=ON -DTRACESLO_BENCH=OFF >&2
  ninja -C "$tsan_dir" pipeline_test receivers_test >&2
  for t in pipeline_test receivers_test; do
    TSAN_OPTIONS=halt_on_error=1 "$tsan_dir/bin/$t" --gtest_brief=1 >&2
  done
  echo "test: ThreadSanitizer run done after ${SECONDS}s" >&2
fi

# The whole suite again on a clang AddressSanitizer + UndefinedBehaviorSanitizer build (the
# integration tests then drive the sanitized binary). TRACESLO_SKIP_ASAN=1 skips it.
if [ "${TRACESLO_SKIP_ASAN:-0}" != 1 ]; then
  asan_dir="${build_dir}-asan"
  [ -f "$asan_dir/build.ninja" ] || cmake -S "$root" -B "$asan_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$sanitizer_flags" \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="$sanitizer_flags" -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_C_COMPILER=clang -DTRACESLO_SANITIZE=ON -DTRACESLO_BENCH=OFF >&2
  ninja -C "$asan_dir" >&2
  echo "test: ASan+UBSan build done after ${SECONDS}s" >&2
  (cd "$asan_dir" && ctest --output-on-failure --label-exclude bench --timeout 600 -j "$(nproc)" >&2)
  echo "test: ASan+UBSan tests done after ${SECONDS}s" >&2
fi

# The Release build last, so its ctest summary closes the output.
cd "$build_dir"
ctest --output-on-failure --label-exclude bench --timeout 600 -j "$(nproc)" "$@"
