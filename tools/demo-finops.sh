#!/usr/bin/env bash
# The cost-anomaly (FinOps) part of the demo: loads 4 months of synthetic daily spend (weekly
# pattern, month-start support charges, a spike in prod EC2 on 2026-10-14 and a slow drift in
# staging RDS from 2026-10-20) into moto's Cost Explorer, checks and creates the budgets (dry run
# first), sends a Budgets and a Cost Anomaly Detection alert as SNS would, replays the daily
# detection over October 2026 (one invocation a day, as the schedule would), which publishes
# each new, grown and finished anomaly to the FinOps topic (tools/demo-alerts.sh routes them),
# and writes the monthly report, then prints it. Everything goes through `cargo lambda watch` with the AWS CLI.
# Re-runnable: Cost Explorer results are loaded only when the function's cache is empty.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/local-aws.sh start >/dev/null
eval "$(tools/local-aws.sh env)"
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
s3() { aws --endpoint-url "$MOTO_URL" s3 "$@"; }
invoke() { AWS_MAX_ATTEMPTS=1 aws lambda invoke --endpoint-url "$WATCH_URL" --cli-read-timeout 0 \
  --function-name cost-anomaly --payload "fileb://$1" "$2" >/dev/null; }
mkdir -p .local/demo-finops
work=.local/demo-finops
s3 mb s3://playbook-reports >/dev/null 2>&1 || true

if s3 ls s3://playbook-reports/reports/cost-anomaly/cache/ce/2026-10.json >/dev/null 2>&1; then
  echo "== Cost Explorer data already cached by an earlier run: not loaded again"
else
  echo "== loading synthetic spend into moto's Cost Explorer (/moto-api/static/ce/cost-and-usage-results)"
  # One result per request the replay will make, in order: the 90-day history before
  # 2026-10-01, then one day at a time.
  python3 - "$work/ce-results.json" <<'PY'
import json, math, random, sys, datetime as dt
random.seed(11)
start, end = dt.date(2026, 7, 3), dt.date(2026, 11, 1)
series = {("prod", "Amazon Elastic Compute Cloud - Compute"): 210.0, ("prod", "Amazon Relational Database Service"): 95.0,
          ("prod", "Amazon Simple Storage Service"): 32.0, ("prod", "Amazon CloudFront"): 18.0, ("prod", "AWS Support (Business)"): 4.0,
          ("staging", "Amazon Relational Database Service"): 38.0, ("staging", "Amazon Elastic Compute Cloud - Compute"): 41.0,
          ("dev", "Amazon Elastic Compute Cloud - Compute"): 22.0, ("dev", "Amazon Simple Storage Service"): 3.0}
def cost(env, svc, lvl, d):
    weekend = d.weekday() >= 5
    f = (0.55 if env != "prod" else 0.85) if weekend else 1.0
    v = lvl * f * (1 + random.gauss(0, 0.04))
    if svc.startswith("AWS Support") and d.day == 1:
        v += 900.0                      # month-start charge: expected, not an anomaly
    if env == "prod" and "Compute" in svc and d == dt.date(2026, 10, 14):
        v *= 2.6                        # a spike
    if env == "staging" and "Relational" in svc and d >= dt.date(2026, 10, 20):
        v *= 1 + 0.06 * min((d - dt.date(2026, 10, 19)).days, 12)  # a slow drift
    return round(v, 4)
days = {}
d = start
while d < end:
    days[d] = [{"Keys": [f"env${e}", s], "Metrics": {"UnblendedCost": {"Amount": str(cost(e, s, l, d)), "Unit": "USD"}}}
               for (e, s), l in series.items()]
    d += dt.timedelta(days=1)
def page(a, b):
    return {"ResultsByTime": [{"TimePeriod": {"Start": str(x), "End": str(x + dt.timedelta(days=1))}, "Total": {},
             "Groups": days[x], "Estimated": False} for x in sorted(days) if a <= x < b], "DimensionValueAttributes": []}
results = [page(start, dt.date(2026, 10, 1))]
d = dt.date(2026, 10, 1)
while d < end:
    results.append(page(d, d + dt.timedelta(days=1)))
    d += dt.timedelta(days=1)
json.dump({"results": results}, open(sys.argv[1], "w"))
PY
  curl -sf -X POST -H 'Content-Type: application/json' --data-binary "@$work/ce-results.json" \
    "$MOTO_URL/moto-api/static/ce/cost-and-usage-results" >/dev/null
fi

