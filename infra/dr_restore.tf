# dr-restore: quarterly point-in-time restore drill (restore, db_restore_check, RPO, clean-up)
# driven by RDS events and a polling safety net, and the failover rehearsal.
# (docs/dr-restore.md)

# ---- Variables (this function only) ---------------------------------------------------

variable "dr_restore_zip" {
  description = "Explicit zip for dr-restore (e.g. a kept previous build, to roll back); null uses artifacts_dir."
  type        = string
  default     = null
}

variable "dr_enabled" {
  description = "Deploy dr-restore (it needs a database to restore)."
  type        = bool
  default     = false
}

variable "dr_source_db_instance" {
  description = "DR_SOURCE_DB_INSTANCE: the DB instance restored by drills; null: the postgres_dr primary when postgres_dr_enabled (and no dr_source_db_cluster)."
  type        = string
  default     = null
}

variable "dr_source_db_cluster" {
  description = "DR_SOURCE_DB_CLUSTER: the Aurora cluster restored by drills (instead of dr_source_db_instance)."
  type        = string
  default     = null

  validation {
    condition     = var.dr_source_db_cluster == null || var.dr_source_db_instance == null
    error_message = "Set dr_source_db_instance or dr_source_db_cluster, not both."
  }
}

variable "dr_source_kms_key_arn" {
  description = "Customer managed KMS key the source is encrypted with (RDS creates the restore's grants on it as the function: kms:CreateGrant, kms:DescribeKey via RDS); null: none, or the postgres_dr module's key when the source is its primary. Not needed for the AWS managed aws/rds key."
  type        = string
  default     = null
}

variable "dr_subnet_group" {
  description = "DR_SUBNET_GROUP: DB subnet group of restored instances (never the default); \"\": the postgres_dr module's."
  type        = string
  default     = ""
}

variable "dr_security_group_ids" {
  description = "DR_SECURITY_GROUP_IDS: VPC security groups of restored instances; they must admit PostgreSQL from dr_lambda_security_group_ids. []: the postgres_dr module's restore group (which does)."
  type        = list(string)
  default     = []
}

variable "dr_parameter_group" {
  description = "DR_PARAMETER_GROUP: DB parameter group of restored instances (cluster mode: DB cluster parameter group). Set rds.force_ssl = 0 in it (the check connects without TLS). \"\": the postgres_dr module's restore group (the primary's settings, rds.force_ssl = 0)."
  type        = string
  default     = ""
}

variable "dr_instance_parameter_group" {
  description = "DR_INSTANCE_PARAMETER_GROUP: cluster mode, DB parameter group of the instance added to the restored cluster."
  type        = string
  default     = null
}

variable "dr_instance_class" {
  description = "DR_INSTANCE_CLASS of restored instances; null: the postgres_dr primary's class (a drill then measures the restore a real recovery would get), else db.t4g.medium."
  type        = string
  default     = null

  validation {
    # No short-circuit in Terraform's ||: a conditional keeps startswith away from null.
    condition     = var.dr_instance_class == null ? true : startswith(var.dr_instance_class, "db.")
    error_message = "dr_instance_class must be an instance class like db.t4g.medium."
  }
}

variable "dr_tags" {
  description = "DR_TAGS: extra tags of the restored resources."
  type        = map(string)
  default     = {}
}

variable "dr_db_name" {
  description = "DR_DB_NAME: the database checked on the restored instance (and the database the postgres_dr module creates)."
  type        = string
  default     = "app"
}

variable "dr_db_secret_arn" {
  description = "DR_DB_SECRET_ID: Secrets Manager secret ({\"username\", \"password\"}) to connect to restored databases; \"\": the postgres_dr master secret."
  type        = string
  default     = ""
}

variable "dr_db_secret_kms_key_arn" {
  description = "KMS key of the secret when it is not encrypted with the AWS managed key; null otherwise (with the postgres_dr master secret: its key, set automatically)."
  type        = string
  default     = null
}

