# dev. Apply in the "dev" workspace:
#   terraform -chdir=infra workspace select -or-create dev
#   terraform -chdir=infra apply -var-file=environments/dev.tfvars -var deployment=$(git rev-parse --short HEAD)
# Values marked REPLACE-ME are account-specific and fail validation until set.

environment = "dev"
# aws_region = "eu-west-1" # default: AWS_REGION / the profile

log_retention_days = 14

report_bucket = "REPLACE-ME-dev-reports"
report_prefix = "reports/"

primary_bucket = "REPLACE-ME-dev-primary"
replica_bucket = "REPLACE-ME-dev-replica"
prefixes       = ["attachments/", "exports/"]

lag_allowance_hours     = 24
drift_threshold_percent = 0.1

# Default source of manual invocations; the schedule sends its own.
source_mode = "list"

# Where S3 Inventory delivers each bucket's reports (needed for source "inventory" and the
# manifest.checksum trigger): s3://inventory-bucket/prefix/source-bucket/config-id/
primary_inventory = ""
replica_inventory = ""

# Dev runs on demand (aws lambda invoke); flip to true to rehearse the nightly run.
schedule_enabled    = false
schedule_expression = "cron(30 2 * * ? *)"
schedule_source     = "list"

# Replaces the inventory bucket's whole notification configuration: turn on only if nothing
# else notifies from that bucket (see manifest_diff.tf).
manage_inventory_notification = false

# PostgreSQL DR (postgres_dr.tf, docs/iac.md): dev deploys without a database. dr-restore, if
# enabled here, needs its dr_* variables to name a database instead.
postgres_dr_enabled = false

# The environment's Prometheus: the Grafana dashboards' Prometheus datasource
# (infra/grafana/, docs/dashboards.md). The load-test coordinator remote-writes every run's
# k6_* series to <prometheus_url>/api/v1/write; it must be reachable from the function.
# null if the environment has none (then no remote write, and the dashboards' Prometheus
# panels stay empty for it).
prometheus_url = "https://REPLACE-ME-prometheus.dev.internal"
