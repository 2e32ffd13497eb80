#!/usr/bin/env python3
"""Local stand-in for CloudWatch's EMF ingestion: reads the EMF documents a function printed
(its log under .local/, from a byte offset) and puts each metric into moto with PutMetricData,
with the document's dimensions and timestamp, as CloudWatch Logs would extract them.

    .venv/bin/python tools/emf-ingest.py LOG [OFFSET [ENVIRONMENT]]   (MOTO_URL from tools/local-aws.sh env)

The `function` dimension is put as `<function>-<ENVIRONMENT>` (default `local`): Terraform names
every function `<fn>-<env>` and the SLO file, the chaos registry and the alarms read that
name, while the local emulator serves each function under its bare name.

Why: locally EMF lines only reach a log file, so whatever reads metrics back (uptime-probe's
error budget, chaos-runner's probes) would see nothing. Prints how many datapoints it put.
Dimensions are sent in name order: moto 5.x matches GetMetricData dimensions by order.
"""
import json
import os
import sys
from datetime import datetime, timezone

import boto3


def documents(path, offset):
    with open(path, "rb") as f:
        f.seek(offset)
        for raw in f:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("{") or '"_aws"' not in line:
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            meta = doc.get("_aws", {})
            for directive in meta.get("CloudWatchMetrics", []):
                yield doc, meta.get("Timestamp"), directive


def main():
    path = sys.argv[1]
    offset = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    environment = sys.argv[3] if len(sys.argv) > 3 else "local"
    cw = boto3.client(
        "cloudwatch",
        endpoint_url=os.environ["MOTO_URL"],
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    put = 0
    for doc, ts, directive in documents(path, offset):
        when = datetime.fromtimestamp((ts or 0) / 1000, tz=timezone.utc)
        for dims in directive.get("Dimensions", []):
            def value(d):
                v = str(doc[d])
                suffix = "-" + environment
                return v + suffix if d == "function" and not v.endswith(suffix) else v

            dimensions = [{"Name": d, "Value": value(d)} for d in sorted(dims) if d in doc]
            data = []
            for m in directive.get("Metrics", []):
                value = doc.get(m["Name"])
                if isinstance(value, (int, float)):
                    data.append({
                        "MetricName": m["Name"],
                        "Dimensions": dimensions,
                        "Timestamp": when,
                        "Value": float(value),
                        "Unit": m.get("Unit", "None"),
                    })
            for i in range(0, len(data), 20):
                cw.put_metric_data(Namespace=directive["Namespace"], MetricData=data[i:i + 20])
                put += len(data[i:i + 20])
    print(put)


if __name__ == "__main__":
    main()
