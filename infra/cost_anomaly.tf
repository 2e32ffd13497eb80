# cost-anomaly: FinOps. Daily detection on Cost Explorer spend by env tag and service, the
# monthly report, budgets at 80/100/120 %, Budgets and Cost Anomaly Detection alerts via SNS.
# (docs/cost-anomaly.md)

# ---- Variables (this function only) ---------------------------------------------------

variable "cost_anomaly_zip" {
  description = "Explicit zip for cost-anomaly (e.g. a kept previous build, to roll back); null uses artifacts_dir."
  type        = string
  default     = null
}

variable "finops_budgets" {
  description = "Monthly cost budgets: name => { limit (USD), env (the env tag value, null for the whole account) }. Terraform creates them; the function checks and repairs their drift (FINOPS_BUDGETS)."
  type = map(object({
    limit = number
    env   = optional(string)
  }))
  default = {}

  validation {
    condition     = alltrue([for n, b in var.finops_budgets : b.limit > 0 && can(regex("^[^:\\\\]{1,100}$", n))])
    error_message = "finops_budgets: limits must be above 0 and names 1-100 characters without ':' or '\\'."
  }
}

variable "finops_thresholds" {
  description = "Budget notifications (FINOPS_BUDGET_THRESHOLDS): type ACTUAL or FORECASTED, percent of the limit."
  type = list(object({
    type    = string
    percent = number
  }))
  default = [
    { type = "ACTUAL", percent = 80 },
    { type = "ACTUAL", percent = 100 },
    { type = "FORECASTED", percent = 120 },
  ]

  validation {
    condition     = alltrue([for t in var.finops_thresholds : contains(["ACTUAL", "FORECASTED"], t.type) && t.percent > 0])
    error_message = "finops_thresholds: type ACTUAL or FORECASTED, percent above 0."
  }
}

variable "finops_tag_key" {
  description = "FINOPS_TAG_KEY: the cost allocation tag naming the environment (must be activated in Billing)."
  type        = string
  default     = "env"
}

variable "finops_history_days" {
  description = "FINOPS_HISTORY_DAYS: days of daily cost pulled and judged (21-365)."
  type        = number
  default     = 90

  validation {
    condition     = var.finops_history_days >= 21 && var.finops_history_days <= 365
    error_message = "finops_history_days must be 21-365."
  }
}

variable "finops_max_requests" {
  description = "FINOPS_CE_MAX_REQUESTS: Cost Explorer requests per run ($0.01 each)."
  type        = number
  default     = 20
}

variable "finops_dollar_floor" {
  description = "FINOPS_DOLLAR_FLOOR: an anomaly must cost at least this many dollars."
  type        = number
  default     = 10
}

variable "finops_percent_gate" {
  description = "FINOPS_PERCENT_GATE: a spike day must be this many percent above expected."
  type        = number
  default     = 20
}

variable "finops_detect_schedule" {
  description = "When the daily detection runs (Cost Explorer data is up to 24 h late; Cost Anomaly Detection runs about three times a day)."
  type        = string
  default     = "cron(30 6 * * ? *)"
}

variable "finops_report_schedule" {
  description = "When the monthly report of the previous month is written."
  type        = string
  default     = "cron(0 8 1 * ? *)"
}

variable "finops_budget_check_schedule" {
  description = "When budgets are checked and their drift fixed."
  type        = string
  default     = "cron(0 7 * * ? *)"
}

variable "finops_cad_enabled" {
  description = "AWS Cost Anomaly Detection beside the suite's own detector: a monitor of this environment's tagged spend (finops_tag_key = environment) and a subscription that publishes to the FinOps topic, so alert-router routes AWS's findings (root causes down to usage type) with ours."
  type        = bool
  default     = true
}

variable "finops_cad_impact_dollars" {
  description = "Cost Anomaly Detection notifies for anomalies whose total impact is at least this many dollars."
  type        = number
  default     = 100

  validation {
    condition     = var.finops_cad_impact_dollars > 0
    error_message = "finops_cad_impact_dollars must be above 0."
  }
}

