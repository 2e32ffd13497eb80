#!/usr/bin/env bash
# The alerting part of the demo: alert-router, through the Lambda emulator, routes a page (and
# its flap and recovery), AWS Budgets and Cost Anomaly Detection messages, the release gate's
# incident (the loadtest demo's own REL record when there is one) and informational alarms to
# local receivers that check each service's documented request shape
# (tools/alert-receivers.py), sends the daily digest through SNS into a mailbox queue, then
# names where each alert went: route, dedup key / ticket, resolved or not.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/local-aws.sh start >/dev/null
eval "$(tools/local-aws.sh env)"
awsm() { aws --endpoint-url "$MOTO_URL" "$@"; } # moto; the invokes name the emulator
RECEIVERS_PORT="$ALERT_RECEIVERS_PORT"
R="http://127.0.0.1:$RECEIVERS_PORT"
log="$STATE_DIR/alert-receivers.log"
if ! curl -sf "$R/_state" >/dev/null 2>&1; then
  setsid python3 tools/alert-receivers.py "$RECEIVERS_PORT" >"$log" 2>&1 < /dev/null &
  echo $! > "$STATE_DIR/alert-receivers.pid"
  for _ in $(seq 50); do curl -sf "$R/_state" >/dev/null 2>&1 && break; sleep 0.1; done
fi
curl -sf -X POST "$R/_reset" -H 'Content-Type: application/json' -d '{}' >/dev/null

secret='{"pagerduty_routing_key":"0123456789abcdef0123456789abcdef","opsgenie_api_key":"demo-opsgenie-key","slack_finops_webhook_url":"'"$R"'/slack/services/T000/B000/DEMO","jira_email":"finops-bot@example.com","jira_api_token":"demo-token"}'
awsm secretsmanager create-secret --name alert-routes-local --secret-string "$secret" >/dev/null 2>&1 ||
  awsm secretsmanager put-secret-value --secret-id alert-routes-local --secret-string "$secret" >/dev/null
awsm s3api create-bucket --bucket playbook-reports >/dev/null 2>&1 || true
topic=$(awsm sns create-topic --name alert-digest-local --query TopicArn --output text)
queue=$(awsm sqs create-queue --queue-name alert-digest-mailbox --query QueueUrl --output text)
awsm sqs purge-queue --queue-url "$queue" >/dev/null 2>&1 || true
awsm sns subscribe --topic-arn "$topic" --protocol sqs --attributes RawMessageDelivery=true \
  --notification-endpoint arn:aws:sqs:us-east-1:123456789012:alert-digest-mailbox >/dev/null

# The release gate's incident: the loadtest demo's own, if it opened one.
incident_key=$(awsm s3api list-objects-v2 --bucket playbook-reports --query 'Contents[].Key' --output text 2>/dev/null |
  tr '\t' '\n' | grep -E 'incidents/REL-[0-9]+\.json$' | tail -1 || true)
if [[ -n "$incident_key" ]]; then
  awsm s3 cp "s3://playbook-reports/$incident_key" .local/demo-incident.json >/dev/null
  echo "== release incident from the loadtest demo: $incident_key"
else
  printf '%s' '{"id":"REL-0001","scenario":"quote-generation","run_id":"demo","opened_at":"2026-12-02T03:10:00Z","reason":"p95 1200.0 ms broke http_req_duration p(95)<900 on 2 consecutive runs","p95_ms":1200.0,"p95_objective":"p(95)<900","consecutive_p95_failures":2,"report":"s3://playbook-reports/loadtest/demo/report.md","gate":"BLOCK"}' > .local/demo-incident.json
  echo "== no release incident in the loadtest demo's bucket: a sample one"
fi

run=$(date +%s)
invoke() { # name topic message-file
  python3 - "$1" "$2" "$3" "$run" > .local/demo-alert-event.json <<'PY'
import json, sys, datetime
name, topic, path, run = sys.argv[1:]
msg = open(path).read()
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
print(json.dumps({"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification",
  "MessageId": f"demo-{run}-{name}", "TopicArn": f"arn:aws:sns:us-east-1:123456789012:{topic}",
  "Subject": name, "Message": msg, "Timestamp": now}}]}))
