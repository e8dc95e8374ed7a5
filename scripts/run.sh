#!/usr/bin/env bash
# The run command: installs what is missing, builds, and runs traceslo with the embedded
# defaults (data in ./var, rules from rules/) plus a demo traffic source. Ctrl-C stops both.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"

bin="$build_dir/bin/traceslo"
"$bin" serve --storage.path "$root/var" "$@" &
server=$!
demo=""
stop() {
  [ -n "$demo" ] && kill "$demo" 2>/dev/null || true
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
}
trap stop INT TERM EXIT

for _ in $(seq 100); do
  curl -fsS http://127.0.0.1:8080/-/ready >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || exit 1
  sleep 0.1
done
cat >&2 <<MSG

traceslo is running.
  OTLP/gRPC  127.0.0.1:4317      OTLP/HTTP  http://127.0.0.1:4318/v1/traces
  metrics    http://127.0.0.1:8080/metrics
Demo traffic: the OpenTelemetry JS SDK sends spans every 2 s (tests/clients/send_spans.mjs).
Press Ctrl-C to stop.

MSG
(
  while kill -0 "$server" 2>/dev/null; do
    node "$root/tests/clients/send_spans.mjs" --exporter grpc --endpoint http://127.0.0.1:4317 \
      --spans 200 --services 3 --error-ratio 0.02 >/dev/null 2>&1 || true
    sleep 2
  done
) &
demo=$!
wait "$server"