variable "finops_schedules_enabled" {
  description = "Whether the FinOps schedules run."
  type        = bool
  default     = true
}

# ---- Function -------------------------------------------------------------------------

locals {
  ca_name = "cost-anomaly-${var.environment}"
  ca_zip  = coalesce(var.cost_anomaly_zip, "${coalesce(var.artifacts_dir, "${path.root}/../target/lambda")}/cost-anomaly/bootstrap.zip")

  ca_budgets    = join(",", [for n, b in var.finops_budgets : b.env == null ? "${n}=${b.limit}" : "${n}=${b.limit}@${b.env}"])
  ca_thresholds = join(",", [for t in var.finops_thresholds : "${t.type}:${t.percent}"])
  ca_state      = "arn:${local.partition}:s3:::${var.report_bucket}/${var.report_prefix}cost-anomaly/*"
  ca_report     = "arn:${local.partition}:s3:::${var.report_bucket}/${var.report_prefix}finops/*"
}

data "aws_iam_policy_document" "cost_anomaly" {
  # GetCostAndUsage (paged) and GetCostForecast take no resource.
  statement {
    sid       = "CostExplorerRead"
    actions   = ["ce:GetCostAndUsage", "ce:GetCostForecast"]
    resources = ["*"]
  }

  # DescribeBudget, DescribeNotificationsForBudget, DescribeSubscribersForNotification are
  # ViewBudget; CreateBudget, UpdateBudget, CreateNotification, CreateSubscriber ModifyBudget.
  # Only the configured budgets.
  statement {
    sid       = "OwnBudgets"
    actions   = ["budgets:ViewBudget", "budgets:ModifyBudget"]
    resources = length(var.finops_budgets) > 0 ? [for n, _ in var.finops_budgets : "arn:${local.partition}:budgets::${local.account_id}:budget/${n}"] : ["arn:${local.partition}:budgets::${local.account_id}:budget/none"]
  }

  # Cache, state and message records (cost-anomaly/), the report (finops/).
  statement {
    sid       = "OwnStateAndReports"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [local.ca_state, local.ca_report]
  }

  # Its own anomalies, published for alert-router (Slack FinOps, Jira FINOPS).
  statement {
    sid       = "PublishAnomalyAlerts"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.finops.arn]
  }

  # GetObject of a key not written yet must be 404, not 403.
  statement {
    sid       = "ReportBucketMissingKeysAre404"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.report_bucket}"]
  }
}

module "cost_anomaly" {
  source = "./modules/lambda_function"

  function_name = local.ca_name
  description   = "FinOps: cost anomalies, forecast, budgets, monthly report (${var.deployment})"
  zip_path      = local.ca_zip

  # 90 days x a few hundred series, detection and a plotters SVG: small.
  memory_mb = 512
  timeout_s = 300

  maximum_retry_attempts    = 2
  maximum_event_age_seconds = 21600

  log_retention_days = var.log_retention_days
  policy_json        = data.aws_iam_policy_document.cost_anomaly.json

  # Exactly the variables the code reads (shared/src/config.rs, src/config.rs).
  environment = {
    ENVIRONMENT              = var.environment
    DEPLOYMENT               = var.deployment
    REPORT_BUCKET            = var.report_bucket
    REPORT_PREFIX            = var.report_prefix
    METRICS_NAMESPACE        = var.metrics_namespace
    LOG_MASK_FIELDS          = join(",", var.log_mask_fields)
    FINOPS_HISTORY_DAYS      = tostring(var.finops_history_days)
    FINOPS_CE_MAX_REQUESTS   = tostring(var.finops_max_requests)
    FINOPS_TAG_KEY           = var.finops_tag_key
    FINOPS_DOLLAR_FLOOR      = tostring(var.finops_dollar_floor)
    FINOPS_PERCENT_GATE      = tostring(var.finops_percent_gate)
    FINOPS_BUDGETS           = local.ca_budgets
    FINOPS_BUDGET_THRESHOLDS = local.ca_thresholds
    FINOPS_TOPIC_ARN         = aws_sns_topic.finops.arn
    FINOPS_ACCOUNT_ID        = local.account_id
  }