PY
  if ! AWS_MAX_ATTEMPTS=1 aws lambda invoke --endpoint-url "$WATCH_URL" --cli-read-timeout 0 \
      --function-name alert-router --payload fileb://.local/demo-alert-event.json .local/demo-alert-out.json >/dev/null; then
    echo "   alert-router failed on $1; its log:" >&2; tail -5 "$STATE_DIR/alert-router.log" >&2; exit 1
  fi
  python3 -c 'import json,sys; r=json.load(open(".local/demo-alert-out.json")); print("   %-22s %s" % (sys.argv[1], ", ".join("%s:%s%s" % (d["route"], d["outcome"], (" "+d["reference"]) if d.get("reference") else "") for d in r.get("deliveries", []))))' "$1"
}
alarm() { # name state -> file
  python3 -c 'import json,sys; n,s=sys.argv[1:]; print(json.dumps({"AlarmName":n,"AlarmDescription":"demo alarm","AWSAccountId":"123456789012","NewStateValue":s,"OldStateValue":"OK" if s=="ALARM" else "ALARM","NewStateReason":"demo: state set by tools/demo-alerts.sh","StateChangeTime":"2026-12-02T10:00:00.000+0000","Region":"US East (N. Virginia)","AlarmArn":"arn:aws:cloudwatch:us-east-1:123456789012:alarm:"+n}))' "$1" "$2" > ".local/demo-alarm-$1-$2.json"
  echo ".local/demo-alarm-$1-$2.json"
}
cat > .local/demo-budget.txt <<'EOF'
AWS Budget Notification December 2, 2026
AWS Account 123456789012

Dear AWS Customer,

You requested that we alert you when the ACTUAL Cost associated with your prod-monthly budget is greater than 80.00% of your budgeted amount.

Budget Name: prod-monthly
Budget Type: Cost
Budgeted Amount: $9,000.00
Alert Type: ACTUAL
Alert Threshold: > $7,200.00
ACTUAL Amount: $7,412.88
EOF
printf '%s' '{"accountId":"123456789012","anomalyId":"demo-anomaly-1","monitorName":"services","anomalyStartDate":"2026-12-01T00:00:00Z","impact":{"totalImpact":"812.40","totalImpactPercentage":210.0,"totalActualSpend":1199.4,"totalExpectedSpend":387.0},"rootCauses":[{"service":"Amazon Relational Database Service","region":"us-east-1","usageType":"InstanceUsage:db.r6g.xlarge","linkedAccount":"123456789012"}],"anomalyDetailsLink":"https://console.aws.amazon.com/cost-management/home#/anomaly-detection"}' > .local/demo-cad.json

echo "== alert-router: each notification through the Lambda emulator"
page=slo-api-availability-page-local
invoke page-alarm slo-critical-local "$(alarm $page ALARM)"
invoke page-no-data slo-critical-local "$(alarm $page INSUFFICIENT_DATA)"
invoke page-alarm-again slo-critical-local "$(alarm $page ALARM)"
invoke budget-80 finops-alerts-local .local/demo-budget.txt
invoke budget-80-again finops-alerts-local .local/demo-budget.txt
invoke cost-anomaly finops-alerts-local .local/demo-cad.json
# cost-anomaly's own detections from the FinOps demo, as SNS delivered them to
# alert-router's subscription (a queue standing in for the Lambda subscription).
inbox=$(awsm sqs get-queue-url --queue-name alert-router-finops-inbox --query QueueUrl --output text 2>/dev/null || true)
n_own=0
while [[ -n "$inbox" ]]; do
  awsm sqs receive-message --queue-url "$inbox" --max-number-of-messages 10 --wait-time-seconds 0 > .local/demo-inbox.json
  count=$(python3 -c 'import json; print(len(json.load(open(".local/demo-inbox.json")).get("Messages", [])) if open(".local/demo-inbox.json").read().strip() else 0)')
  [[ $count == 0 ]] && break
  for i in $(seq 0 $((count - 1))); do
    python3 - "$i" > .local/demo-alert-event.json <<'PY'
import json, sys
m = json.load(open(".local/demo-inbox.json"))["Messages"][int(sys.argv[1])]
env = json.loads(m["Body"])  # the SNS envelope SNS wrote to the queue
print(json.dumps({"Records": [{"EventSource": "aws:sns", "Sns": {k: env.get(k) for k in
  ("Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp", "MessageAttributes")}}]}))
