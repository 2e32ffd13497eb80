# alert-router: every alert reaches a person on the playbook's channel and resolves there.
# Subscribed to the critical (PagerDuty + OpsGenie), info (daily e-mail digest), FinOps (Slack
# FinOps channel + Jira FINOPS) and release-incident (Jira REL) topics. The warn topic goes to
# Slack #on-call through AWS Chatbot (infra/slo_alarms.tf), independent of this function, and
# carries the alarm on this function's own failure queue. (docs/alert-router.md)

# ---- Variables (this function only) ---------------------------------------------------

variable "alert_router_zip" {
  description = "Explicit zip for alert-router (e.g. a kept previous build, to roll back); null uses artifacts_dir."
  type        = string
  default     = null
}

variable "alert_jira_url" {
  description = "ALERT_JIRA_URL: the Jira Cloud site (https://<site>.atlassian.net); null: the Jira routes are not configured (FinOps alerts still reach Slack; release incidents then fail to the failure queue)."
  type        = string
  default     = null

  validation {
    condition     = var.alert_jira_url == null || can(regex("^https://", var.alert_jira_url))
    error_message = "alert_jira_url must be an https:// URL."
  }
}

variable "alert_opsgenie_url" {
  description = "ALERT_OPSGENIE_URL: https://api.opsgenie.com, or https://api.eu.opsgenie.com for an EU account."
  type        = string
  default     = "https://api.opsgenie.com"
}

variable "alert_digest_emails" {
  description = "Addresses subscribed (by e-mail) to the daily digest topic; each confirms by mail."
  type        = list(string)
  default     = []
}

variable "alert_digest_schedule" {
  description = "When the digest of the previous UTC day is sent."
  type        = string
  default     = "cron(0 7 * * ? *)"
}

# ---- The secret (value put out of band: never in Terraform state or variables) --------

resource "aws_secretsmanager_secret" "alert_routes" {
  #checkov:skip=CKV2_AWS_57:The routing keys are third-party integration keys rotated in those services; there is no Lambda rotation for them.
  #checkov:skip=CKV_AWS_149:Encrypted with the AWS managed key; a CMK is the upgrade (docs/alert-router.md#secret).
  name        = "alert-routes-${var.environment}"
  description = "alert-router: PagerDuty routing key, OpsGenie API key, FinOps Slack webhook, Jira credentials (JSON, docs/alert-router.md#secret)"
}

# ---- The digest topic ------------------------------------------------------------------

resource "aws_sns_topic" "alert_digest" {
  #checkov:skip=CKV_AWS_26:The digest carries alarm names and reasons, no secrets; e-mail subscribers need no key access.
  name = "alert-digest-${var.environment}"
}

resource "aws_sns_topic_subscription" "alert_digest_email" {
  for_each  = toset(var.alert_digest_emails)
  topic_arn = aws_sns_topic.alert_digest.arn
  protocol  = "email"
  endpoint  = each.value
}

# ---- Function -------------------------------------------------------------------------

locals {
  ar_name = "alert-router-${var.environment}"
  ar_zip  = coalesce(var.alert_router_zip, "${coalesce(var.artifacts_dir, "${path.root}/../target/lambda")}/alert-router/bootstrap.zip")
  ar_topics = {
    critical = aws_sns_topic.slo_critical.arn
    info     = aws_sns_topic.slo_info.arn
    finops   = aws_sns_topic.finops.arn
    release  = aws_sns_topic.loadtest_incidents.arn
  }
}

