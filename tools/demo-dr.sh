#!/usr/bin/env bash
# The dr-restore part of the demo: seeds moto (the source instance app-db, its read replica,
# the drill's subnet and parameter groups, the credentials secret, the DATABASE_URL/S3_BUCKET
# flags), creates the database the "restored instance" stands for in the local PostgreSQL
# (dr_demo: alembic_version + orders written 40 s ago), then through the Lambda emulator with
# the AWS CLI (`make invoke`): starts a drill, sends the RDS event EventBridge would deliver
# (moto sends none), prints the outcome and the month's report; then a failover dry run and a
# rehearsal. Re-runnable without a moto reset: each run uses its own drill id.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/local-aws.sh start >/dev/null
eval "$(tools/local-aws.sh env)"
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
aws_() { aws --endpoint-url "$MOTO_URL" "$@"; }
quiet() { "$@" >/dev/null 2>&1 || true; }

echo "== seeding moto: source instance app-db, replica, subnet/parameter groups, secret, flags"
quiet aws_ s3 mb s3://playbook-reports
quiet aws_ rds create-db-instance --db-instance-identifier app-db --engine postgres \
  --db-instance-class db.t3.micro --master-username app --master-user-password not-used-here \
  --allocated-storage 20 --backup-retention-period 7
quiet aws_ rds create-db-parameter-group --db-parameter-group-name dr-pg15 \
  --db-parameter-group-family postgres15 --description "drill parameter group (rds.force_ssl=0)"
subnets="$(aws_ ec2 describe-subnets --query 'Subnets[0:2].SubnetId' --output text)"
# shellcheck disable=SC2086
quiet aws_ rds create-db-subnet-group --db-subnet-group-name dr-private \
  --db-subnet-group-description "drill subnets" --subnet-ids $subnets
quiet aws_ secretsmanager create-secret --name dr/restore-check \
  --secret-string '{"username": "postgres", "password": "local-trust-auth"}'
quiet aws_ rds create-db-instance-read-replica --db-instance-identifier app-db-replica \
  --source-db-instance-identifier app-db
quiet aws_ ssm put-parameter --type SecureString --name /app/local/DATABASE_URL --value "postgresql://app:primary@app-db:5432/app"
quiet aws_ ssm put-parameter --type SecureString --name /app/local/standby/DATABASE_URL --value "postgresql://app:standby@app-db-replica:5432/app"
quiet aws_ ssm put-parameter --type String --name /app/local/S3_BUCKET --value playbook-primary
quiet aws_ ssm put-parameter --type String --name /app/local/standby/S3_BUCKET --value playbook-dr

echo "== the restored database (local PostgreSQL, database dr_demo): heads a1b2c3d4e5f6, 0f9e8d7c6b5a; 500 orders, newest written 40 s ago"
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS dr_demo WITH (FORCE)" -c "CREATE DATABASE dr_demo"
psql -q -h 127.0.0.1 -U postgres -d dr_demo <<'SQL'
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('a1b2c3d4e5f6'), ('0f9e8d7c6b5a');
CREATE TABLE orders (id serial PRIMARY KEY, amount numeric NOT NULL, updated_at timestamptz NOT NULL);
INSERT INTO orders (amount, updated_at)
  SELECT n * 1.5, now() - interval '40 seconds' - n * interval '1 minute' FROM generate_series(0, 499) AS n;
SQL

# The smoke-test endpoint of the rehearsal (DR_SMOKE_URLS in tools/local.env).
web="$(mktemp -d)"
echo ok > "$web/health"
(cd "$web" && exec python3 -m http.server 9598 --bind 127.0.0.1) >/dev/null 2>&1 &
web_pid=$!
trap 'kill $web_pid 2>/dev/null || true; rm -rf "$web"' EXIT

