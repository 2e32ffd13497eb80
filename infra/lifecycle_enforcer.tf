# lifecycle-enforcer: keeps the lifecycle tag (lifecycle=managed unless legal_hold / long
# retention) on objects under the policy's prefixes, sweeps nightly, and reconciles the primary
# and DR buckets' lifecycle rules with the policy (docs/lifecycle-enforcer.md).
#
# Its variables live here (not in variables.tf); PRIMARY_BUCKET, REPLICA_BUCKET, the report
# settings, continuation and checkpoint margin are shared with manifest-diff.

variable "lifecycle_enforcer_zip" {
  description = "Explicit zip for lifecycle-enforcer (e.g. a kept previous build, to roll back); null uses artifacts_dir."
  type        = string
  default     = null
}

variable "lifecycle_policy" {
  description = "LIFECYCLE_POLICY: the policy document (docs/lifecycle-enforcer.md#policy) as an object; null means the playbook (attachments/ IA 30 d, Glacier 365 d unless legal_hold=true; exports/ expire 14 d unless retention=long). The function validates it at cold start."
  type        = any
  default     = null

  validation {
    condition     = var.lifecycle_policy == null || can([for r in var.lifecycle_policy.rules : r.prefix])
    error_message = "lifecycle_policy must have rules, each with a prefix."
  }
}

variable "lifecycle_schedule_enabled" {
  description = "Whether the nightly sweep and reconciliation fire (they exist either way)."
  type        = bool
  default     = true
}

variable "lifecycle_sweep_schedule" {
  description = "When the nightly tag sweep of the primary bucket fires, in UTC."
  type        = string
  default     = "cron(15 3 * * ? *)"
}

variable "lifecycle_reconcile_schedule" {
  description = "When the nightly lifecycle rule reconciliation of the primary and DR buckets fires, in UTC."
  type        = string
  default     = "cron(0 3 * * ? *)"
}

variable "lifecycle_reconcile_apply" {
  description = "Whether the scheduled reconciliation writes the desired rules (keeping foreign ones) or only reports drift."
  type        = bool
  default     = true
}

variable "lifecycle_manage_notifications" {
  description = "Manage the primary bucket's S3 notification (ObjectCreated:* and ObjectTagging:* under the policy's prefixes) to the function. It REPLACES the bucket's whole notification configuration: leave off when something else owns it, and add the lambda_function blocks there."
  type        = bool
  default     = false
}

locals {
  le_name = "lifecycle-enforcer-${var.environment}"
  le_arn  = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.le_name}"
  le_zip  = coalesce(var.lifecycle_enforcer_zip, "${coalesce(var.artifacts_dir, "${path.root}/../target/lambda")}/lifecycle-enforcer/bootstrap.zip")

  # The playbook's prefixes unless a policy is given (policy.rs: PolicyDoc::playbook).
  le_prefixes = var.lifecycle_policy == null ? ["attachments/", "exports/"] : [for r in var.lifecycle_policy.rules : r.prefix]
  le_buckets  = compact([var.primary_bucket, var.replica_bucket])
  le_objects = flatten([for b in local.le_buckets : [
    for p in local.le_prefixes : "arn:${local.partition}:s3:::${b}/${p}*"
  ]])
  # Reports, checkpoints (_state/) and the last sequencer per key (_sequencers/).
  le_report_objects = "arn:${local.partition}:s3:::${var.report_bucket}/${var.report_prefix}lifecycle-enforcer/*"
}

data "aws_iam_policy_document" "lifecycle_enforcer" {
  # The sweep lists the prefixes (ListObjectsV2). Also makes GetObjectTagging of a deleted key
  # answer 404 (handled as "gone") instead of 403.
  statement {
    sid       = "ListManagedBuckets"
    actions   = ["s3:ListBucket"]
    resources = [for b in local.le_buckets : "arn:${local.partition}:s3:::${b}"]
  }

  # GetObjectTagging (current version) and PutObjectTagging, which in a versioned bucket is
  # sent with the version id it read (s3:PutObjectVersionTagging).
  statement {
    sid       = "TagManagedObjects"
    actions   = ["s3:GetObjectTagging", "s3:PutObjectTagging", "s3:PutObjectVersionTagging"]
    resources = local.le_objects
  }

  # GetBucketLifecycleConfiguration / PutBucketLifecycleConfiguration on both buckets.
  statement {
    sid       = "ReconcileLifecycleRules"
    actions   = ["s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"]
    resources = [for b in local.le_buckets : "arn:${local.partition}:s3:::${b}"]
  }

  # Missing state objects (first event for a key, first checkpoint) must answer 404, not 403.
  statement {
    sid       = "ReportBucketMissingKeysAre404"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.report_bucket}"]
  }

  statement {
    sid       = "OwnReportsAndState"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [local.le_report_objects]
  }

  dynamic "statement" {
    for_each = var.continuation == "invoke" ? [1] : []
    content {
      sid       = "SelfContinuation"
      actions   = ["lambda:InvokeFunction"]
      resources = [local.le_arn]
    }
  }
}

module "lifecycle_enforcer" {
  source = "./modules/lambda_function"

  function_name = local.le_name
  description   = "Lifecycle tags and rules for ${var.primary_bucket} / ${var.replica_bucket} (${var.deployment})"
  zip_path      = local.le_zip

  # A few S3 calls per object, no buffers: the smallest size is enough.
  memory_mb = 256
  # Events take milliseconds; sweeps use the maximum and checkpoint before it.
  timeout_s = 900

