#!/usr/bin/env bash
# The Terraform checks that need no AWS and no terraform binary (docs/iac.md):
#   1. every .tf under infra/ parses with python-hcl2 (tools/tf2json.py);
#   2. checkov over infra/ (framework terraform): zero failed checks. A check that does not
#      apply is skipped beside its resource with `#checkov:skip=CKV_...:reason`.
# The consistency of infra/ with the code is `cargo test -p iac-check` (part of `make test`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
t0=$(date +%s)

hcl2_bin="$(tools/iac-env.sh hcl2)"
n=$(find infra -name '*.tf' -not -path '*/.terraform/*' | wc -l)
if ! "$hcl2_bin/python" tools/tf2json.py infra >/dev/null; then
  echo "iac-check: Terraform that python-hcl2 cannot parse (above)" >&2
  exit 1
fi
echo "iac-check: $n .tf files parse ($(( $(date +%s) - t0 )) s)"

checkov_bin="$(tools/iac-env.sh checkov)"
t1=$(date +%s)
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
# --skip-download: no Bridgecrew platform, no policy download (only PyPI is reachable).
# External modules would be downloaded: infra/ uses local ones only.
set +e
"$checkov_bin/checkov" --directory infra --framework terraform --quiet --compact \
  --skip-download --output cli >"$out" 2>&1
rc=$?
set -e
cat "$out"
summary="$(grep -m1 -E 'Passed checks: [0-9]+, Failed checks: [0-9]+' "$out" || true)"
echo "iac-check: checkov ${summary:-(no summary)} ($(( $(date +%s) - t1 )) s)"
if [[ $rc -ne 0 ]]; then
  echo "iac-check: checkov failed: fix the resource, or skip the check beside it with" >&2
  echo "  #checkov:skip=CKV_...:why it does not apply" >&2
  exit 1
fi