drill="demo-$(date -u +%H%M%S)"
mkdir -p .local
echo "{\"action\": \"start\", \"drill_id\": \"$drill\", \"triggered_by\": \"make demo\"}" > .local/demo-dr-start.json
echo "== starting drill $drill (RestoreDBInstanceToPointInTime with explicit groups, class and tags)"
make --no-print-directory invoke FN=dr-restore EVENT=.local/demo-dr-start.json | tee .local/demo-dr-start-response.json
echo "== the restored instance in moto:"
aws_ rds describe-db-instances --db-instance-identifier "dr-drill-$drill" --query \
  'DBInstances[0].{status: DBInstanceStatus, class: DBInstanceClass, subnet_group: DBSubnetGroup.DBSubnetGroupName, security_groups: VpcSecurityGroups[].VpcSecurityGroupId, parameter_group: DBParameterGroups[0].DBParameterGroupName, tags: TagList}' --output json

python3 - "$drill" > .local/demo-dr-event.json <<'PY'
import json, sys, uuid, datetime
d = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc).isoformat()
arn = f"arn:aws:rds:us-east-1:123456789012:db:dr-drill-{d}"
print(json.dumps({"version": "0", "id": str(uuid.uuid4()), "detail-type": "RDS DB Instance Event",
  "source": "aws.rds", "account": "123456789012", "time": now, "region": "us-east-1", "resources": [arn],
  "detail": {"EventCategories": ["restoration"], "SourceType": "DB_INSTANCE", "SourceArn": arn, "Date": now,
             "Message": "Restored from DB instance app-db to a point in time", "SourceIdentifier": f"dr-drill-{d}",
             "EventID": "RDS-EVENT-0019"}}))
PY
echo "== the RDS event RDS-EVENT-0019 (as EventBridge delivers it): verify, clean up, report"
make --no-print-directory invoke FN=dr-restore EVENT=.local/demo-dr-event.json > .local/demo-dr-response.json
python3 - .local/demo-dr-response.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"\ndr-restore: {r['status']}, drill {r['drill_id']} -> {r['phase']}")
for s in r.get("steps", []):
    print(f"  {s}")
if r.get("failure"):
    print(f"  FAILURE: {r['failure']}")
print(f"  report: {r.get('report')}")
PY
echo "== the restored instance is gone:"
aws_ rds describe-db-instances --db-instance-identifier "dr-drill-$drill" >/dev/null 2>&1 && echo "  still there (unexpected)" || echo "  dr-drill-$drill: DBInstanceNotFound"

echo "== failover rehearsal, dry run (touches nothing)"
make --no-print-directory invoke FN=dr-restore EVENT=events/dr-restore/failover-dry-run.json > .local/demo-dr-dry.json
python3 - .local/demo-dr-dry.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(r["status"], "target", r["target"])
for i, p in enumerate(r["plan"], 1):
    print(f"  {i}. {p}")
PY
echo "{\"action\": \"failover\", \"dry_run\": false, \"rehearsal_id\": \"$drill-failover\", \"triggered_by\": \"make demo\"}" > .local/demo-dr-failover.json
echo "== failover rehearsal: promote app-db-replica, switch DATABASE_URL and S3_BUCKET, check, smoke-test"
make --no-print-directory invoke FN=dr-restore EVENT=.local/demo-dr-failover.json > .local/demo-dr-failover-response.json
python3 - .local/demo-dr-failover-response.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rec = r["record"]
print(r["status"], "failover %.2f s" % (rec["failover_seconds"] or 0))
for s in rec["steps"]:
    print("  %s  %s: %s (%.0f ms)" % ("pass" if s["passed"] else "FAIL", s["name"], s["detail"], s["duration_ms"]))
for s in rec["smoke"]:
    print("  %s  smoke GET %s: HTTP %s (%.0f ms)" % ("pass" if s["passed"] else "FAIL", s["url"], s["status"], s["duration_ms"]))
PY
echo "== S3_BUCKET flag now: $(aws_ ssm get-parameter --name /app/local/S3_BUCKET --query Parameter.Value --output text)"

month="$(date -u +%Y-%m)"
echo "== the month's report s3://playbook-reports/reports/dr/$month.md"
aws_ s3 cp --quiet "s3://playbook-reports/reports/dr/$month.md" -
