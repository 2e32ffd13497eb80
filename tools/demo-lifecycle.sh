#!/usr/bin/env bash
# The lifecycle part of `make demo`: seeds the primary and DR buckets in moto with a few
# objects (user tags, a legal hold, a long retention) and a foreign lifecycle rule, then runs
# lifecycle-enforcer through the Lambda runtime emulator (cargo lambda watch) with the real AWS
# CLI: an S3 ObjectCreated event (URL-encoded key), a legal hold added later (ObjectTagging:Put),
# a dry-run sweep, the sweep, and the rule reconciliation of both buckets. Prints what got
# tagged and the reconciled rules. Expects `make up` (the Makefile's demo target runs it).
# Re-runnable: moto is reset first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
eval "$(tools/local-aws.sh env)"
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
api() { aws --endpoint-url "$MOTO_URL" s3api "$@"; }
invoke() { make --no-print-directory invoke FN=lifecycle-enforcer EVENT="$1"; }
show_event() {
  python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print("   %r: %s (%s)" % (r["key"], r["outcome"], r["reason"]))' "$1"
}
# The buckets are the ones tools/local.env configures (PRIMARY_BUCKET, REPLICA_BUCKET).
primary=playbook-primary dr=playbook-dr reports=playbook-reports
out="$root/.local/lifecycle-demo"
mkdir -p "$out"

curl -sf -X POST "$MOTO_URL/moto-api/reset" >/dev/null
for b in "$primary" "$dr" "$reports"; do api create-bucket --bucket "$b" >/dev/null; done

echo "== seeding s3://$primary (moto at $MOTO_URL)"
body="$out/body.bin"
echo "demo object" > "$body"
seed() { api put-object --bucket "$primary" --key "$1" --body "$body" ${2:+--tagging "$2"} >/dev/null; }
seed "attachments/2026/11/scan 7+8 é.pdf" "owner=billing&project=q4"  # the S3 event sample's key
seed "attachments/2026/11/invoice-007.pdf" "owner=billing"              # gets a legal hold later
seed "attachments/2026/11/invoice-008.pdf"
seed "attachments/2026/11/contract-legal.pdf" "legal_hold=true&case=4711"
seed "exports/2026-11-26/orders.csv" "team=data"
seed "exports/2026-11-26/audit.csv" "retention=long"
seed "reports/not-managed.json"

# A rule the suite does not own, on both buckets: it must survive reconciliation.
cat > "$out/foreign-rule.json" <<'JSON'
{"Rules": [{"ID": "team-tmp-cleanup", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 3}}]}
JSON
for b in "$primary" "$dr"; do
  api put-bucket-lifecycle-configuration --bucket "$b" --lifecycle-configuration "file://$out/foreign-rule.json"
done

echo "== S3 event: ObjectCreated:Put for attachments/2026/11/scan+7%2B8+%C3%A9.pdf (URL-encoded)"
invoke events/lifecycle-enforcer/s3-object-created.json > "$out/created.json"
show_event "$out/created.json"

echo "== the first sweep tags what existed before the suite"
echo '{"action": "sweep", "dry_run": true, "force": true}' > "$out/sweep-dry.json"
invoke "$out/sweep-dry.json" > "$out/sweep-dry-response.json"
echo '{"action": "sweep", "force": true}' > "$out/sweep.json"
invoke "$out/sweep.json" > "$out/sweep-response.json"

echo "== legal hold added to attachments/2026/11/invoice-007.pdf, then its ObjectTagging:Put event"
api put-object-tagging --bucket "$primary" --key attachments/2026/11/invoice-007.pdf \
  --tagging '{"TagSet": [{"Key": "owner", "Value": "billing"}, {"Key": "lifecycle", "Value": "managed"}, {"Key": "legal_hold", "Value": "true"}]}'
invoke events/lifecycle-enforcer/s3-object-tagging-put.json > "$out/tagging.json"
show_event "$out/tagging.json"
echo "== the same event delivered again"
invoke events/lifecycle-enforcer/s3-object-tagging-put.json > "$out/tagging-again.json"
show_event "$out/tagging-again.json"

echo "== rule reconciliation of $primary and $dr with apply"
invoke events/lifecycle-enforcer/reconcile-apply.json > "$out/reconcile.json"

api list-objects-v2 --bucket "$primary" --query 'Contents[].Key' --output json \
  | python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)))' \
  | while IFS= read -r key; do
      printf '%s\t%s\n' "$key" "$(api get-object-tagging --bucket "$primary" --key "$key" --output json | tr -d '\n')"
    done > "$out/tags.tsv"
for b in "$primary" "$dr"; do
  api get-bucket-lifecycle-configuration --bucket "$b" --output json > "$out/rules-$b.json"
done

python3 - "$out" "$primary" "$dr" <<'PY'
import json, sys
out, primary, dr = sys.argv[1:4]
dry = json.load(open(f"{out}/sweep-dry-response.json"))
sweep = json.load(open(f"{out}/sweep-response.json"))
print(f"\nsweep dry run: {dry['status']}, {dry['totals']['out_of_policy']} object(s) would change")
t = sweep["totals"]
print(f"sweep: {sweep['status']}: scanned {t['scanned']}, tagged {t['tagged']}, untagged {t['untagged']},"
      f" exceptions honoured {t['exceptions_honoured']}, skipped {t['skipped']}")
print(f"\nobject tags in s3://{primary} now:")
for line in open(f"{out}/tags.tsv"):
    key, doc = line.rstrip("\n").split("\t", 1)
    tags = {t["Key"]: t["Value"] for t in json.loads(doc)["TagSet"]}
    mark = "lifecycle applies " if tags.get("lifecycle") == "managed" else "lifecycle skips   "
    print(f"  {mark} {key:<42} {', '.join(f'{k}={v}' for k, v in tags.items()) or '(no tags)'}")
rec = json.load(open(f"{out}/reconcile.json"))
print(f"\nrule reconciliation: {rec['status']} ({rec['drift_rules']} drifting rule(s) found)")
for b in rec["buckets"]:
    print(f"  {b['bucket']}: {b['status']}; kept foreign rules: {', '.join(b['foreign_kept']) or 'none'}")
for b in (primary, dr):
    print(f"\nlifecycle rules on {b}:")
    for r in json.load(open(f"{out}/rules-{b}.json"))["Rules"]:
        f = r.get("Filter", {})
        a = f.get("And", {})
        prefix = a.get("Prefix", f.get("Prefix", ""))
        tags = [f"{t['Key']}={t['Value']}" for t in a.get("Tags", [])] + ([f"{f['Tag']['Key']}={f['Tag']['Value']}"] if "Tag" in f else [])
        acts = [f"{x['Days']}d→{x['StorageClass']}" for x in r.get("Transitions", [])]
        if "Expiration" in r: acts.append(f"expire {r['Expiration'].get('Days')}d")
        if "NoncurrentVersionExpiration" in r: acts.append(f"noncurrent expire {r['NoncurrentVersionExpiration']['NoncurrentDays']}d")
        print(f"  {r['ID']:<32} {prefix:<14} {' & '.join(tags) or '-':<20} {', '.join(acts)}")
print(f"\nreports: {sweep['report']['markdown']}\n         {rec['report']['markdown']}")
PY
