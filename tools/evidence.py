#!/usr/bin/env python3
"""`make evidence`: what a person attaches to show the playbook ran. After `make demo`, renders
every panel of the four Grafana dashboards (infra/grafana/dashboards/*.json) from the SAME
queries the dashboards hold, and collects the FinOps report and the DR drill log beside them:

    .venv/bin/python tools/evidence.py [--out DIR] [--hours H]
    (MOTO_URL and STATE_DIR from `tools/local-aws.sh env`; PROM_URL, default http://127.0.0.1:9490)

- PromQL targets go to the demo's Prometheus (tools/demo-loadtest.sh starts it; the coordinator
  remote-writes every run to it), with Grafana's substitutions: $environment = local,
  $__interval = the step, $__range = the window.
- CloudWatch targets go to the demo's moto as Grafana's CloudWatch datasource sends them:
  ListMetrics for `*` dimensions (exact dimension set, matchExact), then GetMetricData with the
  target's statistic. Locally EMF lines only reach the function logs, so their documents are
  first put into moto as CloudWatch's EMF extraction would (tools/emf-ingest.py), each log from
  where the last `make evidence` stopped (STATE_DIR/evidence-ingested.json), uptime-probe's
  from where tools/demo-uptime.sh stopped putting its probes in (STATE_DIR/uptime-probe.ingested).
- The time window is the demo's: from the first to the last datapoint found in the last H hours
  (default 6). A panel's CloudWatch period is capped at a fortieth of the window, so a
  20-minute demo shows points rather than one daily bucket (Grafana's `auto` period does the
  same for short ranges).

Writes one PNG per dashboard (panels laid out as the dashboard's gridPos places them, titled,
axes labelled with units), the reports, and index.md listing them with each panel's queries and
how many series and points each returned, into DIR (default .local/evidence/<UTC date>/).
"""
import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.parse
import urllib.request
from pathlib import Path

import boto3
import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.gridspec import GridSpec  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BOARDS = ["unified-api-health", "frontend-ux", "async-jobs", "finops"]
PROM_UID, CW_UID = "playbook-prometheus", "playbook-cloudwatch"
BUCKET = "playbook-reports"
UNITS = {
    "s": "seconds", "ms": "milliseconds", "percent": "%", "reqps": "requests / s",
    "short": "count", "currencyUSD": "US$", "bytes": "bytes", "none": "",
}


def utc(ts):
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc)


def fail(msg):
    print(f"evidence: {msg}", file=sys.stderr)
    sys.exit(1)


# ---- sources ----------------------------------------------------------------------------

def prom_get(prom, path, params):
    url = f"{prom}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        fail(f"{url}: HTTP {e.code}: {e.read().decode(errors='replace')[:300]}")
    except OSError as e:
        fail(f"Prometheus at {prom} does not answer ({e}): run `make demo` first "
             "(tools/demo-loadtest.sh starts it)")
    if body.get("status") != "success":
        fail(f"{url}: {body}")
    return body["data"]


def ingest_emf(state, moto_env):
    """Puts the EMF documents of every function log not yet ingested into moto."""
    marks_path = state / "evidence-ingested.json"
    marks = json.loads(marks_path.read_text()) if marks_path.exists() else {}
    functions = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "Cargo.toml").exists())
    total = 0
    for fn in functions:
        log = state / f"{fn}.log"
        if not log.exists():
            continue
        size = log.stat().st_size
        start = int(marks.get(fn, 0))
        done = state / f"{fn}.ingested"  # tools/demo-uptime.sh ingested its probes up to here
        if done.exists():
            start = max(start, int(done.read_text().strip() or 0))
        elif fn == "uptime-probe":
            continue  # ingested by a demo-uptime.sh that does not say how far: leave it
        if start > size:  # the log was cleared since
            start = 0
        if start == size:
            continue
        out = subprocess.run(
            [sys.executable, str(ROOT / "tools/emf-ingest.py"), str(log), str(start)],
            env=moto_env, capture_output=True, text=True)
        if out.returncode != 0:
            fail(f"tools/emf-ingest.py {log}: {out.stderr.strip()[-500:]}")
        total += int(out.stdout.strip() or 0)
        marks[fn] = size
    marks_path.write_text(json.dumps(marks, indent=1))
    return total


def emf_timestamps(state, since_ms):
    """The EMF timestamps (ms) of every function log, newer than since_ms."""
    out = []
    for log in state.glob("*.log"):
        with open(log, "rb") as f:
            for raw in f:
                if b'"_aws"' not in raw:
                    continue
                m = re.search(rb'"Timestamp":\s*(\d+)', raw)
                if m and int(m.group(1)) >= since_ms:
                    out.append(int(m.group(1)))
    return out


