#!/usr/bin/env bash
# The release gate in one command (make gate SCENARIO=… ENV=…; docs/loadtest-coordinator.md,
# "Reading the gate in CI"). Exit 0: open; 1: blocked (REL incident); 2: no verdict (no run
# yet, the last run was ERROR, the last run is older than MAX_AGE_HOURS, or the gate could not
# be read). One line says why.
#
# Where the gate lives: GATE_URI_PREFIX (Terraform output loadtest_gate_uri_prefix), else
# ENV=local: the demo's moto (s3://playbook-reports/k6/gate/), else the Terraform output of
# workspace ENV. MAX_AGE_HOURS (default 48, 0 = off): the nightly run is the evidence, and two
# missed nights are no evidence about this release.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
scenario=${1:-${SCENARIO:-}}
env=${2:-${ENV:-}}
max_age=${MAX_AGE_HOURS:-48}
if [[ -z "$scenario" ]]; then
  echo "usage: make gate SCENARIO=<name> ENV=<local|dev|staging|prod>  (or GATE_URI_PREFIX=s3://…/k6/gate/)" >&2
  exit 2
fi
aws=(aws)
prefix=${GATE_URI_PREFIX:-}
if [[ -z "$prefix" && "$env" == local ]]; then
  eval "$("$root/tools/local-aws.sh" env)"
  aws=(aws --endpoint-url "$MOTO_URL")
  prefix="s3://playbook-reports/k6/gate/"
fi
if [[ -z "$prefix" ]]; then
  if [[ -z "$env" ]]; then
    echo "no verdict: say where the gate is (ENV=dev|staging|prod, or GATE_URI_PREFIX)" >&2
    exit 2
  fi
  if ! prefix=$(terraform -chdir="$root/infra" workspace select "$env" >/dev/null &&
    terraform -chdir="$root/infra" output -raw loadtest_gate_uri_prefix); then
    echo "no verdict: could not read the Terraform output loadtest_gate_uri_prefix of workspace $env" >&2
    exit 2
  fi
fi
uri="${prefix%/}/$scenario.json"
if ! body=$("${aws[@]}" s3 cp "$uri" - 2>/tmp/gate-err.$$); then
  err=$(tr '\n' ' ' < /tmp/gate-err.$$); rm -f /tmp/gate-err.$$
  if [[ "$err" == *"Not Found"* || "$err" == *"NoSuchKey"* || "$err" == *"404"* ]]; then
    body='{}'
  else
    echo "no verdict: could not read $uri: $err" >&2
    exit 2
  fi
fi
rm -f /tmp/gate-err.$$
printf '%s' "$body" | jq -rj --arg max_age_h "$max_age" -f "$root/tools/gate.jq"
