#!/usr/bin/env python3
"""Print every metric a planned deployment reads: from `make plan`'s JSON (.local/plan/<env>.json).

    tools/plan-consumers.py [.local/plan/prod.json]

One line per consumer, tab-separated: kind (alarm, dashboard), resource or dashboard name,
namespace, metric, the sorted dimension names, treat_missing_data (alarms). The first step of
the signal catalogue (issue 16): each line must match, with its full dimension set, a document
some producer emits, because CloudWatch matches dimension sets exactly. Values are as Terraform
would create them (for_each, locals and jsonencode evaluated), not as the .tf text reads.
"""
import json
import re
import sys

SEARCH = re.compile(r"SEARCH\('\{([^}]*)\}\s+MetricName=\"([^\"]+)\"")


def alarm_consumers(rc):
    after = rc["change"]["after"] or {}
    missing = after.get("treat_missing_data") or ""
    if after.get("metric_name"):
        yield after["namespace"], after["metric_name"], after.get("dimensions") or {}, missing
    for query in after.get("metric_query") or []:
        for m in query.get("metric") or []:
            yield m["namespace"], m["metric_name"], m.get("dimensions") or {}, missing


def dashboard_consumers(rc):
    after = rc["change"]["after"] or {}
    body = json.loads(after.get("dashboard_body") or "{}")
    for widget in body.get("widgets", []):
        for row in widget.get("properties", {}).get("metrics", []):
            # [{"expression": "SEARCH('{ns,dim,...} MetricName=\"m\" ...', ...)"}]: the schema
            # in braces is the exact dimension set.
            for item in row:
                if isinstance(item, dict) and "expression" in item:
                    found = SEARCH.search(item["expression"])
                    if found:
                        ns, *dims = [d.strip().strip('"') for d in found.group(1).split(",")]
                        yield ns, found.group(2), dict.fromkeys(dims, "")
            # [namespace, metric, dim, value, dim, value, ..., {options}]; "..." repeats the row above.
            names = [x for x in row if isinstance(x, str)]
            if len(names) >= 2 and names[0] != "...":
                yield names[0], names[1], dict(zip(names[2::2], names[3::2]))


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else ".local/plan/prod.json"
    with open(path, encoding="utf-8") as f:
        plan = json.load(f)
    for rc in plan.get("resource_changes", []):
        if rc["type"] == "aws_cloudwatch_metric_alarm":
            for ns, name, dims, missing in alarm_consumers(rc):
                print("\t".join(["alarm", rc["address"], ns, name, ",".join(sorted(dims)), missing]))
        elif rc["type"] == "aws_cloudwatch_dashboard":
            board = rc["change"]["after"]["dashboard_name"]
            for ns, name, dims in dashboard_consumers(rc):
                print("\t".join(["dashboard", board, ns, name, ",".join(sorted(dims)), ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