variable "dr_expected_heads" {
  description = "DR_EXPECTED_HEADS: expected Alembic heads; [] uses the heads baked in at build time (DR_ALEMBIC_HEADS_FILE)."
  type        = list(string)
  default     = []
}

variable "dr_sanity_queries" {
  description = "DR_SANITY_QUERIES: [{name, sql, min, max}], each query returns one integer."
  type = list(object({
    name = string
    sql  = string
    min  = optional(number)
    max  = optional(number)
  }))
  default = []
}

variable "dr_critical_tables" {
  description = "DR_CRITICAL_TABLES: tables that get a smoke query."
  type        = list(string)
  default     = []
}

variable "dr_currency_columns" {
  description = "DR_CURRENCY_COLUMNS: table.column write times for the RPO (a heartbeat table is best)."
  type        = list(string)
  default     = []
}

variable "dr_rpo_objective_seconds" {
  description = "DR_RPO_OBJECTIVE_SECONDS."
  type        = number
  default     = 300
}

variable "dr_rpo_tolerance_seconds" {
  description = "DR_RPO_TOLERANCE_SECONDS: over the objective but within this passes (flagged), so the check does not flap on RDS's 0-5 minute lag."
  type        = number
  default     = 120
}

variable "dr_lambda_subnet_ids" {
  description = "Subnets the function runs in (it connects to the restored database)."
  type        = list(string)
  default     = []
}

variable "dr_lambda_security_group_ids" {
  description = "Security groups of the function's network interfaces."
  type        = list(string)
  default     = []
}

variable "dr_schedule_expression" {
  description = "When drills start (quarterly)."
  type        = string
  default     = "cron(0 6 1 1,4,7,10 ? *)"
}

variable "dr_poll_expression" {
  description = "The polling safety net (RDS events are the fast path)."
  type        = string
  default     = "rate(5 minutes)"
}

variable "dr_schedule_enabled" {
  description = "Whether the quarterly drill and the poll are enabled."
  type        = bool
  default     = true
}

variable "dr_failover_replica" {
  description = "DR_FAILOVER_REPLICA: the read replica a rehearsal promotes; null: the postgres_dr standby when it is in the deployment region, else no rehearsal."
  type        = string
  default     = null
}

variable "dr_failover_params" {
  description = "Feature flags switched by a rehearsal: {DATABASE_URL = {param, standby_param}, S3_BUCKET = {...}}."
  type = map(object({
    param         = string
    standby_param = string
  }))
  default = {}

  validation {
    condition     = alltrue([for k in keys(var.dr_failover_params) : contains(["DATABASE_URL", "S3_BUCKET"], k)])
    error_message = "dr_failover_params keys must be DATABASE_URL or S3_BUCKET."
  }
}

variable "dr_smoke_urls" {
  description = "DR_SMOKE_URLS: endpoints a rehearsal smoke-tests (GET, 2xx)."
  type        = list(string)
  default     = []
}

# ---- Function -------------------------------------------------------------------------

