#!/usr/bin/env bash
# The bad-input part of the demo: every function invoked once with a payload it cannot take
# ({"no_such_field": true}) through the Lambda emulator. Each refuses it with an error that
# names the field and the fix, changes nothing, and emits `function_errors` (the shared Lambda
# adapter), the metric the dashboards' "Failed invocations" row and the failure alarms read.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/local-aws.sh start >/dev/null
eval "$(tools/local-aws.sh env)"
printf '{"no_such_field": true}' > .local/demo-bad-input.json
echo "== every function refuses a payload it cannot take"
# cargo lambda watch answers a function error with HTTP 500 and no body (real Lambda: 200 with
# X-Amz-Function-Error), so the refusal is read from the function's own log, as `make invoke`
# does on failure.
for fn in $(cd functions && for d in */; do [[ -f "$d/Cargo.toml" ]] && echo "${d%/}"; done); do
  log="$STATE_DIR/$fn.log"
  from=$(stat -c %s "$log" 2>/dev/null || echo 0)
  if AWS_MAX_ATTEMPTS=1 aws lambda invoke --endpoint-url "$WATCH_URL" --cli-read-timeout 0 \
    --function-name "$fn" --payload fileb://.local/demo-bad-input.json .local/demo-bad-input.out.json >/dev/null 2>&1; then
    echo "   $fn accepted a payload it should refuse: $(cat .local/demo-bad-input.out.json)" >&2
    exit 1
  fi
  tail -c +"$((from + 1))" "$log" | python3 -c '
import json, sys
fn = sys.argv[1]
err = None
for line in sys.stdin:
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if d.get("message") == "invocation failed":
        err = d
if err is None:
    sys.exit("   %s failed without its invocation failed log line" % fn)
print("   %-21s %-13s %s" % (fn, err.get("error_class"), err.get("error", "")[:140]))' "$fn"
done