PY
    if ! AWS_MAX_ATTEMPTS=1 aws lambda invoke --endpoint-url "$WATCH_URL" --cli-read-timeout 0 \
        --function-name alert-router --payload fileb://.local/demo-alert-event.json .local/demo-alert-out.json >/dev/null; then
      echo "   alert-router failed on a cost-anomaly alert; its log:" >&2; tail -5 "$STATE_DIR/alert-router.log" >&2; exit 1
    fi
    python3 -c 'import json; e=json.load(open(".local/demo-alert-event.json"))["Records"][0]["Sns"]; m=json.loads(e["Message"]); r=json.load(open(".local/demo-alert-out.json")); print("   %-22s %s  (%s: %s)" % ("cost-anomaly " + m["action"], ", ".join("%s:%s%s" % (d["route"], d["outcome"], (" "+d["reference"]) if d.get("reference") else "") for d in r.get("deliveries", [])), m["key"][len("cost-anomaly/"):], m["title"][:50]))'
    awsm sqs delete-message --queue-url "$inbox" --receipt-handle "$(python3 -c 'import json,sys; print(json.load(open(".local/demo-inbox.json"))["Messages"][int(sys.argv[1])]["ReceiptHandle"])' "$i")"
    n_own=$((n_own + 1))
  done
done
[[ $n_own == 0 ]] && echo "   (no cost-anomaly alerts waiting: the FinOps demo published none this run)"
invoke release-incident loadtest-incidents-local .local/demo-incident.json
invoke info-export slo-info-local "$(alarm export-compressor-failures-local ALARM)"
invoke info-export-ok slo-info-local "$(alarm export-compressor-failures-local OK)"
invoke page-ok slo-critical-local "$(alarm $page OK)"

today=$(date -u +%F)
printf '{"kind": "digest", "day": "%s"}' "$today" > .local/demo-digest.json
aws lambda invoke --endpoint-url "$WATCH_URL" --cli-read-timeout 0 --function-name alert-router \
  --payload fileb://.local/demo-digest.json .local/demo-digest-out.json >/dev/null
echo "   digest                 $(cat .local/demo-digest-out.json)"

echo
echo "== where each alert went"
curl -sf "$R/_state" > .local/demo-alert-state.json
awsm sqs receive-message --queue-url "$queue" --max-number-of-messages 10 > .local/demo-digest-mail.json || echo '{}' > .local/demo-digest-mail.json
python3 - <<'PY'
import json
s = json.load(open(".local/demo-alert-state.json"))
mail = json.load(open(".local/demo-digest-mail.json")).get("Messages", [])
rows = []
for k, i in s["incidents"].items():
    rows.append(("PagerDuty", k, f"{i['pages']} incident, {i['events']} events", i["status"]))
for k, a in s["opsgenie"].items():
    rows.append(("OpsGenie", k, f"alias; {a['notified']} notified, count {a['count']}", "closed" if a["status"] == "closed" else "open"))
for m in s["slack"]:
    rows.append(("Slack FinOps", m["blocks"][0]["text"]["text"][:60], "Block Kit message", "-"))
for key, i in s["issues"].items():
    rows.append((f"Jira {i['project']}", key, i["summary"][:60], "resolved (commented)" if i["comments"] else "open"))
for m in mail:
    rows.append(("E-mail digest", m["Body"].splitlines()[0][:60], "one SNS message to the digest topic", "-"))
w = [max(len(str(r[c])) for r in rows + [("route", "dedup key / ticket", "what", "state")]) for c in range(4)]
for r in [("route", "dedup key / ticket", "what", "state")] + rows:
    print("   " + "  ".join(str(v).ljust(w[c]) for c, v in enumerate(r)))
bad = [r for r in s["requests"] if r["path"].startswith("/pagerduty") and r["body"].get("event_action") not in ("trigger", "resolve")]
assert not bad, bad
assert any(i["status"] == "resolved" for i in s["incidents"].values()), "the page did not resolve"
assert all(i["pages"] == 1 for i in s["incidents"].values()), "a flapping alarm paged twice"
assert len(mail) == 1, f"expected one digest mail, got {len(mail)}"
print(f"   ({len(s['requests'])} requests to the receivers, every one of the documented shape)")
PY