locals {
  dr_name         = "dr-restore-${var.environment}"
  dr_zip          = coalesce(var.dr_restore_zip, "${coalesce(var.artifacts_dir, "${path.root}/../target/lambda")}/dr-restore/bootstrap.zip")
  dr_prefix       = "dr-drill-"
  dr_cluster_mode = var.dr_source_db_cluster != null

  # The database side: an explicit dr_* variable wins; otherwise what modules/postgres/dr
  # created (postgres_dr.tf). Instance mode only: an Aurora source is not the module's.
  dr_pg_on              = var.postgres_dr_enabled && !local.dr_cluster_mode
  dr_pg                 = local.dr_pg_on ? one(module.postgres_dr[*]) : null
  dr_source_db_instance = local.dr_pg_on && var.dr_source_db_instance == null ? local.dr_pg.primary_identifier : var.dr_source_db_instance
  dr_subnet_group       = local.dr_pg_on && var.dr_subnet_group == "" ? local.dr_pg.subnet_group_name : var.dr_subnet_group
  dr_security_group_ids = local.dr_pg_on && length(var.dr_security_group_ids) == 0 ? [local.dr_pg.restore_security_group_id] : var.dr_security_group_ids
  dr_parameter_group    = local.dr_pg_on && var.dr_parameter_group == "" ? local.dr_pg.restore_parameter_group_name : var.dr_parameter_group
  dr_instance_class     = var.dr_instance_class != null ? var.dr_instance_class : (local.dr_pg_on ? local.dr_pg.restore_instance_class : "db.t4g.medium")
  dr_db_secret_arn      = local.dr_pg_on && var.dr_db_secret_arn == "" ? local.dr_pg.master_user_secret_arn : var.dr_db_secret_arn
  # Known at plan time (it decides whether the policy has the statement); the key's ARN may not be.
  dr_db_secret_key_needed  = var.dr_db_secret_kms_key_arn != null || (local.dr_pg_on && var.dr_db_secret_arn == "")
  dr_db_secret_kms_key_arn = var.dr_db_secret_kms_key_arn != null ? var.dr_db_secret_kms_key_arn : (local.dr_pg_on ? local.dr_pg.master_user_secret_kms_key_arn : null)
  dr_source_key_needed     = var.dr_source_kms_key_arn != null || (local.dr_pg_on && var.dr_source_db_instance == null)
  dr_source_kms_key_arn    = var.dr_source_kms_key_arn != null ? var.dr_source_kms_key_arn : (local.dr_pg_on ? local.dr_pg.kms_key_arn : null)
  # dr-restore's RDS client is the deployment region's: a standby elsewhere is promoted by hand.
  dr_failover_replica = var.dr_failover_replica != null ? var.dr_failover_replica : (local.dr_pg_on ? (local.dr_pg.replica_in_primary_region ? local.dr_pg.replica_identifier : null) : null)

  dr_state_objects  = "arn:${local.partition}:s3:::${var.report_bucket}/dr-restore/*"
  dr_report_objects = "arn:${local.partition}:s3:::${var.report_bucket}/${var.report_prefix}dr/*"

  dr_db_arn      = "arn:${local.partition}:rds:${local.region}:${local.account_id}:db"
  dr_cluster_arn = "arn:${local.partition}:rds:${local.region}:${local.account_id}:cluster"
  dr_source_arn  = local.dr_cluster_mode ? "${local.dr_cluster_arn}:${coalesce(var.dr_source_db_cluster, "none")}" : "${local.dr_db_arn}:${coalesce(local.dr_source_db_instance, "none")}"

  dr_param_names = flatten([for k, v in var.dr_failover_params : [v.param, v.standby_param]])
  dr_param_arns  = [for p in local.dr_param_names : "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(p, "/")}"]

  dr_sanity_json = jsonencode([for q in var.dr_sanity_queries : { for k, v in q : k => v if v != null }])
}