  tags = { Function = "cost-anomaly" }
}

# ---- The FinOps topic: Budgets and Cost Anomaly Detection publish, the function listens ----

resource "aws_sns_topic" "finops" {
  #checkov:skip=CKV_AWS_26:AWS Budgets and Cost Anomaly Detection cannot publish to a topic under the AWS managed SNS key; the alerts carry cost figures, no secrets (a CMK with a service policy is the upgrade, docs/cost-anomaly.md).
  name = "finops-alerts-${var.environment}"
}

data "aws_iam_policy_document" "finops_topic" {
  statement {
    sid       = "BudgetsAndCostAnomalyDetectionPublish"
    actions   = ["SNS:Publish"]
    resources = [aws_sns_topic.finops.arn]
    principals {
      type        = "Service"
      identifiers = ["budgets.amazonaws.com", "costalerts.amazonaws.com"]
    }
    # Only on behalf of this account (confused deputy).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "AccountManagesTopic"
    actions   = ["SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:Subscribe", "SNS:ListSubscriptionsByTopic", "SNS:Publish"]
    resources = [aws_sns_topic.finops.arn]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

resource "aws_sns_topic_policy" "finops" {
  arn    = aws_sns_topic.finops.arn
  policy = data.aws_iam_policy_document.finops_topic.json
}

# cost-anomaly reads AWS's notifications on the FinOps topic (Budgets, Cost Anomaly
# Detection) and publishes its own anomalies to it for alert-router. Every suite publication
# carries the `producer` message attribute (shared::notifications::PRODUCER_ATTRIBUTE); AWS's
# carry none, so this filter gives the function AWS's and never its own back. The file is the
# one the function's integration test applies in moto.
resource "aws_sns_topic_subscription" "finops_lambda" {
  topic_arn           = aws_sns_topic.finops.arn
  protocol            = "lambda"
  endpoint            = module.cost_anomaly.function_arn
  filter_policy       = file("${path.module}/sns/finops-aws-notifications-only.json")
  filter_policy_scope = "MessageAttributes"
}

resource "aws_lambda_permission" "finops_sns" {
  statement_id  = "sns-finops-alerts"
  action        = "lambda:InvokeFunction"
  function_name = module.cost_anomaly.function_name
  principal     = "sns.amazonaws.com"
  source_arn    = aws_sns_topic.finops.arn
}

# ---- Budgets (the function repairs their drift with the same spec) ----------------------

resource "aws_budgets_budget" "finops" {
  for_each = var.finops_budgets

  name         = each.key
  budget_type  = "COST"
  limit_amount = format("%.2f", each.value.limit)
  limit_unit   = "USD"
  time_unit    = "MONTHLY"

  dynamic "cost_filter" {
    for_each = each.value.env == null ? [] : [each.value.env]
    content {
      name   = "TagKeyValue"
      values = [format("user:%s$%s", var.finops_tag_key, cost_filter.value)]
    }
  }

  dynamic "notification" {
    for_each = var.finops_thresholds
    content {
      comparison_operator       = "GREATER_THAN"
      threshold                 = notification.value.percent
      threshold_type            = "PERCENTAGE"
      notification_type         = notification.value.type
      subscriber_sns_topic_arns = [aws_sns_topic.finops.arn]
    }
  }

  depends_on = [aws_sns_topic_policy.finops]
}

# ---- Schedules ------------------------------------------------------------------------

data "aws_iam_policy_document" "ca_scheduler_assume" {
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

resource "aws_iam_role" "ca_scheduler" {
  name               = "${local.ca_name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.ca_scheduler_assume.json
}

data "aws_iam_policy_document" "ca_scheduler" {
  statement {
    sid       = "InvokeCostAnomalyOnly"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.cost_anomaly.function_arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [module.cost_anomaly.dlq_arn]
  }
}

resource "aws_iam_role_policy" "ca_scheduler" {
  name   = "invoke-cost-anomaly"
  role   = aws_iam_role.ca_scheduler.id
  policy = data.aws_iam_policy_document.ca_scheduler.json
}

locals {
  # Literal JSON: jsonencode() would escape "<" and ">" and Scheduler would not substitute.
  ca_schedules = {
    detect = {
      expression = var.finops_detect_schedule
      input      = "{\"job\": \"detect\", \"scheduled_time\": \"<aws.scheduler.scheduled-time>\"}"
    }
    report = {
      expression = var.finops_report_schedule
      input      = "{\"job\": \"report\", \"scheduled_time\": \"<aws.scheduler.scheduled-time>\"}"
    }
    budgets = {
      expression = var.finops_budget_check_schedule
      input      = "{\"job\": \"budgets\", \"scheduled_time\": \"<aws.scheduler.scheduled-time>\"}"
    }
  }
}

resource "aws_scheduler_schedule" "cost_anomaly" {
  #checkov:skip=CKV_AWS_297:The input holds no secrets (a mode, Scheduler placeholders); Scheduler encrypts it with an AWS owned key.
  for_each = local.ca_schedules

  name                         = "${local.ca_name}-${each.key}"
  description                  = "cost-anomaly ${each.key}"
  schedule_expression          = each.value.expression
  schedule_expression_timezone = "UTC"
  state                        = var.finops_schedules_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.cost_anomaly.function_arn
    role_arn = aws_iam_role.ca_scheduler.arn
    input    = each.value.input

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }

    dead_letter_config {
      arn = module.cost_anomaly.dlq_arn
    }
  }

  depends_on = [aws_iam_role_policy.ca_scheduler]
}

# ---- Outputs --------------------------------------------------------------------------

output "cost_anomaly_function_name" {
  value = module.cost_anomaly.function_name
}

output "finops_topic_arn" {
  description = "Subscribe the FinOps channel (email, Chatbot) here; Cost Anomaly Detection subscriptions publish here too."
  value       = aws_sns_topic.finops.arn
}

output "finops_report_location" {
  value = "s3://${var.report_bucket}/${var.report_prefix}finops/"
}

# ---- AWS Cost Anomaly Detection: a second opinion with root causes, on the same route ----

# A CUSTOM monitor on the environment's cost allocation tag: one per environment (an account
# holds one DIMENSIONAL SERVICE monitor only, so per-environment stacks could not each make one).
resource "aws_ce_anomaly_monitor" "finops" {
  count = var.finops_cad_enabled ? 1 : 0

  name         = "finops-${var.environment}"
  monitor_type = "CUSTOM"
  monitor_specification = jsonencode({
    Tags = {
      Key          = var.finops_tag_key
      Values       = [var.environment]
      MatchOptions = ["EQUALS"]
    }
  })
}

# SNS subscribers need IMMEDIATE; the topic policy lets costalerts.amazonaws.com publish.
resource "aws_ce_anomaly_subscription" "finops" {
  count = var.finops_cad_enabled ? 1 : 0

  name             = "finops-${var.environment}"
  frequency        = "IMMEDIATE"
  monitor_arn_list = [aws_ce_anomaly_monitor.finops[0].arn]

  subscriber {
    type    = "SNS"
    address = aws_sns_topic.finops.arn
  }

  threshold_expression {
    dimension {
      key           = "ANOMALY_TOTAL_IMPACT_ABSOLUTE"
      match_options = ["GREATER_THAN_OR_EQUAL"]
      values        = [tostring(var.finops_cad_impact_dollars)]
    }
  }

  depends_on = [aws_sns_topic_policy.finops]
}