echo "== budgets: dry run, then fix (FINOPS_BUDGETS in tools/local.env)"
invoke events/cost-anomaly/budgets-dry-run.json "$work/budgets-dry.json"
invoke events/cost-anomaly/budgets-fix.json "$work/budgets-fix.json"
python3 - "$work/budgets-dry.json" "$work/budgets-fix.json" <<'PY'
import json, sys
for f in sys.argv[1:]:
    r = json.load(open(f))
    print(f"  {r['status']}" + (" (dry run)" if r.get("dry_run") else ""))
    for b in r.get("budgets", []):
        drift = ", ".join(d["drift"] + (f" {d.get('kind','')} {d.get('percent','')}".rstrip() if "kind" in d else "") for d in b["drift"]) or "none"
        print(f"    {b['budget']}: drift {drift}; fixed {len(b['fixed'])}")
PY

echo "== SNS alerts: a Budgets notification (twice), Cost Anomaly Detection, something else"
for e in sns-budget-actual-80 sns-budget-actual-80 sns-cost-anomaly sns-unrecognised; do
  invoke "events/cost-anomaly/$e.json" "$work/$e.json"
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["messages"][0]; print("  %-13s %-16s %s" % (m["kind"], m["action"], m.get("dedup_key") or m.get("reason") or ""))' "$work/$e.json"
done

# The FinOps topic as infra/cost_anomaly.tf and infra/alert_routing.tf wire it: alert-router's
# subscription (a queue here: moto cannot invoke the emulator; tools/demo-alerts.sh forwards
# it) and cost-anomaly's own, filtered by the same policy file.
awsm() { aws --endpoint-url "$MOTO_URL" "$@"; }
topic=$(awsm sns create-topic --name finops-alerts-local --query TopicArn --output text)
for q in alert-router-finops-inbox cost-anomaly-finops-inbox; do
  awsm sqs create-queue --queue-name "$q" >/dev/null
  awsm sns list-subscriptions-by-topic --topic-arn "$topic" --query 'Subscriptions[].Endpoint' --output text |
    tr '\t' '\n' | grep -qx "arn:aws:sqs:us-east-1:123456789012:$q" && continue
  sub=$(awsm sns subscribe --topic-arn "$topic" --protocol sqs --return-subscription-arn \
    --notification-endpoint "arn:aws:sqs:us-east-1:123456789012:$q" --query SubscriptionArn --output text)
  if [[ $q == cost-anomaly-finops-inbox ]]; then
    awsm sns set-subscription-attributes --subscription-arn "$sub" --attribute-name FilterPolicyScope --attribute-value MessageAttributes
    awsm sns set-subscription-attributes --subscription-arn "$sub" --attribute-name FilterPolicy \
      --attribute-value "$(cat infra/sns/finops-aws-notifications-only.json)"
  fi
done

echo "== daily detection replayed over October 2026 (as_of = the day the schedule would run)"
for day in $(seq -w 1 31) 32; do
  if [[ $day == 32 ]]; then as_of=2026-11-01; else as_of=2026-10-$day; fi
  echo "{\"job\": \"detect\", \"as_of\": \"$as_of\"}" > "$work/detect.json"
  invoke "$work/detect.json" "$work/detect-out.json"
  python3 - "$work/detect-out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["projections"]["all"]
line = f"  {r['as_of']}: {r['fetch']['requests']} CE page(s), {r['fetch']['cached_days']:>3} cached days; month to date ${p['month_to_date']:>9,.2f}, projected ${p['projected_own']:>9,.2f}"
alerts = [a for a in r["alerts"] if a["action"] in ("new", "updated")]
print(line)
for a in alerts:
    print(f"      ALERT {a['action']}: {a['explanation']} (delay {a['detection_delay_days']} d)" + (" -> FinOps topic" if a.get("published") else ""))
for k in r.get("resolved", []):
    print(f"      RESOLVED {k} -> FinOps topic")
PY
done
q() { awsm sqs get-queue-attributes --queue-url "$(awsm sqs get-queue-url --queue-name "$1" --query QueueUrl --output text)" --attribute-names ApproximateNumberOfMessages --query Attributes.ApproximateNumberOfMessages --output text; }
echo "   on the FinOps topic: $(q alert-router-finops-inbox) message(s) for alert-router, $(q cost-anomaly-finops-inbox) for cost-anomaly's own subscription (its filter keeps its alerts out)"

echo "== monthly report for 2026-10"
echo '{"job": "report", "month": "2026-10", "as_of": "2026-11-01"}' > "$work/report.json"
invoke "$work/report.json" "$work/report-out.json"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  ", r["status"], r["markdown"], r["chart"])' "$work/report-out.json"
s3 cp --quiet s3://playbook-reports/reports/finops/2026-10.md "$work/2026-10.md"
s3 cp --quiet s3://playbook-reports/reports/finops/2026-10.svg "$work/2026-10.svg"
echo
cat "$work/2026-10.md"
echo
echo "(chart: $work/2026-10.svg)"