data "aws_iam_policy_document" "dr_restore" {
  # The source (LatestRestorableTime) and the restore itself. RestoreDBInstanceToPointInTime
  # is authorized on the source and on the target, with the groups it names.
  statement {
    sid       = "DescribeAndRestoreFromSource"
    actions   = local.dr_cluster_mode ? ["rds:DescribeDBClusters", "rds:RestoreDBClusterToPointInTime"] : ["rds:DescribeDBInstances", "rds:RestoreDBInstanceToPointInTime"]
    resources = [local.dr_source_arn]
  }

  # Only instances (and clusters) named dr-drill-* are created, tagged, described and deleted.
  statement {
    sid = "DrillInstancesOnly"
    actions = concat(
      ["rds:RestoreDBInstanceToPointInTime", "rds:DescribeDBInstances", "rds:DeleteDBInstance", "rds:AddTagsToResource", "rds:CreateDBInstance"],
      local.dr_cluster_mode ? ["rds:RestoreDBClusterToPointInTime", "rds:DeleteDBCluster", "rds:DescribeDBClusters"] : []
    )
    resources = [
      "${local.dr_db_arn}:${local.dr_prefix}*",
      "${local.dr_cluster_arn}:${local.dr_prefix}*",
    ]
  }

  # A source under a customer managed key (the postgres_dr module's): RDS creates the restored
  # instance's grants on the key as the caller. Only through RDS in this region.
  dynamic "statement" {
    for_each = local.dr_source_key_needed ? [1] : []
    content {
      sid       = "RestoreEncryptedSource"
      actions   = ["kms:CreateGrant", "kms:DescribeKey"]
      resources = [local.dr_source_kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["rds.${local.region}.amazonaws.com"]
      }
    }
  }

  # The explicit subnet, security and parameter groups named in the restore call.
  statement {
    sid     = "NamedGroups"
    actions = local.dr_cluster_mode ? ["rds:RestoreDBClusterToPointInTime", "rds:CreateDBInstance"] : ["rds:RestoreDBInstanceToPointInTime"]
    resources = compact([
      "arn:${local.partition}:rds:${local.region}:${local.account_id}:subgrp:${local.dr_subnet_group}",
      local.dr_cluster_mode ? "arn:${local.partition}:rds:${local.region}:${local.account_id}:cluster-pg:${local.dr_parameter_group}" : "arn:${local.partition}:rds:${local.region}:${local.account_id}:pg:${local.dr_parameter_group}",
      var.dr_instance_parameter_group == null ? "" : "arn:${local.partition}:rds:${local.region}:${local.account_id}:pg:${var.dr_instance_parameter_group}",
      "arn:${local.partition}:rds:${local.region}:${local.account_id}:og:*",
    ])
  }

  # Drill state (conditional writes) and the monthly reports (read-modify-write).
  statement {
    sid       = "StateAndReports"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [local.dr_state_objects, local.dr_report_objects]
  }

  # The poll lists drills; a read of a missing state or report key must be 404, not 403.
  statement {
    sid       = "ListStateAndReports"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.report_bucket}"]
  }

  statement {
    sid       = "DatabaseCredentials"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.dr_db_secret_arn]
  }

  dynamic "statement" {
    for_each = local.dr_db_secret_key_needed ? [1] : []
    content {
      sid       = "DatabaseCredentialsKey"
      actions   = ["kms:Decrypt"]
      resources = [local.dr_db_secret_kms_key_arn]
    }
  }

  # Failover rehearsal: promote the replica, switch the flags.
  dynamic "statement" {
    for_each = local.dr_failover_replica == null ? [] : [1]
    content {
      sid       = "PromoteReplica"
      actions   = ["rds:PromoteReadReplica", "rds:DescribeDBInstances"]
      resources = ["${local.dr_db_arn}:${local.dr_failover_replica}"]
    }
  }

  # Aurora variant of the rehearsal: fail the cluster over to its replica.
  dynamic "statement" {
    for_each = local.dr_failover_replica == null ? [] : [1]
    content {
      sid       = "FailoverCluster"
      actions   = ["rds:FailoverDBCluster", "rds:DescribeDBClusters"]
      resources = ["arn:${local.partition}:rds:${local.region}:${local.account_id}:cluster:*"]
    }
  }

  dynamic "statement" {
    for_each = length(local.dr_param_arns) > 0 ? [1] : []
    content {
      sid       = "FeatureFlags"
      actions   = ["ssm:GetParameter", "ssm:PutParameter"]
      resources = local.dr_param_arns
    }
  }
}

module "dr_restore" {
  count  = var.dr_enabled ? 1 : 0
  source = "./modules/lambda_function"

  function_name = local.dr_name
  description   = "Database DR drills and failover rehearsals (${var.deployment})"
  zip_path      = local.dr_zip

