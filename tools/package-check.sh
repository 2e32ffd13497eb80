#!/usr/bin/env bash
# Fails if a function's zip is missing or over the size budget (docs/deploy.md: 10 MB per
# zip, PACKAGE_BUDGET_BYTES to override). Prints every zip's size.
#   tools/package-check.sh [fn...]     (default: every crate in functions/)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
budget="${PACKAGE_BUDGET_BYTES:-10485760}"
dir="${ARTIFACTS_DIR:-target/lambda}"
if [[ $# -gt 0 ]]; then fns=("$@"); else
  mapfile -t fns < <(for d in functions/*/; do [[ -f "$d/Cargo.toml" ]] && basename "$d"; done)
fi
fail=0
for fn in "${fns[@]}"; do
  z="$dir/$fn/bootstrap.zip"
  if [[ ! -f "$z" ]]; then
    printf '%-28s %12s  MISSING (%s)\n' "$fn" "-" "$z"
    fail=1
    continue
  fi
  size=$(stat -c %s "$z")
  if (( size > budget )); then
    printf '%-28s %12d bytes  OVER BUDGET (%d)\n' "$fn" "$size" "$budget"
    fail=1
  else
    printf '%-28s %12d bytes  %3d%% of budget\n' "$fn" "$size" $(( size * 100 / budget ))
  fi
done
if (( fail )); then
  echo "package-check: a zip is missing or over the ${budget}-byte budget" >&2
  exit 1
fi
