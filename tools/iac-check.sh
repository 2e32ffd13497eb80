#!/usr/bin/env bash
# The Terraform checks that need no AWS (docs/iac.md):
#   1. every .tf under infra/ parses with python-hcl2 (tools/tf2json.py);
#   2. checkov over infra/ (framework terraform): zero failed checks. A check that does not
#      apply is skipped beside its resource with `#checkov:skip=CKV_...:reason`;
#   3. where the machine has a terraform binary and a local provider mirror (the project's
#      machine has terraform 1.11 and the AWS provider under /opt/tf-plugins; TF_PLUGIN_MIRROR
#      names another): `terraform fmt -check` and `terraform validate` on a copy of infra/,
#      the provider installed from the mirror only (no registry, no network). Elsewhere the
#      step says it was skipped.
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
work="$(mktemp -d)"
trap 'rm -rf "$out" "$work"' EXIT
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

tf_mirror="${TF_PLUGIN_MIRROR:-/opt/tf-plugins}"
if command -v terraform >/dev/null && [[ -d "$tf_mirror" ]]; then
  t2=$(date +%s)
  printf 'provider_installation {\n  filesystem_mirror {\n    path    = "%s"\n    include = ["registry.terraform.io/*/*"]\n  }\n}\n' \
    "$tf_mirror" >"$work/terraformrc"
  export TF_CLI_CONFIG_FILE="$work/terraformrc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
  if ! terraform fmt -check -recursive -list=true infra; then
    echo "iac-check: the files above are not terraform fmt clean: run terraform fmt -recursive infra" >&2
    exit 1
  fi
  cp -r infra "$work/infra"
  rm -rf "$work/infra/.terraform" "$work/infra/.terraform.lock.hcl"
  if ! terraform -chdir="$work/infra" init -backend=false -input=false -no-color >"$work/init.log" 2>&1; then
    cat "$work/init.log" >&2
    echo "iac-check: terraform init (providers from the mirror $tf_mirror only) failed" >&2
    exit 1
  fi
  if ! terraform -chdir="$work/infra" validate -no-color; then
    echo "iac-check: terraform validate failed" >&2
    exit 1
  fi
  echo "iac-check: $(terraform version | head -1) fmt and validate: ok ($(( $(date +%s) - t2 )) s)"
else
  echo "iac-check: terraform fmt/validate skipped: no terraform binary, or no provider mirror at $tf_mirror"
fi