  # I/O bound (RDS API, a few queries); a step is seconds, a rehearsal waits for promotion.
  memory_mb = 256
  timeout_s = 900

  # Reaches the restored database.
  vpc_subnet_ids         = var.dr_lambda_subnet_ids
  vpc_security_group_ids = var.dr_lambda_security_group_ids

  # Each step is idempotent; the poll picks up anything a failed invocation left.
  maximum_retry_attempts    = 2
  maximum_event_age_seconds = 3600

  log_retention_days = var.log_retention_days
  policy_json        = data.aws_iam_policy_document.dr_restore.json

  # Exactly the variables the code reads (shared/src/config.rs, src/config.rs).
  environment = merge(
    {
      ENVIRONMENT                 = var.environment
      DEPLOYMENT                  = var.deployment
      REPORT_BUCKET               = var.report_bucket
      REPORT_PREFIX               = var.report_prefix
      METRICS_NAMESPACE           = var.metrics_namespace
      LOG_MASK_FIELDS             = join(",", var.log_mask_fields)
      DR_SOURCE_DB_INSTANCE       = local.dr_source_db_instance == null ? "" : local.dr_source_db_instance
      DR_SOURCE_DB_CLUSTER        = var.dr_source_db_cluster == null ? "" : var.dr_source_db_cluster
      DR_INSTANCE_PREFIX          = local.dr_prefix
      DR_SUBNET_GROUP             = local.dr_subnet_group
      DR_SECURITY_GROUP_IDS       = join(",", local.dr_security_group_ids)
      DR_PARAMETER_GROUP          = local.dr_parameter_group
      DR_INSTANCE_PARAMETER_GROUP = var.dr_instance_parameter_group == null ? "" : var.dr_instance_parameter_group
      DR_INSTANCE_CLASS           = local.dr_instance_class
      DR_TAGS                     = join(",", [for k, v in var.dr_tags : "${k}=${v}"])
      DR_DB_NAME                  = var.dr_db_name
      DR_DB_SECRET_ID             = local.dr_db_secret_arn
      DR_EXPECTED_HEADS           = join(",", var.dr_expected_heads)
      DR_SANITY_QUERIES           = local.dr_sanity_json
      DR_CRITICAL_TABLES          = join(",", var.dr_critical_tables)
      DR_CURRENCY_COLUMNS         = join(",", var.dr_currency_columns)
      DR_RPO_OBJECTIVE_SECONDS    = tostring(var.dr_rpo_objective_seconds)
      DR_RPO_TOLERANCE_SECONDS    = tostring(var.dr_rpo_tolerance_seconds)
      DR_FAILOVER_REPLICA         = local.dr_failover_replica == null ? "" : local.dr_failover_replica
      DR_SMOKE_URLS               = join(",", var.dr_smoke_urls)
    },
    { for k, v in var.dr_failover_params : "DR_FAILOVER_${k}_PARAM" => v.param },
    { for k, v in var.dr_failover_params : "DR_FAILOVER_${k}_STANDBY_PARAM" => v.standby_param },
  )

  tags = { Function = "dr-restore" }
}

# ---- RDS events: the fast path ------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "dr_rds_events" {
  count = var.dr_enabled ? 1 : 0

  name        = "${local.dr_name}-rds-events"
  description = "RDS events of drill instances (${local.dr_prefix}*)"
  event_pattern = jsonencode({
    source        = ["aws.rds"]
    "detail-type" = ["RDS DB Instance Event", "RDS DB Cluster Event"]
    detail = {
      SourceIdentifier = [{ prefix = local.dr_prefix }]
    }
  })
}

resource "aws_cloudwatch_event_target" "dr_rds_events" {
  count = var.dr_enabled ? 1 : 0

  rule = aws_cloudwatch_event_rule.dr_rds_events[0].name
  arn  = module.dr_restore[0].function_arn

  retry_policy {
    maximum_retry_attempts       = 8
    maximum_event_age_in_seconds = 3600
  }

  dead_letter_config {
    arn = module.dr_restore[0].dlq_arn
  }
}

