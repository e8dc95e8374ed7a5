#!/usr/bin/env bash
# Refreshes the copies the Helm chart ships (Helm's .Files can read only files inside the chart):
#   rules/*.yaml      -> helm/traceslo/files/rules/       (not rules/tests/ or rules/README.md)
#   dashboards/*.json -> helm/traceslo/files/dashboards/
# Copies that no longer have an original are removed. tests/integration/helm_chart.test.mjs fails
# when the copies drift; run this script, then commit the copies with the originals.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="$root/helm/traceslo"

# sync SRC_DIR PATTERN DEST_DIR: DEST_DIR ends up holding exactly SRC_DIR/PATTERN, byte for byte.
sync() {
  local src="$1" pattern="$2" dest="$3" f
  mkdir -p "$dest"
  for f in "$dest"/$pattern; do
    [ -e "$f" ] || continue
    [ -e "$src/$(basename "$f")" ] || { rm -f "$f"; echo "removed ${f#"$root"/}"; }
  done
  for f in "$src"/$pattern; do
    [ -e "$f" ] || continue
    if ! cmp -s "$f" "$dest/$(basename "$f")"; then
      cp "$f" "$dest/"
      echo "copied ${f#"$root"/} -> ${dest#"$root"/}/"
    fi
  done
}

sync "$root/rules" '*.yaml' "$chart/files/rules"
sync "$root/dashboards" '*.json' "$chart/files/dashboards"
