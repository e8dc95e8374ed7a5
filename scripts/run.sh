#!/usr/bin/env bash
# The run command: installs what is missing, builds, and runs the demo (scripts/demo.sh):
# traceslo with the embedded defaults (data in ./var, rules from rules/, the log receiver) and
# traceslo-loadgen sending traffic with one scheduled incident, which pages within about two
# minutes. Ctrl-C stops both. Arguments are passed to scripts/demo.sh's environment as
# documented there (e.g. DEMO_WEB=127.0.0.1:9090 scripts/run.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
export TRACESLO_BIN="$build_dir/bin/traceslo" TRACESLO_LOADGEN_BIN="$build_dir/bin/traceslo-loadgen"
exec "$root/scripts/demo.sh"
