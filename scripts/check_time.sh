#!/usr/bin/env bash
# Fails when code reads the real clock or sleeps outside SystemClock (style rule 4):
# time is injected through traceslo::Clock so tests and replay run on simulated time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
pattern='(_clock::now\(\)|sleep_for|sleep_until|\busleep\(|\bnanosleep\()'
hits=$(grep -rnE "$pattern" --include='*.cc' --include='*.h' services include tests \
  | grep -v '^services/common/system_clock.cc:' || true)
if [ -n "$hits" ]; then
  echo "Reading the clock or sleeping outside services/common/system_clock.cc:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "check_time: no clock reads or sleeps outside SystemClock"