data "aws_iam_policy_document" "alert_router" {
  statement {
    sid       = "ReadRouteSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.alert_routes.arn]
  }

  statement {
    sid       = "PublishDigest"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alert_digest.arn]
  }

  statement {
    sid       = "OwnState"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["arn:${local.partition}:s3:::${var.report_bucket}/alerts/*"]
  }

  statement {
    sid       = "ListDigestDays"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.report_bucket}"]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["alerts/*"]
    }
  }
}

module "alert_router" {
  source = "./modules/lambda_function"

  function_name = local.ar_name
  description   = "Route alerts to PagerDuty, OpsGenie, Slack, Jira and the daily digest (${var.deployment})"
  zip_path      = local.ar_zip

  # Small JSON bodies and a few HTTPS calls: the smallest size with a fast TLS handshake.
  memory_mb = 256
  # Four routes x 3 attempts x 5 s timeout, plus backoff: within a minute.
  timeout_s = 90

  # SNS invokes asynchronously: two retries, then the failure queue (alarmed below).
  maximum_retry_attempts    = 2
  maximum_event_age_seconds = 21600

  log_retention_days = var.log_retention_days
  policy_json        = data.aws_iam_policy_document.alert_router.json

  environment = {
    ENVIRONMENT            = var.environment
    DEPLOYMENT             = var.deployment
    REPORT_BUCKET          = var.report_bucket
    REPORT_PREFIX          = var.report_prefix
    METRICS_NAMESPACE      = var.metrics_namespace
    LOG_MASK_FIELDS        = join(",", var.log_mask_fields)
    ALERT_TOPICS           = join(",", [for k, v in local.ar_topics : "${k}=${v}"])
    ALERT_SECRET_ID        = aws_secretsmanager_secret.alert_routes.arn
    ALERT_DIGEST_TOPIC_ARN = aws_sns_topic.alert_digest.arn
    ALERT_STATE_PREFIX     = "alerts/"
    ALERT_OPSGENIE_URL     = var.alert_opsgenie_url
    ALERT_JIRA_URL         = var.alert_jira_url == null ? "" : var.alert_jira_url
  }

  tags = { Function = "alert-router" }
}

resource "aws_sns_topic_subscription" "alert_router" {
  for_each  = local.ar_topics
  topic_arn = each.value
  protocol  = "lambda"
  endpoint  = module.alert_router.function_arn
}

resource "aws_lambda_permission" "alert_router_sns" {
  for_each      = local.ar_topics
  statement_id  = "sns-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = module.alert_router.function_name
  principal     = "sns.amazonaws.com"
  source_arn    = each.value
}

# ---- Undelivered alerts: the failure queue pages the warn route (Chatbot) ---------------

resource "aws_cloudwatch_metric_alarm" "alert_router_undelivered" {
  alarm_name          = "alert-router-undelivered-${var.environment}"
  alarm_description   = "An alert could not be delivered after retries and waits in ${module.alert_router.dlq_name} (docs/alert-router.md#reliability): read it, fix the route (secret, service), replay it."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = module.alert_router.dlq_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  # SQS publishes this every 5 minutes while the queue exists: no data means no queue.
  treat_missing_data = "breaching"
  alarm_actions      = [aws_sns_topic.slo_warn.arn]
  ok_actions         = [aws_sns_topic.slo_warn.arn]
}

# ---- Schedule: the daily digest ---------------------------------------------------------

data "aws_iam_policy_document" "ar_scheduler_assume" {
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

resource "aws_iam_role" "ar_scheduler" {
  name               = "${local.ar_name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.ar_scheduler_assume.json
}

data "aws_iam_policy_document" "ar_scheduler" {
  statement {
    sid       = "InvokeAlertRouterOnly"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.alert_router.function_arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [module.alert_router.dlq_arn]
  }
}

resource "aws_iam_role_policy" "ar_scheduler" {
  name   = "invoke-alert-router"
  role   = aws_iam_role.ar_scheduler.id
  policy = data.aws_iam_policy_document.ar_scheduler.json
}

resource "aws_scheduler_schedule" "alert_digest" {
  #checkov:skip=CKV_AWS_297:The input holds no secrets (the job kind); Scheduler encrypts it with an AWS owned key.
  name                         = "${local.ar_name}-digest"
  description                  = "The daily e-mail digest of the info alerts (previous UTC day)"
  schedule_expression          = var.alert_digest_schedule
  schedule_expression_timezone = "UTC"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.alert_router.function_arn
    role_arn = aws_iam_role.ar_scheduler.arn

    input = jsonencode({ kind = "digest" })

    # The day is marked sent, so a retry never mails twice after a success.
    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }

    dead_letter_config {
      arn = module.alert_router.dlq_arn
    }
  }

  depends_on = [aws_iam_role_policy.ar_scheduler]
}

output "alert_router_function_name" {
  value = module.alert_router.function_name
}

output "alert_routes_secret_arn" {
  description = "Put the routing keys here (docs/alert-router.md#secret)."
  value       = aws_secretsmanager_secret.alert_routes.arn
}