# ---- queries ----------------------------------------------------------------------------

def legend(fmt, labels):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt or "") or \
        ",".join(f"{k}={v}" for k, v in labels.items() if k != "__name__")


def prom_target(prom, t, env, start, end, step):
    expr = (t["expr"].replace("$environment", env)
            .replace("$__interval", f"{step}s").replace("$__rate_interval", f"{4 * step}s")
            .replace("$__range", f"{int(end - start)}s"))
    if t.get("instant"):
        data = prom_get(prom, "/api/v1/query", {"query": expr, "time": end})
        rows = [(legend(t.get("legendFormat"), r["metric"]), [(end, float(r["value"][1]))])
                for r in data["result"]]
    else:
        data = prom_get(prom, "/api/v1/query_range",
                        {"query": expr, "start": start, "end": end, "step": step})
        rows = [(legend(t.get("legendFormat"), r["metric"]),
                 [(float(ts), float(v)) for ts, v in r["values"]]) for r in data["result"]]
    return expr, rows


def cw_label(t, dims):
    label = t.get("label") or t["metricName"]
    return re.sub(r"\$\{PROP\('Dim\.(\w+)'\)\}", lambda m: dims.get(m.group(1), "?"), label)


def cw_target(cw, t, env, start, end, window):
    want = {k: v.replace("$environment", env) for k, v in t["dimensions"].items()}
    period = int(t.get("period") or 300)
    period = max(60, min(period, (window // 40) // 60 * 60))
    fixed = {k: v for k, v in want.items() if v != "*"}
    metrics = []
    if len(fixed) == len(want):
        metrics = [fixed]
    else:
        for page in cw.get_paginator("list_metrics").paginate(
                Namespace=t["namespace"], MetricName=t["metricName"]):
            for m in page["Metrics"]:
                dims = {d["Name"]: d["Value"] for d in m["Dimensions"]}
                # matchExact: exactly the target's dimension names, the fixed values equal.
                if set(dims) == set(want) and all(dims[k] == v for k, v in fixed.items()):
                    if dims not in metrics:
                        metrics.append(dims)
    rows = []
    for i in range(0, len(metrics), 100):
        chunk = metrics[i:i + 100]
        queries = [{
            "Id": f"m{j}",
            "MetricStat": {
                "Metric": {"Namespace": t["namespace"], "MetricName": t["metricName"],
                           "Dimensions": [{"Name": k, "Value": d[k]} for k in sorted(d)]},
                "Period": period, "Stat": t["statistic"]},
            "ReturnData": True} for j, d in enumerate(chunk)]
        r = cw.get_metric_data(MetricDataQueries=queries, StartTime=utc(start), EndTime=utc(end),
                               ScanBy="TimestampAscending")
        for j, res in enumerate(r["MetricDataResults"]):
            pts = sorted((ts.timestamp(), float(v)) for ts, v in zip(res["Timestamps"], res["Values"]))
            if pts:
                rows.append((cw_label(t, chunk[j]), pts))
    query = (f'{t["namespace"]} {t["metricName"]} {json.dumps(t["dimensions"], sort_keys=True)} '
             f'{t["statistic"]} period {t.get("period")} s (fetched at {period} s)')
    return query, rows


# ---- rendering --------------------------------------------------------------------------

def draw_panel(ax, panel, rows, start, end):
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    ylabel = UNITS.get(unit, unit)
    scale = 1.0
    if unit == "bytes":
        peak = max((abs(v) for _, pts in rows for _, v in pts), default=0)
        if peak >= 1 << 20:
            scale, ylabel = float(1 << 20), "MiB"
        elif peak >= 1 << 10:
            scale, ylabel = float(1 << 10), "KiB"
    ax.set_title("\n".join(textwrap.wrap(panel["title"], 70)), fontsize=10, loc="left")
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    limits = [s["value"] for s in steps if s.get("value") is not None]
    if not rows:
        ax.text(0.5, 0.5, "no data in the window", ha="center", va="center",
                transform=ax.transAxes, fontsize=11, color="#a00")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    if panel["type"] == "bargauge":
        names = [n for n, _ in rows]
        values = [pts[-1][1] / scale for _, pts in rows]
        colors = ["#c0392b" if limits and v >= limits[0] else "#2e86c1" for v in values]
        top = max(max(values) * 1.6, 1)
        ax.barh(range(len(rows)), values, color=colors, height=0.5)
        # Names and values inside the axes (long names would run into the neighbour panel).
        for i, (n, v) in enumerate(zip(names, values)):
            ax.text(v + top * 0.01, i, f"{n}: {v:g}", va="center", fontsize=8, color=colors[i])
        ax.set_yticks([])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel(f"{ylabel} (latest run in the window)")
        ax.set_xlim(0, top)
        return
    for name, pts in rows:
        xs = [utc(ts) for ts, _ in pts]
        ys = [v / scale for _, v in pts]
        ax.plot(xs, ys, marker="o", markersize=4, linewidth=1.5, label=name)
    for v in limits:
        ax.axhline(v / scale, color="#c0392b", linestyle="--", linewidth=1)
        ax.annotate(f"threshold {v:g}", xy=(1, v / scale), xycoords=("axes fraction", "data"),
                    ha="right", va="bottom", fontsize=7, color="#c0392b")
    d = panel.get("fieldConfig", {}).get("defaults", {})
    if "min" in d:
        ax.set_ylim(bottom=d["min"] / scale)
    if "max" in d:
        ax.set_ylim(top=d["max"] / scale * 1.05)
    ax.set_xlim(utc(start), utc(end))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=dt.timezone.utc))
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2 if len(rows) > 6 else 1)


