# uptime-probe: every minute, probes the health endpoints and publishes the api_availability
# SLI, errors and latency as EMF; infra/slo_alarms.tf (generated from infra/slo/slos.json)
# alarms on them. Every 15 minutes ({"kind": "error_budget"}) it reads the SLI sums back
# (GetMetricData) and publishes error_budget_remaining_percent per SLO in
# <metrics_namespace>/SLO, which chaos-runner's gate reads. (docs/uptime-probe.md, docs/slo.md)

# ---- Variables (this function only) ---------------------------------------------------

variable "uptime_probe_zip" {
  description = "Explicit zip for uptime-probe (e.g. a kept previous build, to roll back); null uses artifacts_dir."
  type        = string
  default     = null
}

variable "uptime_probe_targets" {
  description = "PROBE_TARGETS: the endpoints. The SLO file expects the names api, quote (latency_threshold_ms 900) and sse (kind sse)."
  type = list(object({
    name                 = string
    url                  = string
    kind                 = optional(string, "http")
    latency_threshold_ms = optional(number)
    timeout_ms           = optional(number)
  }))
  default = []

  validation {
    condition     = alltrue([for t in var.uptime_probe_targets : can(regex("^https?://", t.url)) && contains(["http", "sse"], t.kind) && can(regex("^[A-Za-z0-9_-]+$", t.name))])
    error_message = "Each target needs a name (letters, digits, - or _), an http(s) url and kind http or sse."
  }
}

variable "uptime_probe_timeout_ms" {
  description = "PROBE_TIMEOUT_MS: per-probe timeout."
  type        = number
  default     = 5000

  validation {
    condition     = var.uptime_probe_timeout_ms >= 1 && var.uptime_probe_timeout_ms <= 60000
    error_message = "uptime_probe_timeout_ms must be 1-60000."
  }
}

variable "uptime_probe_schedule_enabled" {
  description = "false stops the probing (the SLO no-data alarms will then fire)."
  type        = bool
  default     = true
}

variable "uptime_probe_error_budget_schedule_enabled" {
  description = "false stops publishing error_budget_remaining_percent (chaos-runner's gate then skips every experiment: budget unknown)."
  type        = bool
  default     = true
}

# ---- Function -------------------------------------------------------------------------

locals {
  up_name = "uptime-probe-${var.environment}"
  up_zip  = coalesce(var.uptime_probe_zip, "${coalesce(var.artifacts_dir, "${path.root}/../target/lambda")}/uptime-probe/bootstrap.zip")
  # Only the fields the code reads (unset optionals dropped; the code refuses unknown fields).
  up_targets = jsonencode([for t in var.uptime_probe_targets : { for k, v in t : k => v if v != null }])
}

data "aws_iam_policy_document" "uptime_probe" {
  #checkov:skip=CKV_AWS_356:cloudwatch:GetMetricData does not support resource-level permissions.
  # The probes call no AWS API (metrics are EMF log lines); the module adds logs and X-Ray.
  # The error_budget kind reads the SLI sums back with GetMetricData.
  statement {
    sid       = "ReadSliMetrics"
    actions   = ["cloudwatch:GetMetricData"]
    resources = ["*"]
  }
}

module "uptime_probe" {
  source = "./modules/lambda_function"

  function_name = local.up_name
  description   = "Probe health endpoints for the availability SLI (${var.deployment})"
  zip_path      = local.up_zip

  # Concurrent probes, each bounded by its timeout; a whole run well under a minute.
  memory_mb = 256
  timeout_s = 70

  # A missed minute is one missing sample, not worth a late retry.
  maximum_retry_attempts    = 0
  maximum_event_age_seconds = 60

  log_retention_days = var.log_retention_days
  policy_json        = data.aws_iam_policy_document.uptime_probe.json

  environment = {
    ENVIRONMENT       = var.environment
    DEPLOYMENT        = var.deployment
    REPORT_BUCKET     = var.report_bucket
    REPORT_PREFIX     = var.report_prefix
    METRICS_NAMESPACE = var.metrics_namespace
    LOG_MASK_FIELDS   = join(",", var.log_mask_fields)
    PROBE_TARGETS     = local.up_targets
    PROBE_TIMEOUT_MS  = tostring(var.uptime_probe_timeout_ms)
  }

  tags = { Function = "uptime-probe" }
}

# ---- Schedule: every minute -------------------------------------------------------------

data "aws_iam_policy_document" "up_scheduler_assume" {
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

resource "aws_iam_role" "up_scheduler" {
  name               = "${local.up_name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.up_scheduler_assume.json
}

data "aws_iam_policy_document" "up_scheduler" {
  statement {
    sid       = "InvokeUptimeProbeOnly"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.uptime_probe.function_arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [module.uptime_probe.dlq_arn]
  }
}

resource "aws_iam_role_policy" "up_scheduler" {
  name   = "invoke-uptime-probe"
  role   = aws_iam_role.up_scheduler.id
  policy = data.aws_iam_policy_document.up_scheduler.json
}

resource "aws_scheduler_schedule" "uptime_probe" {
  #checkov:skip=CKV_AWS_297:The input holds no secrets (a source, the scheduled time); Scheduler encrypts it with an AWS owned key.
  name                         = local.up_name
  description                  = "Health probes every minute (api_availability SLI)"
  schedule_expression          = "rate(1 minute)"
  schedule_expression_timezone = "UTC"
  state                        = var.uptime_probe_schedule_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.uptime_probe.function_arn
    role_arn = aws_iam_role.up_scheduler.arn

    input = chomp(<<-JSON
      {"source": "schedule", "scheduled_time": "<aws.scheduler.scheduled-time>"}
    JSON
    )

    retry_policy {
      maximum_event_age_in_seconds = 60
      maximum_retry_attempts       = 0
    }

    dead_letter_config {
      arn = module.uptime_probe.dlq_arn
    }
  }

  depends_on = [aws_iam_role_policy.up_scheduler]
}

# ---- Schedule: the error budget every 15 minutes ----------------------------------------

resource "aws_scheduler_schedule" "uptime_probe_error_budget" {
  #checkov:skip=CKV_AWS_297:The input holds no secrets (the invocation kind); Scheduler encrypts it with an AWS owned key.
  name                         = "${local.up_name}-error-budget"
  description                  = "Error budget of every SLO (error_budget_remaining_percent) every 15 minutes"
  schedule_expression          = "rate(15 minutes)"
  schedule_expression_timezone = "UTC"
  state                        = var.uptime_probe_error_budget_schedule_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.uptime_probe.function_arn
    role_arn = aws_iam_role.up_scheduler.arn

    input = jsonencode({ kind = "error_budget" })

    # A missed run is recomputed whole by the next one, 15 minutes later.
    retry_policy {
      maximum_event_age_in_seconds = 300
      maximum_retry_attempts       = 1
    }

    dead_letter_config {
      arn = module.uptime_probe.dlq_arn
    }
  }

  depends_on = [aws_iam_role_policy.up_scheduler]
}

output "uptime_probe_function_name" {
  value = module.uptime_probe.function_name
}
