#!/usr/bin/env bash
# The chaos-runner part of the demo: creates in moto (AWS CLI) the stop-condition alarms, an RQ
# backlog datapoint and the FIS template `chaos-rq-queue` (tag Name) as infra/chaos_runner.tf
# does, serves a health endpoint on 127.0.0.1:18089 (the steady-state HTTP probe of
# events/chaos-runner/experiments.local.json), then invokes chaos-runner once through the
# Lambda runtime emulator (`make invoke`) with a forced dry run (FIS actionsMode skip-all) and
# prints the FIS states it followed, the journal and the month's postmortem skeleton.
# Re-runnable without a moto reset: each run has its own run_id.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/local-aws.sh start >/dev/null
eval "$(tools/local-aws.sh env)"
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
aws_() { aws --endpoint-url "$MOTO_URL" "$@"; }
account=123456789012
reports=playbook-reports
aws_ s3 mb "s3://$reports" >/dev/null 2>&1 || true

# The service under test: a health endpoint for the HTTP probe.
health_port=18089
web="$(mktemp -d)"
echo ok > "$web/healthz"
server_pid=""
if ! (exec 3<>"/dev/tcp/127.0.0.1/$health_port") 2>/dev/null; then
  python3 -m http.server "$health_port" --bind 127.0.0.1 --directory "$web" >/dev/null 2>&1 &
  server_pid=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$health_port") 2>/dev/null && break; sleep 0.1; done
fi
cleanup() { [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null; rm -rf "$web"; }
trap cleanup EXIT

echo "== stop-condition alarms (CloudWatch) and the RQ backlog metric"
for a in chaos-stop-api-availability chaos-stop-rq-backlog; do
  aws_ cloudwatch put-metric-alarm --alarm-name "$a" --namespace PlatformPlaybook --metric-name api_availability \
    --statistic Average --period 60 --evaluation-periods 1 --threshold 99 --comparison-operator LessThanThreshold
done
# worker-scaler's backlog with its full dimension set (docs/signals.json), as the rq-queue probe reads it.
aws_ cloudwatch put-metric-data --namespace PlatformPlaybook --metric-name worker_backlog_total \
  --dimensions environment=local,function=worker-scaler-local --value 7
aws_ cloudwatch describe-alarms --alarm-names chaos-stop-api-availability chaos-stop-rq-backlog \
  --query 'MetricAlarms[].[AlarmName,StateValue]' --output text | sed 's/^/  /'

echo "== FIS experiment template chaos-rq-queue (as infra/chaos_runner.tf)"
template_id="$(aws_ fis list-experiment-templates --query "experimentTemplates[?tags.Name=='chaos-rq-queue'].id | [0]" --output text)"
if [[ -z "$template_id" || "$template_id" == "None" ]]; then
  cat > .local/demo-chaos-template.json <<JSON
{
  "clientToken": "demo-chaos-rq-queue",
  "description": "rq-queue: latency to Redis and a worker crash (docs/realtime/rq_recovery.md)",
  "roleArn": "arn:aws:iam::$account:role/chaos-runner-local-fis",
  "stopConditions": [
    {"source": "aws:cloudwatch:alarm", "value": "arn:aws:cloudwatch:us-east-1:$account:alarm:chaos-stop-api-availability"},
    {"source": "aws:cloudwatch:alarm", "value": "arn:aws:cloudwatch:us-east-1:$account:alarm:chaos-stop-rq-backlog"}
  ],
  "targets": {"rq-workers": {"resourceType": "aws:ecs:task", "selectionMode": "COUNT(1)",
                             "resourceTags": {"chaos-target": "rq-workers"}}},
  "actions": {
    "redis-latency": {"actionId": "aws:ecs:task-network-latency",
                      "parameters": {"duration": "PT5M", "delayMilliseconds": "200", "sources": "redis.internal"},
                      "targets": {"Tasks": "rq-workers"}},
    "crash-worker": {"actionId": "aws:ecs:stop-task", "startAfter": ["redis-latency"], "targets": {"Tasks": "rq-workers"}}
  },
  "tags": {"Name": "chaos-rq-queue"}
}
JSON
  template_id="$(aws_ fis create-experiment-template --cli-input-json file://.local/demo-chaos-template.json \
    --query experimentTemplate.id --output text)"
fi
echo "  template $template_id: stop conditions on chaos-stop-api-availability, chaos-stop-rq-backlog; COUNT(1) worker task"

# moto completes FIS experiments at once by default; one state per GetExperiment shows them.
curl -sf -X POST "$MOTO_URL/moto-api/state-manager/set-transition" \
  -d '{"model_name": "fis::experiment", "transition": {"progression": "manual", "times": 1}}' >/dev/null

run_id="rq-queue-demo-$(date -u +%Y%m%dT%H%M%S)"
printf '{"action": "run", "experiment": "rq-queue", "force": true, "dry_run": true, "run_id": "%s"}\n' "$run_id" \
  > .local/demo-chaos-event.json
echo "== invoking chaos-runner through cargo lambda watch ($WATCH_URL): $(cat .local/demo-chaos-event.json)"
make --no-print-directory invoke FN=chaos-runner EVENT=.local/demo-chaos-event.json > .local/demo-chaos-response.json

python3 - .local/demo-chaos-response.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"\nchaos-runner: {r['status']}")
for run in r["runs"]:
    print(f"  run {run['run_id']} ({run['experiment']}, owner {run['owner']}, {'dry run' if run['dry_run'] else 'live'})")
    print(f"    outcome {run['outcome']} (Chaos Toolkit status {run['status']}, deviated {run['deviated']})")
    print(f"    FIS experiment {run['fis_experiment_id']}: {' -> '.join(run['fis_states'])}")
    print(f"    steady state before {run['steady_state_before']}, during {run['during_checks']} checks "
          f"({run['during_deviations']} missed), after {run['steady_state_after']}")
    print(f"    journal    {run['journal']}")
    print(f"    postmortem {run['postmortem']}")
PY
exp_id="$(python3 -c 'import json;print(json.load(open(".local/demo-chaos-response.json"))["runs"][0]["fis_experiment_id"])')"
echo
echo "== FIS agrees (aws fis get-experiment): state and actionsMode"
aws_ fis get-experiment --id "$exp_id" --query '{state: experiment.state.status, actionsMode: experiment.experimentOptions.actionsMode, tags: experiment.tags}' --output json
journal="$(python3 -c 'import json;print(json.load(open(".local/demo-chaos-response.json"))["runs"][0]["journal"])')"
echo "== the journal (Chaos Toolkit style), abridged: $journal"
aws_ s3 cp --quiet "$journal" - | python3 -c '
import json, sys
j = json.load(sys.stdin)
short = {k: j[k] for k in ["run_id", "status", "deviated", "outcome", "start", "end", "duration"]}
short["steady_states"] = {p: (j["steady_states"][p] or {}).get("steady_state_met") for p in ["before", "after"]}
short["steady_states"]["during"] = [s["steady_state_met"] for s in j["steady_states"]["during"]]
short["fis"] = {"actions_mode": j["fis"]["actions_mode"], "states": [(s["status"], s["at"]) for s in j["fis"]["states"]]}
print(json.dumps(short, indent=2))'
month="$(date -u +%Y-%m)"
echo "== the postmortem skeleton s3://$reports/reports/chaos/$month.md (first 40 lines)"
aws_ s3 cp --quiet "s3://$reports/reports/chaos/$month.md" - | head -40