def render(board, results, start, end, out, meta):
    panels = board["panels"]
    rows_total = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(22, rows_total * 0.55 + 1.2))
    gs = GridSpec(rows_total, 24, figure=fig, hspace=2.8, wspace=4,
                  left=0.04, right=0.99, top=1 - 0.9 / (rows_total * 0.55 + 1.2), bottom=0.03)
    for p in panels:
        g = p["gridPos"]
        ax = fig.add_subplot(gs[g["y"]:g["y"] + g["h"] - 1, g["x"]:g["x"] + g["w"]])
        draw_panel(ax, p, [r for _, rows in results[p["id"]] for r in rows], start, end)
    fig.suptitle(f'{board["title"]}  (Grafana uid {board["uid"]}, environment = local)',
                 fontsize=15, x=0.01, y=0.995, ha="left", va="top")
    fig.text(0.01, 0.005, meta, fontsize=8, color="#555", ha="left", va="bottom")
    fig.savefig(out, dpi=80, bbox_inches="tight")
    plt.close(fig)


# ---- reports ----------------------------------------------------------------------------

def copy_reports(s3, out):
    """The FinOps monthly report (cost-anomaly) and the DR drill log (dr-restore) from moto S3."""
    copied = []

    def keys(prefix):
        found = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            found.extend(page.get("Contents", []))
        return found

    def fetch(obj, dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(BUCKET, obj["Key"], str(dest))
        copied.append((dest.relative_to(out), f"s3://{BUCKET}/{obj['Key']}"))

    finops = [o for o in keys("reports/finops/") if o["Key"].endswith((".md", ".svg"))]
    for o in finops:
        fetch(o, out / "finops" / Path(o["Key"]).name)
    dr_month = [o for o in keys("reports/dr/") if o["Key"].endswith((".md", ".json"))]
    for o in dr_month:
        fetch(o, out / "dr" / Path(o["Key"]).name)
    # Each drill's and rehearsal's own record (every step with its time and result, the checks:
    # the simulation log), the newest five of each.
    drills = []
    for kind in ("drills", "failovers"):
        found = [o for o in keys(f"dr-restore/{kind}/") if o["Key"].endswith(".json")]
        for o in sorted(found, key=lambda o: o["LastModified"])[-5:]:
            fetch(o, out / "dr" / kind / Path(o["Key"]).name)
        drills += found
    return copied, bool(finops), bool(dr_month or drills)


# ---- main -------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="default .local/evidence/<UTC date>/")
    ap.add_argument("--hours", type=float, default=6, help="how far back to look for the demo's data")
    ap.add_argument("--environment", default="local", help="the value of $environment")
    args = ap.parse_args()
    for v in ("MOTO_URL", "STATE_DIR"):
        if not os.environ.get(v):
            fail(f"{v} is not set: run through `make evidence` (tools/local-aws.sh env)")
    moto, state = os.environ["MOTO_URL"], Path(os.environ["STATE_DIR"])
    prom = os.environ.get("PROM_URL", "http://127.0.0.1:9490")
    now = dt.datetime.now(dt.timezone.utc)
    out = Path(args.out) if args.out else ROOT / ".local/evidence" / now.strftime("%Y-%m-%d")
    out.mkdir(parents=True, exist_ok=True)
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    session = dict(endpoint_url=moto, region_name=region, aws_access_key_id="test",
                   aws_secret_access_key="test")
    cw, s3 = boto3.client("cloudwatch", **session), boto3.client("s3", **session)
    try:
        s3.head_bucket(Bucket=BUCKET)
    except Exception as e:  # noqa: BLE001 (any failure means the same thing here)
        fail(f"moto at {moto} has no {BUCKET} bucket ({e}): run `make demo` first and leave it "
             "up (`make down` loses moto's state)")

    put = ingest_emf(state, dict(os.environ, MOTO_URL=moto))
    print(f"evidence: {put} EMF datapoints put into moto from the function logs")

    # The demo's window: the first to the last datapoint of the last --hours.
    now_s = now.timestamp()
    since = now_s - args.hours * 3600
    stamps = [ms / 1000 for ms in emf_timestamps(state, int(since * 1000))]
    raw = prom_get(prom, "/api/v1/query", {
        "query": f'k6_http_reqs_total{{environment="{args.environment}"}}[{int(args.hours * 3600)}s]',
        "time": now_s})
    stamps += [float(ts) for r in raw["result"] for ts, _ in r["values"]]
    if not stamps:
        fail(f"no datapoint in the last {args.hours:g} h: run `make demo` first")
    start, end = min(stamps) - 120, min(max(stamps) + 120, now_s)
    window = int(end - start)
    step = max(15, window // 200)
    print(f"evidence: window {utc(start):%Y-%m-%d %H:%M:%S} - {utc(end):%H:%M:%S} UTC ({window} s)")

    index = [
        "# Evidence: dashboards, FinOps report, DR drill log", "",
        f"Made by `make evidence` at {now:%Y-%m-%d %H:%M} UTC from the local demo (`make demo`): "
        f"Prometheus {prom} (the load-test coordinator's remote write), moto {moto} (CloudWatch "
        f"GetMetricData, S3). Window {utc(start):%Y-%m-%d %H:%M:%S} to {utc(end):%H:%M:%S} UTC, "
        f"`$environment` = `{args.environment}`. Each image is one dashboard of "
        "`infra/grafana/dashboards/`, every panel drawn from the same queries Grafana runs "
        "(docs/dashboards.md).", "",
    ]
    empty_panels = []
    for name in BOARDS:
        board = json.loads((ROOT / f"infra/grafana/dashboards/{name}.json").read_text())
        results = {}
        lines = []
        for p in board["panels"]:
            results[p["id"]] = []
            for t in p["targets"]:
                uid = (t.get("datasource") or p.get("datasource") or {}).get("uid")
                if uid == PROM_UID:
                    q, rows = prom_target(prom, t, args.environment, start, end, step)
                    src = "PromQL"
                elif uid == CW_UID:
                    q, rows = cw_target(cw, t, args.environment, start, end, window)
                    src = "CloudWatch"
                else:
                    fail(f"{name}: panel {p['title']!r}: datasource {uid!r} is not provisioned")
                results[p["id"]].append((q, rows))
                points = sum(len(pts) for _, pts in rows)
                lines.append(f"  - {src} `{q}`: {len(rows)} series, {points} points")
            if not any(rows for _, rows in results[p["id"]]):
                empty_panels.append(f"{board['title']}: {p['title']}")
            lines.insert(len(lines) - len(p["targets"]), f"- **{p['title']}**")
        png = out / f"{name}.png"
        meta = (f"window {utc(start):%Y-%m-%d %H:%M:%S} - {utc(end):%H:%M:%S} UTC; PromQL via {prom} "
                f"(step {step} s), CloudWatch via moto {moto}; made {now:%Y-%m-%d %H:%M} UTC by make evidence")
        render(board, results, start, end, png, meta)
        print(f"evidence: {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
        index += [f"## {board['title']}", "", f"![{board['title']}]({png.name})", "", *lines, ""]

    copied, finops, dr = copy_reports(s3, out)
    index += ["## Reports", ""]
    if not finops:
        index.append("- FinOps report: none in moto's S3 (tools/demo-finops.sh writes reports/finops/2026-10.md)")
    if not dr:
        index.append("- DR drill log: none in moto's S3 (tools/demo-dr.sh writes reports/dr/<month>.md)")
    for rel, src in copied:
        index.append(f"- [{rel}]({rel}) from `{src}`")
    if empty_panels:
        index += ["", "## Panels without data in this window", ""] + [f"- {p}" for p in empty_panels]
    (out / "index.md").write_text("\n".join(index) + "\n")
    print(f"evidence: {len(copied)} report files, index {out / 'index.md'}")
    if empty_panels:
        print(f"evidence: {len(empty_panels)} panel(s) without data: {'; '.join(empty_panels)}")


if __name__ == "__main__":
    main()
