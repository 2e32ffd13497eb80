#!/usr/bin/env bash
# Builds every function (or the ones named) as an arm64 Lambda zip with cargo-lambda, re-packs
# each deterministically (tools/zip-deterministic.py) and checks the size budget
# (tools/package-check.sh). Output: target/lambda/<fn>/bootstrap.zip.
#   tools/package.sh [fn...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/bootstrap.sh
export PATH="$root/.venv/bin:$PATH"
if [[ $# -gt 0 ]]; then fns=("$@"); else
  mapfile -t fns < <(for d in functions/*/; do [[ -f "$d/Cargo.toml" ]] && basename "$d"; done)
fi
# The standard library for the target; cargo-lambda links with zig (the ziglang wheel).
rustup target add aarch64-unknown-linux-gnu >/dev/null
args=()
for fn in "${fns[@]}"; do args+=(-p "$fn"); done
start=$(date +%s)
# Only the functions' binaries: crates/ also holds binaries (fault-proxy, slo) that are no
# Lambda functions.
cargo lambda build --release --arm64 --output-format zip "${args[@]}"
echo "package: built ${#fns[@]} function(s) in $(( $(date +%s) - start )) s"
zips=()
for fn in "${fns[@]}"; do zips+=("target/lambda/$fn/bootstrap.zip"); done
.venv/bin/python tools/zip-deterministic.py "${zips[@]}"
tools/package-check.sh "${fns[@]}"
