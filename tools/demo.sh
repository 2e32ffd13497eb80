#!/usr/bin/env bash
# make demo: seeds a primary and a DR bucket in moto with a little drift, runs manifest-diff
# once through the Lambda runtime emulator (cargo lambda watch) with the real AWS CLI, and
# prints a readable summary and where the report is. Re-runnable: moto is reset first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
eval "$(tools/local-aws.sh env)"
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
s3() { aws --endpoint-url "$MOTO_URL" s3 "$@"; }

curl -sf -X POST "$MOTO_URL/moto-api/reset" >/dev/null
for b in playbook-primary playbook-dr playbook-reports; do s3 mb "s3://$b" >/dev/null; done

seed="$(mktemp -d)"
trap 'rm -rf "$seed"' EXIT
mkdir -p "$seed/attachments/2026/11" "$seed/exports"
for i in $(seq -w 1 200); do echo "invoice $i" > "$seed/attachments/2026/11/invoice-$i.pdf"; done
echo "a file with a space and a plus" > "$seed/attachments/2026/11/scan 7+8.pdf"
for i in $(seq -w 1 50); do printf 'id,amount\n%s,10\n' "$i" > "$seed/exports/export-$i.csv"; done
echo "== seeding s3://playbook-primary and s3://playbook-dr (moto at $MOTO_URL)"
s3 sync --quiet "$seed" s3://playbook-primary/
s3 sync --quiet "$seed" s3://playbook-dr/
# The drift: two objects never replicated, one replica stale, one left behind on DR.
s3 rm --quiet s3://playbook-dr/attachments/2026/11/invoice-007.pdf
s3 rm --quiet "s3://playbook-dr/attachments/2026/11/scan 7+8.pdf"
echo "older content" > "$seed/stale.pdf"
s3 cp --quiet "$seed/stale.pdf" s3://playbook-dr/attachments/2026/11/invoice-100.pdf
s3 cp --quiet "$seed/stale.pdf" s3://playbook-dr/attachments/2026/11/deleted-on-primary.pdf
sleep 2
reference="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
sleep 2
# Written "just now": replication has not had its chance yet, so it is pending, not drift.
s3 cp --quiet "$seed/exports/export-01.csv" s3://playbook-primary/exports/export-51.csv

# A lag allowance of one second around a fixed reference time stands in for the real 24 h.
cat > .local/demo-event.json <<JSON
{"source": "list", "now": "$reference", "lag_allowance_hours": 0.0003, "force": true}
JSON
echo "== invoking manifest-diff through cargo lambda watch ($WATCH_URL) with the AWS CLI"
make --no-print-directory invoke FN=manifest-diff EVENT=.local/demo-event.json > .local/demo-response.json

python3 - .local/demo-response.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
pct = lambda x: "n/a" if x is None else f"{x:.3f} %"
print(f"\nmanifest-diff {r['primary_bucket']} -> {r['replica_bucket']}: {r['status']}"
      f" (drift {pct(r['drift_percent'])}, threshold {r['threshold_percent']} %)")
print(f"{'prefix':<14}{'status':<8}{'eligible':>9}{'missing':>9}{'extra':>7}{'mismatch':>10}{'pending':>9}{'drift':>10}")
for p in r["prefixes"]:
    print(f"{p['prefix']:<14}{p['status']:<8}{p['eligible_primary']:>9}{p['missing']:>9}{p['extra']:>7}"
          f"{p['mismatched_size'] + p['mismatched_etag']:>10}{p['pending']:>9}{pct(p['drift_percent']):>10}")
print("\ndrifting keys:")
for s in r["sample"]:
    print(f"  {s['class']:<16} {s['key']}")
for w in r["warnings"]:
    print(f"warning: {w}")
print("\nreport:")
for k, v in r["report"].items():
    print(f"  {k:<10} {v}")
PY
md="$(python3 -c 'import json;print(json.load(open(".local/demo-response.json"))["report"]["markdown"])')"
echo
echo "== the Markdown report ($md):"
s3 cp --quiet "$md" -