  # Tagging is idempotent (sequencer check, re-read of the current tags): retrying a failed
  # event is safe and usually succeeds (throttling).
  maximum_retry_attempts    = 2
  maximum_event_age_seconds = 21600
  allow_recursive_loop      = var.continuation == "invoke"

  log_retention_days = var.log_retention_days
  policy_json        = data.aws_iam_policy_document.lifecycle_enforcer.json

  # Exactly the variables the code reads (shared/src/config.rs, request.rs, handler.rs).
  environment = {
    ENVIRONMENT               = var.environment
    DEPLOYMENT                = var.deployment
    REPORT_BUCKET             = var.report_bucket
    REPORT_PREFIX             = var.report_prefix
    METRICS_NAMESPACE         = var.metrics_namespace
    LOG_MASK_FIELDS           = join(",", var.log_mask_fields)
    PRIMARY_BUCKET            = var.primary_bucket
    REPLICA_BUCKET            = var.replica_bucket
    LIFECYCLE_POLICY          = var.lifecycle_policy == null ? "" : jsonencode(var.lifecycle_policy)
    CONTINUATION              = var.continuation
    CHECKPOINT_MARGIN_SECONDS = tostring(var.checkpoint_margin_seconds)
  }

  tags = { Function = "lifecycle-enforcer" }
}

# ---- Nightly sweep and reconciliation --------------------------------------------------

resource "aws_iam_role" "le_scheduler" {
  name               = "${local.le_name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.md_scheduler_assume.json
}

data "aws_iam_policy_document" "le_scheduler" {
  statement {
    sid       = "InvokeLifecycleEnforcerOnly"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.lifecycle_enforcer.function_arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [module.lifecycle_enforcer.dlq_arn]
  }
}

resource "aws_iam_role_policy" "le_scheduler" {
  name   = "invoke-lifecycle-enforcer"
  role   = aws_iam_role.le_scheduler.id
  policy = data.aws_iam_policy_document.le_scheduler.json
}

locals {
  # Literal JSON: jsonencode() would escape "<" and ">" and Scheduler would not substitute
  # its placeholders. run_id makes a repeated delivery of one execution one run.
  le_schedules = {
    sweep = {
      expression  = var.lifecycle_sweep_schedule
      description = "Nightly lifecycle tag sweep"
      input       = "{\"action\": \"sweep\", \"run_id\": \"<aws.scheduler.execution-id>\", \"scheduled_time\": \"<aws.scheduler.scheduled-time>\"}"
    }
    reconcile = {
      expression  = var.lifecycle_reconcile_schedule
      description = "Nightly lifecycle rule reconciliation (primary and DR)"
      input       = "{\"action\": \"reconcile\", \"apply\": ${var.lifecycle_reconcile_apply}, \"run_id\": \"<aws.scheduler.execution-id>\", \"scheduled_time\": \"<aws.scheduler.scheduled-time>\"}"
    }
  }
}

resource "aws_scheduler_schedule" "lifecycle_enforcer" {
  #checkov:skip=CKV_AWS_297:The input holds no secrets (a source, a run id placeholder); Scheduler encrypts it with an AWS owned key.
  for_each = local.le_schedules

  name                         = "${local.le_name}-${each.key}"
  description                  = each.value.description
  schedule_expression          = each.value.expression
  schedule_expression_timezone = "UTC"
  state                        = var.lifecycle_schedule_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.lifecycle_enforcer.function_arn
    role_arn = aws_iam_role.le_scheduler.arn
    input    = each.value.input

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }

    dead_letter_config {
      arn = module.lifecycle_enforcer.dlq_arn
    }
  }

  depends_on = [aws_iam_role_policy.le_scheduler]
}

# ---- S3 events on the primary bucket ----------------------------------------------------
#
# Created objects are tagged, tag changes re-evaluated. Only the primary: S3 notifies only
# functions in the bucket's region, and replication carries tags to the DR bucket. The
# function's own PutObjectTagging raises an ObjectTagging:Put event that finds the object
# compliant and writes nothing, so there is no loop.

resource "aws_lambda_permission" "le_s3" {
  count = var.lifecycle_manage_notifications ? 1 : 0

  statement_id   = "s3-${replace(var.primary_bucket, ".", "-")}"
  action         = "lambda:InvokeFunction"
  function_name  = module.lifecycle_enforcer.function_name
  principal      = "s3.amazonaws.com"
  source_arn     = "arn:${local.partition}:s3:::${var.primary_bucket}"
  source_account = local.account_id
}

resource "aws_s3_bucket_notification" "lifecycle_enforcer" {
  count = var.lifecycle_manage_notifications ? 1 : 0

  bucket = var.primary_bucket

  dynamic "lambda_function" {
    for_each = local.le_prefixes
    content {
      lambda_function_arn = module.lifecycle_enforcer.function_arn
      events              = ["s3:ObjectCreated:*", "s3:ObjectTagging:*"]
      filter_prefix       = lambda_function.value
    }
  }

  depends_on = [aws_lambda_permission.le_s3]
}

output "lifecycle_enforcer_function_name" {
  value = module.lifecycle_enforcer.function_name
}

output "lifecycle_enforcer_dlq_url" {
  value = module.lifecycle_enforcer.dlq_url
}

output "lifecycle_enforcer_report_location" {
  value = "s3://${var.report_bucket}/${var.report_prefix}lifecycle-enforcer/"
}
