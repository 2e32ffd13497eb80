#!/usr/bin/env bash
# `make plan`: a real `terraform plan` of infra/ for each environment file, against a throwaway
# moto server (no AWS account, no network), from the provider mirror.
#
#   tools/tf-plan.sh [ENV ...]   (default: dev staging prod)
#
# Why beside `terraform validate` (tools/iac-check.sh): validate checks types against the
# provider schema but not every expression's value. The plan evaluates every for_each, local and
# jsonencode, so it catches what only an apply would: it found that chaos_runner.tf read
# `aws_fis_experiment_template.*.arn`, an attribute provider 5.x does not export.
#
# REPLACE-ME placeholders in the tfvars are replaced with well-formed dummy values (a VPC id,
# subnet ids, bucket names). Placeholder zips stand in for target/lambda. The plan of each
# environment is written as JSON to .local/plan/<env>.json (resource values as Terraform would
# create them: alarms with their dimensions, dashboard bodies, FIS stop conditions), for
# reading, and for checks that compare what Terraform deploys with what the functions emit.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
envs=("$@")
[[ ${#envs[@]} -gt 0 ]] || envs=(dev staging prod)

tf_mirror="${TF_PLUGIN_MIRROR:-/opt/tf-plugins}"
command -v terraform >/dev/null || { echo "tf-plan: no terraform binary on PATH" >&2; exit 1; }
[[ -d "$tf_mirror" ]] || { echo "tf-plan: no provider mirror at $tf_mirror (TF_PLUGIN_MIRROR)" >&2; exit 1; }
moto_bin="$root/.venv/bin/moto_server"
[[ -x "$moto_bin" ]] || { echo "tf-plan: $moto_bin missing: run make bootstrap" >&2; exit 1; }

work="$(mktemp -d)"
moto_pid=""
cleanup() {
  [[ -n "$moto_pid" ]] && kill "$moto_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A free port for moto.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$moto_bin" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
# Up to 120 s: on a busy machine (CI runs this beside clippy) moto's start is slow.
up=0
for _ in $(seq 1 600); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
  kill -0 "$moto_pid" 2>/dev/null || break
  sleep 0.2
done
if [[ $up -ne 1 ]]; then
  cat "$work/moto.log" >&2
  echo "tf-plan: moto did not start on 127.0.0.1:$port (log above)" >&2
  exit 1
fi

printf 'provider_installation {\n  filesystem_mirror {\n    path    = "%s"\n    include = ["registry.terraform.io/*/*"]\n  }\n}\n' \
  "$tf_mirror" >"$work/terraformrc"
export TF_CLI_CONFIG_FILE="$work/terraformrc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
# Every provider block (the default and the dr / postgres_dr aliases) sends every service to moto.
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

cp -r infra "$work/infra"
rm -rf "$work/infra/.terraform" "$work/infra/.terraform.lock.hcl" "$work/infra/terraform.tfstate.d"
mkdir -p "$work/zips"
for dir in functions/*/; do
  fn="$(basename "$dir")"
  mkdir -p "$work/zips/$fn"
  python3 -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1],'w'); z.writestr('bootstrap','placeholder'); z.close()" \
    "$work/zips/$fn/bootstrap.zip"
done

if ! terraform -chdir="$work/infra" init -backend=false -input=false -no-color >"$work/init.log" 2>&1; then
  cat "$work/init.log" >&2
  echo "tf-plan: terraform init failed" >&2
  exit 1
fi

mkdir -p .local/plan
failed=0
for env in "${envs[@]}"; do
  src="infra/environments/$env.tfvars"
  [[ -f "$src" ]] || { echo "tf-plan: no $src" >&2; failed=1; continue; }
  python3 - "$src" >"$work/$env.tfvars" <<'PY'
import re, sys
for line in open(sys.argv[1], encoding="utf-8"):
    if "REPLACE-ME" in line and not line.lstrip().startswith("#"):
        key = line.split("=", 1)[0].strip()
        if key.endswith("subnet_ids"):
            line = f'{key} = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]\n'
        elif key.endswith("vpc_id"):
            line = f'{key} = "vpc-0123456789abcdef0"\n'
        else:
            line = line.replace("REPLACE-ME-", "").replace('"REPLACE-ME"', '"placeholder"')
    sys.stdout.write(line)
PY
  terraform -chdir="$work/infra" workspace select -or-create "$env" >/dev/null
  t0=$(date +%s)
  if terraform -chdir="$work/infra" plan -refresh=false -input=false -lock=false -no-color \
    -var-file="$work/$env.tfvars" -var "artifacts_dir=$work/zips" -var deployment=plan \
    -out="$work/$env.plan" >"$work/$env.log" 2>&1; then
    terraform -chdir="$work/infra" show -json "$work/$env.plan" >".local/plan/$env.json"
    n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1])).get("resource_changes",[])))' ".local/plan/$env.json")
    echo "tf-plan: $env: ok, $n resources ($(( $(date +%s) - t0 )) s), .local/plan/$env.json"
  else
    grep -A12 '^Error' "$work/$env.log" >&2 || tail -40 "$work/$env.log" >&2
    echo "tf-plan: $env: plan failed" >&2
    failed=1
  fi
done
exit "$failed"
