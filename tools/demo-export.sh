#!/usr/bin/env bash
# The export-compressor part of the demo: uploads a CSV export (with tags and metadata) and a
# legal-hold export to moto with the AWS CLI, invokes export-compressor once through the Lambda
# runtime emulator (`make invoke`) with the S3 event S3 would send, and prints bytes before
# and after, the saving, the output's headers and tags, and the monthly roll-up.
# Re-runnable without a moto reset: each run uses its own key.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/local-aws.sh start >/dev/null
eval "$(tools/local-aws.sh env)"
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
s3() { aws --endpoint-url "$MOTO_URL" s3 "$@"; }
s3api() { aws --endpoint-url "$MOTO_URL" s3api "$@"; }

bucket=playbook-primary
for b in "$bucket" playbook-reports; do s3 mb "s3://$b" >/dev/null 2>&1 || true; done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
run="$(date -u +%Y%m%dT%H%M%S)"
key="exports/$(date -u +%Y/%m)/orders $run.csv"
held="exports/$(date -u +%Y/%m)/litigation $run.csv"

# A realistic export: 40,000 orders, about 2.5 MB.
python3 - "$work/orders.csv" <<'PY'
import random, sys
random.seed(7)
countries = ["FR", "DE", "US", "JP", "BR", "IN"]
with open(sys.argv[1], "w") as f:
    f.write("order_id,customer_id,created_at,country,amount_eur,status\n")
    for i in range(40000):
        f.write(f"{100000+i},{random.randint(1, 5000)},2026-11-{1+i%28:02d}T{i%24:02d}:{i%60:02d}:00Z,"
                f"{random.choice(countries)},{random.randint(100, 99999)/100:.2f},"
                f"{random.choice(['paid', 'paid', 'paid', 'refunded', 'pending'])}\n")
PY
head -c 200000 "$work/orders.csv" > "$work/held.csv"

echo "== uploading s3://$bucket/$key (tags retention=long, team=finance; metadata source-system=erp)"
s3api put-object --bucket "$bucket" --key "$key" --body "$work/orders.csv" --content-type text/csv \
  --tagging 'retention=long&team=finance' --metadata source-system=erp >/dev/null
echo "== uploading s3://$bucket/$held (tag legal_hold=true: must stay untouched)"
s3api put-object --bucket "$bucket" --key "$held" --body "$work/held.csv" --content-type text/csv \
  --tagging 'legal_hold=true' >/dev/null

# The event S3 sends: keys form-URL-encoded (a space is '+').
python3 - "$bucket" "$key" "$held" > .local/demo-export-event.json <<'PY'
import json, sys, urllib.parse
bucket, *keys = sys.argv[1:]
print(json.dumps({"Records": [
    {"eventName": "ObjectCreated:Put",
     "s3": {"bucket": {"name": bucket}, "object": {"key": urllib.parse.quote_plus(k, safe="/")}}}
    for k in keys]}))
PY
echo "== invoking export-compressor through cargo lambda watch ($WATCH_URL) with the AWS CLI"
make --no-print-directory invoke FN=export-compressor EVENT=.local/demo-export-event.json > .local/demo-export-response.json

python3 - .local/demo-export-response.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"\nexport-compressor: {r['status']}")
for o in r["objects"]:
    print(f"\n  {o['key']}: {o['status']}" + (f" ({o.get('reason')})" if o.get("reason") else ""))
    s = o.get("saving")
    if o["status"] == "COMPRESSED" and s:
        b, a = s["bytes_before"], s["bytes_after"]
        print(f"    {o['format']} -> {o['target']}: s3://{o['bucket']}/{o['output_key']}")
        print(f"    bytes before {b:>12,}")
        print(f"    bytes after  {a:>12,}   ({100*a/b:.1f} % of the original, saved {b-a:,} bytes)")
        print(f"    storage cost {s['dollars_before']:.8f} -> {s['dollars_after']:.8f} $/month "
              f"(saved {s['dollars_before']-s['dollars_after']:.8f} $/month at STANDARD prices)")
        print(f"    verified: read back from S3, gunzipped, SHA-256 {o['source_sha256'][:16]}... matches")
PY
out="$(python3 -c 'import json;o=[x for x in json.load(open(".local/demo-export-response.json"))["objects"] if x["status"]=="COMPRESSED"];print(o[0]["output_key"] if o else "")')"
if [[ -n "$out" ]]; then
  echo
  echo "== the output's headers and tags (carried over from the original)"
  s3api head-object --bucket "$bucket" --key "$out" \
    --query '{ContentType: ContentType, ContentEncoding: ContentEncoding, ContentLength: ContentLength, Metadata: Metadata}' --output json
  s3api get-object-tagging --bucket "$bucket" --key "$out" --query 'TagSet' --output json
  echo "== the original is gone:"
  s3api head-object --bucket "$bucket" --key "$key" >/dev/null 2>&1 && echo "  still there (unexpected)" || echo "  s3://$bucket/$key: 404"
fi
echo "== the legal-hold export is untouched:"
s3api head-object --bucket "$bucket" --key "$held" --query '{ContentLength: ContentLength, ContentEncoding: ContentEncoding}' --output json
month="$(date -u +%Y-%m)"
echo "== monthly roll-up s3://playbook-reports/reports/export-compressor/$month.json"
s3 cp --quiet "s3://playbook-reports/reports/export-compressor/$month.json" -
