#!/usr/bin/env bash
# Installs what is missing on a Debian 12 machine (as root), then configures and builds.
# Sourced by scripts/run.sh and scripts/test.sh; safe to run again (it only installs what is missing).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

apt_packages=(
  build-essential cmake ninja-build pkg-config git
  libboost1.81-dev libboost-json1.81-dev
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  prometheus-cpp-dev libyaml-cpp-dev libsqlitecpp-dev libsqlite3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libabsl-dev
  libsimdjson-dev libcli11-dev libspdlog-dev libfmt-dev zlib1g-dev libssl-dev librdkafka-dev
  clang libclang-rt-14-dev clang-format
  prometheus prometheus-alertmanager chromium curl jq openssl yamllint
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# npm packages for the test clients (real OpenTelemetry JS SDK exporters), from the lockfile.
if [ -f "$root/tests/clients/package-lock.json" ]; then
  stamp="$root/tests/clients/node_modules/.traceslo-lock"
  if ! cmp -s "$root/tests/clients/package-lock.json" "$stamp" 2>/dev/null; then
    echo "setup: installing npm packages for tests/clients (npm ci)" >&2
    (cd "$root/tests/clients" && npm ci --no-audit --no-fund --loglevel=error >&2)
    cp "$root/tests/clients/package-lock.json" "$stamp"
  fi
fi

# Configure (once) and build. TRACESLO_BUILD_DIR and TRACESLO_CMAKE_ARGS override the defaults.
build_dir="${TRACESLO_BUILD_DIR:-$root/build}"
if [ ! -f "$build_dir/build.ninja" ]; then
  echo "setup: configuring $build_dir (Release)" >&2
  cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${TRACESLO_CMAKE_ARGS:-} >&2
fi
# TRACESLO_BUILD_TARGETS: what to build (default: everything); scripts/test.sh builds less here.
echo "setup: building (ninja -C $build_dir ${TRACESLO_BUILD_TARGETS:-})" >&2
# shellcheck disable=SC2086  # a list of target names
ninja -C "$build_dir" ${TRACESLO_BUILD_TARGETS:-} >&2
