# prod. Apply in the "prod" workspace:
#   terraform -chdir=infra workspace select -or-create prod
#   terraform -chdir=infra apply -var-file=environments/prod.tfvars -var deployment=$(git rev-parse --short HEAD)
# Values marked REPLACE-ME are account-specific and fail validation until set.

environment = "prod"
# aws_region = "eu-west-1" # default: AWS_REGION / the profile

log_retention_days = 90

report_bucket = "REPLACE-ME-prod-reports"
report_prefix = "reports/"

primary_bucket = "REPLACE-ME-prod-primary"
replica_bucket = "REPLACE-ME-prod-replica"
prefixes       = ["attachments/", "exports/"]

lag_allowance_hours     = 24
drift_threshold_percent = 0.1

# Default source of manual invocations; the schedule sends its own.
source_mode = "list"

# Where S3 Inventory delivers each bucket's reports (needed for source "inventory" and the
# manifest.checksum trigger): s3://inventory-bucket/prefix/source-bucket/config-id/
primary_inventory = ""
replica_inventory = ""

schedule_enabled    = true
schedule_expression = "cron(30 2 * * ? *)"
schedule_source     = "list"

# Replaces the inventory bucket's whole notification configuration: turn on only if nothing
# else notifies from that bucket (see manifest_diff.tf).
manage_inventory_notification = false

# PostgreSQL DR (postgres_dr.tf, modules/postgres/dr; docs/iac.md). dr-restore takes its
# source, groups, secret and failover replica from it (dr_* variables left unset).
postgres_dr_enabled            = true
postgres_instance_class        = "db.r6g.large"
postgres_backup_retention_days = 35 # the longest point-in-time window RDS keeps
postgres_vpc_id                = "REPLACE-ME"
postgres_subnet_ids            = ["REPLACE-ME-a", "REPLACE-ME-b"]
# The application's security groups (admitted to the primary); dr-restore's own
# (dr_lambda_security_group_ids) are admitted to the drill restores automatically.
postgres_allowed_security_group_ids = []
postgres_replica_enabled            = true
# The standby follows dr_region (null here: same region, which dr-restore's rehearsal can
# promote). For a regional standby, set postgres_replica_region and its network, and a topic
# of that region for its lag alarm; the automated backups are then replicated there too:
# postgres_replica_region             = "REPLACE-ME"
# postgres_replica_vpc_id             = "REPLACE-ME"
# postgres_replica_subnet_ids         = ["REPLACE-ME-a", "REPLACE-ME-b"]
# postgres_replica_alarm_topic_arn    = "REPLACE-ME"

# The environment's Prometheus: the Grafana dashboards' Prometheus datasource
# (infra/grafana/, docs/dashboards.md). The load-test coordinator remote-writes every run's
# k6_* series to <prometheus_url>/api/v1/write; it must be reachable from the function.
# null if the environment has none (then no remote write, and the dashboards' Prometheus
# panels stay empty for it).
prometheus_url = "https://REPLACE-ME-prometheus.prod.internal"
