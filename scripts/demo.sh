#!/usr/bin/env bash
# The demo: traceslo with the example rules (rules/) and traceslo-loadgen sending a small shop's
# traffic with one scheduled incident (an error burst in payment). Within about two minutes a
# page reaches the log receiver (a `msg=notification` line on stderr) with a link to an exemplar
# trace that opens in traceslo's own trace page. Ctrl-C stops both.
#
# scripts/run.sh builds and calls this; it needs only the two binaries, so a test can run it with
# other ports, a data directory of its own and a shorter schedule. Environment (defaults):
#   TRACESLO_BIN, TRACESLO_LOADGEN_BIN   the binaries (build/bin/...)
#   DEMO_DATA_DIR                        traceslo's storage.path (./var)
#   DEMO_GRPC, DEMO_HTTP, DEMO_WEB       listen addresses (127.0.0.1:4317, :4318, :8080)
#   DEMO_RATE                            traces per second (20)
#   DEMO_INCIDENT_START, DEMO_INCIDENT_DURATION   the error burst (30s, 3m)
#   DEMO_DURATION                        how long the traffic runs (24h; the demo stops at Ctrl-C)
#   DEMO_CONFIG                          an extra configuration file (none)
#   DEMO_RULES                           rule file glob (rules/*.yaml)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${TRACESLO_BIN:-$root/build/bin/traceslo}"
loadgen="${TRACESLO_LOADGEN_BIN:-$root/build/bin/traceslo-loadgen}"
data_dir="${DEMO_DATA_DIR:-$root/var}"
grpc="${DEMO_GRPC:-127.0.0.1:4317}"
http="${DEMO_HTTP:-127.0.0.1:4318}"
web="${DEMO_WEB:-127.0.0.1:8080}"
rate="${DEMO_RATE:-20}"
incident_start="${DEMO_INCIDENT_START:-30s}"
incident_duration="${DEMO_INCIDENT_DURATION:-3m}"
duration="${DEMO_DURATION:-24h}"
rules="${DEMO_RULES:-$root/rules/*.yaml}"

for b in "$bin" "$loadgen"; do
  [ -x "$b" ] || { echo "demo: $b is missing; build first (scripts/run.sh does)" >&2; exit 2; }
done

serve_args=(serve --storage.path "$data_dir" --rules "$rules" --otlp.grpc-listen-address "$grpc"
            --otlp.http-listen-address "$http" --web.listen-address "$web")
[ -n "${DEMO_CONFIG:-}" ] && serve_args+=(--config.file "$DEMO_CONFIG")

server=""
traffic=""
# Stops both. Returns traceslo's exit status, so a stop asked for (Ctrl-C, SIGTERM) exits 0 when
# traceslo stopped cleanly; on any other exit (EXIT trap) the script's own status stands.
stop() {
  trap - INT TERM EXIT
  local status=0
  [ -n "$traffic" ] && kill -TERM "$traffic" 2>/dev/null && wait "$traffic" 2>/dev/null || true
  if [ -n "$server" ]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || status=$?
  fi
  echo "demo: stopped" >&2
  return "$status"
}
trap 'stop && exit 0 || exit $?' INT TERM
trap stop EXIT

"$bin" "${serve_args[@]}" &
server=$!
ready=""
for _ in $(seq 300); do
  if curl -fsS --max-time 2 "http://$web/-/ready" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
[ -n "$ready" ] || { echo "demo: traceslo did not become ready" >&2; exit 1; }

cat >&2 <<MSG

traceslo is running with the example rules (rules/).
  OTLP/gRPC  $grpc        OTLP/HTTP  http://$http/v1/traces
  metrics    http://$web/metrics
  alerts     http://$web/api/v1/alerts
traceslo-loadgen sends $rate traces/s of a small shop (gateway, checkout, payment, inventory, ...).
In $incident_start, payment starts failing half of its charges for $incident_duration: watch for a
'msg=notification' line (the page, sent to the log receiver) and open its trace_url.
Press Ctrl-C to stop.

MSG

"$loadgen" --endpoint "$grpc" --rate "$rate" --duration "$duration" --quiet --report /dev/null \
  --incident "error_burst:service=payment,ratio=0.5,start=$incident_start,duration=$incident_duration" &
traffic=$!
wait "$server"
