#!/usr/bin/env bash
# The uptime-probe part of the demo: probes the local targets (tools/local.env PROBE_TARGETS:
# `api` and `quote`, served by moto) three times through the Lambda emulator, prints the SLI
# metrics the SLO alarms read, feeds the EMF documents to moto as CloudWatch would ingest them
# (tools/emf-ingest.py), then computes the error budget of every SLO (infra/slo/slos.json)
# with {"kind":"error_budget"}: what chaos-runner's gate reads.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/local-aws.sh start >/dev/null
eval "$(tools/local-aws.sh env)"
log="$STATE_DIR/uptime-probe.log"

# The `sse` target (tools/local.env): the load-test target's event stream on 127.0.0.1:8480.
target_pid=""
if ! (exec 3<>/dev/tcp/127.0.0.1/8480) 2>/dev/null; then
  [[ -x target/debug/loadtest-target ]] || cargo build --quiet -p loadtest-target
  target/debug/loadtest-target --addr 127.0.0.1:8480 --latency 'quantiles:0=5ms,1=20ms' \
    --sse-interval 200ms > .local/loadtest-target.log 2>&1 &
  target_pid=$!
  trap '[[ -n "$target_pid" ]] && kill "$target_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/8480) 2>/dev/null && break; sleep 0.1; done
fi
from=$(stat -c %s "$log" 2>/dev/null || echo 0)

echo "== three probes of every target (events/uptime-probe/manual-all.json)"
for _ in 1 2 3; do
  make --no-print-directory invoke FN=uptime-probe EVENT=events/uptime-probe/manual-all.json |
    python3 -c '
import json, sys
r = json.load(sys.stdin)
for p in r.get("probes", r.get("results", [])):
    print("   %-6s %-4s %6.1f ms  HTTP %s" % (p.get("target"), "ok" if p.get("ok", p.get("success")) else "FAIL",
          p.get("latency_ms") or 0, p.get("status")))'
done

echo "== the SLI metrics printed (EMF), as the SLO alarms read them"
tail -c +"$((from + 1))" "$log" | python3 -c '
import json, sys
seen = {}
for line in sys.stdin:
    if "\"_aws\"" not in line:
        continue
    d = json.loads(line)
    for directive in d["_aws"]["CloudWatchMetrics"]:
        for m in directive["Metrics"]:
            key = (directive["Namespace"], m["Name"], d.get("function"), d.get("target"))
            seen[key] = seen.get(key, 0) + d[m["Name"]]
for (ns, name, fn, target), total in sorted(seen.items()):
    print("   %s %-20s function=%s target=%s  sum=%g" % (ns, name, fn, target, total))'

echo "== into moto's CloudWatch, as EMF ingestion would put them"
to=$(stat -c %s "$log")
echo "   $("$root/.venv/bin/python" tools/emf-ingest.py "$log" "$from") datapoints"
# What is in moto now (make evidence ingests the rest of the log, the error budget below included).
echo "$to" > "$STATE_DIR/uptime-probe.ingested"

echo "== error budget per SLO over the last 30 days ({\"kind\":\"error_budget\"})"
make --no-print-directory invoke FN=uptime-probe EVENT=events/uptime-probe/error-budget.json |
  python3 -c '
import json, sys
r = json.load(sys.stdin)
for s in r.get("slos", []):
    rem = s.get("remaining_percent")
    n = lambda v: "-" if v is None else "%g" % v
    print("   %-17s bad %s of %s  -> %s" % (s.get("name"), n(s.get("errors")), n(s.get("total")),
          "unknown (%s)" % s.get("unknown") if rem is None else "%.1f %% of the budget left" % rem))'
