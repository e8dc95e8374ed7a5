#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test through ctest.
#
# The suite runs once, on a clang AddressSanitizer + UndefinedBehaviorSanitizer build
# (build-asan/: the integration tests then drive the sanitized binaries), after the threaded
# tests under ThreadSanitizer (build-tsan/). The Release build (build/) gets what scripts/run.sh
# runs and the benchmarks (so they keep compiling; scripts/bench.sh runs them): building
# everything three times did not fit CI's two cores well under 30 minutes.
#   TRACESLO_TEST_RELEASE=1  also build everything in Release and run the suite there
#   TRACESLO_SKIP_ASAN=1     run the suite on the Release build instead
#   TRACESLO_SKIP_TSAN=1     skip the ThreadSanitizer run
# Extra arguments go to the last ctest (e.g. -R integration_ -j1).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
release_suite=0
if [ "${TRACESLO_TEST_RELEASE:-0}" = 1 ] || [ "${TRACESLO_SKIP_ASAN:-0}" = 1 ]; then
  release_suite=1
fi
if [ "$release_suite" = 0 ]; then
  TRACESLO_BUILD_TARGETS="${TRACESLO_BUILD_TARGETS:-traceslo traceslo-loadgen benchmarks}"
fi
source "$root/scripts/setup.sh"
echo "test: set-up and Release build done after ${SECONDS}s" >&2
# Sanitizer builds: -O1 with line tables only (-g1: symbolized reports with lines) compiles about
# a fifth faster than -O2 -g.
sanitizer_flags="-O1 -g1 -DNDEBUG"
ctest_args=(--output-on-failure --label-exclude bench --timeout 600 -j "$(nproc)")

# The multi-threaded tests (shards, OTLP ingest) under ThreadSanitizer (a small build).
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

if [ "$release_suite" = 1 ]; then
  ninja -C "$build_dir" >&2
  if [ "${TRACESLO_SKIP_ASAN:-0}" = 1 ]; then
    cd "$build_dir"
    exec ctest "${ctest_args[@]}" "$@"
  fi
  (cd "$build_dir" && ctest "${ctest_args[@]}" >&2)
  echo "test: Release suite done after ${SECONDS}s" >&2
fi

# The whole suite on the sanitized build; its ctest summary closes the output.
asan_dir="${build_dir}-asan"
[ -f "$asan_dir/build.ninja" ] || cmake -S "$root" -B "$asan_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$sanitizer_flags" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="$sanitizer_flags" -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_C_COMPILER=clang -DTRACESLO_SANITIZE=ON -DTRACESLO_BENCH=OFF >&2
ninja -C "$asan_dir" >&2
echo "test: ASan+UBSan build done after ${SECONDS}s" >&2
cd "$asan_dir"
ctest "${ctest_args[@]}" "$@"
