#!/usr/bin/env bash
# The worker-scaler part of the demo: creates an ECS cluster and service (desired 2) in moto
# with the AWS CLI, enqueues 150 jobs into the RQ queue `demo-default` in the machine's Redis
# exactly as RQ does (job hash, RPUSH rq:queue:NAME, SADD rq:queues), then invokes
# worker-scaler through the Lambda runtime emulator (`make invoke`): a dry run "as if at
# 21:30 UTC" shows the decision, three scheduled checks (21:00, 21:05, 21:10) double the
# service to 4, and describe-services shows the new desired count.
# Re-runnable: state and queue are reset first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/local-aws.sh start >/dev/null
eval "$(tools/local-aws.sh env)"
ecs() { aws --endpoint-url "$MOTO_URL" ecs "$@"; }
redis() { redis-cli -h 127.0.0.1 -p 6379 "$@"; }
mkdir -p .local

echo "== ECS service playbook-workers/rq-worker at desired count 2 (moto)"
ecs create-cluster --cluster-name playbook-workers >/dev/null
ecs register-task-definition --family rq-worker \
  --container-definitions '[{"name":"worker","image":"app:latest","memory":512,"command":["rq","worker","demo-default"]}]' >/dev/null
ecs delete-service --cluster playbook-workers --service rq-worker --force >/dev/null 2>&1 || true
ecs create-service --cluster playbook-workers --service-name rq-worker --task-definition rq-worker --desired-count 2 >/dev/null \
  || ecs update-service --cluster playbook-workers --service rq-worker --desired-count 2 >/dev/null

echo "== 150 jobs enqueued in rq:queue:demo-default the way RQ does"
redis DEL rq:queue:demo-default worker-scaler-demo:ecs:playbook-workers/rq-worker:state >/dev/null
now="$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)"
for i in $(seq 1 150); do
  id="demo-$(date +%s%N)-$i"
  printf 'MULTI\nHSET rq:job:%s status queued origin demo-default created_at %s enqueued_at %s description app.tasks.export(%s) timeout 180\nRPUSH rq:queue:demo-default %s\nSADD rq:queues rq:queue:demo-default\nEXEC\n' \
    "$id" "$now" "$now" "$i" "$id"
done | redis >/dev/null
echo "   LLEN rq:queue:demo-default = $(redis LLEN rq:queue:demo-default)"

invoke() {
  printf '%s' "$1" > .local/demo-scaler-event.json
  make --no-print-directory invoke FN=worker-scaler EVENT=.local/demo-scaler-event.json
}
show() {
  python3 -c '
import json, sys
r = json.load(sys.stdin)
d = r.get("decision") or {}
backlog = sum(q["queued"] + q["intermediate"] for q in r["snapshot"]["queues"])
print("   %-9s at %s UTC: backlog %d, %s %s -> %s (%s, %s consecutive high checks)" % (
    r["status"], r["evaluated_at"][11:16], backlog, d.get("action"), d.get("from"), d.get("to"),
    d.get("reason"), d.get("consecutive_high")))'
}

echo "== dry run, as if at 21:30 UTC (changes nothing)"
invoke '{"dry_run": true, "at": "2026-11-27T21:30:00Z"}' | show
echo "== three scheduled checks inside the 20:00-02:00 window (N = 3)"
# `at` sets the policy's clock so the demo runs at any hour; outside a dry run it is accepted
# only with ENVIRONMENT=local (tools/local.env).
for t in 21:00 21:05 21:10; do
  invoke "{\"source\": \"schedule\", \"scheduled_time\": \"2026-11-27T$t:00Z\", \"at\": \"2026-11-27T$t:00Z\"}" | show
done
echo "== the same scheduled time delivered again (at-least-once): not counted twice"
invoke '{"source": "schedule", "scheduled_time": "2026-11-27T21:10:00Z", "at": "2026-11-27T21:10:00Z"}' | python3 -c 'import json,sys; print("   " + json.load(sys.stdin)["status"])'
echo "== ECS says:"
ecs describe-services --cluster playbook-workers --services rq-worker \
  --query 'services[0].{service: serviceName, desiredCount: desiredCount}' --output json