resource "aws_lambda_permission" "dr_rds_events" {
  count = var.dr_enabled ? 1 : 0

  statement_id  = "eventbridge-rds-events"
  action        = "lambda:InvokeFunction"
  function_name = module.dr_restore[0].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.dr_rds_events[0].arn
}

data "aws_iam_policy_document" "dr_dlq" {
  count = var.dr_enabled ? 1 : 0

  statement {
    sid       = "EventBridgeDeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [module.dr_restore[0].dlq_arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.dr_rds_events[0].arn]
    }
  }
}

resource "aws_sqs_queue_policy" "dr_dlq" {
  count = var.dr_enabled ? 1 : 0

  queue_url = module.dr_restore[0].dlq_url
  policy    = data.aws_iam_policy_document.dr_dlq[0].json
}

# ---- Schedules: the quarterly drill and the polling safety net ------------------------------

data "aws_iam_policy_document" "dr_scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "dr_scheduler" {
  count = var.dr_enabled ? 1 : 0

  name               = "${local.dr_name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.dr_scheduler_assume.json
}

data "aws_iam_policy_document" "dr_scheduler" {
  count = var.dr_enabled ? 1 : 0

  statement {
    sid       = "InvokeDrRestoreOnly"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.dr_restore[0].function_arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [module.dr_restore[0].dlq_arn]
  }
}

resource "aws_iam_role_policy" "dr_scheduler" {
  count = var.dr_enabled ? 1 : 0

  name   = "invoke-dr-restore"
  role   = aws_iam_role.dr_scheduler[0].id
  policy = data.aws_iam_policy_document.dr_scheduler[0].json
}

resource "aws_scheduler_schedule" "dr_quarterly" {
  #checkov:skip=CKV_AWS_297:The input holds no secrets; Scheduler encrypts it with an AWS owned key.
  count = var.dr_enabled ? 1 : 0

  name                         = "${local.dr_name}-quarterly"
  description                  = "Quarterly point-in-time restore drill"
  schedule_expression          = var.dr_schedule_expression
  schedule_expression_timezone = "UTC"
  state                        = var.dr_schedule_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.dr_restore[0].function_arn
    role_arn = aws_iam_role.dr_scheduler[0].arn

    # The execution id names the drill: a repeated delivery is ALREADY_STARTED. Literal JSON
    # (jsonencode would escape the placeholders' angle brackets).
    input = chomp(<<-JSON
      {"action": "start", "source": "scheduler", "drill_id": "<aws.scheduler.execution-id>", "scheduled_time": "<aws.scheduler.scheduled-time>"}
    JSON
    )

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }

    dead_letter_config {
      arn = module.dr_restore[0].dlq_arn
    }
  }

  depends_on = [aws_iam_role_policy.dr_scheduler]
}

resource "aws_scheduler_schedule" "dr_poll" {
  #checkov:skip=CKV_AWS_297:The input holds no secrets; Scheduler encrypts it with an AWS owned key.
  count = var.dr_enabled ? 1 : 0

  name                         = "${local.dr_name}-poll"
  description                  = "Safety net for lost RDS events: advance unfinished drills"
  schedule_expression          = var.dr_poll_expression
  schedule_expression_timezone = "UTC"
  state                        = var.dr_schedule_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.dr_restore[0].function_arn
    role_arn = aws_iam_role.dr_scheduler[0].arn
    input    = jsonencode({ action = "poll", source = "scheduler" })

    retry_policy {
      maximum_event_age_in_seconds = 300
      maximum_retry_attempts       = 1
    }

    dead_letter_config {
      arn = module.dr_restore[0].dlq_arn
    }
  }

  depends_on = [aws_iam_role_policy.dr_scheduler]
}

output "dr_restore_function_name" {
  value = var.dr_enabled ? module.dr_restore[0].function_name : null
}
