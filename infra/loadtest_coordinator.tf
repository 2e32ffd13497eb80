# loadtest-coordinator: plans a scenario into slices and shards, invokes loadtest-shard,
# merges histograms, judges thresholds, keeps the release gate and the baseline, publishes
# REL incidents to SNS. One nightly schedule per scenario. (docs/loadtest-coordinator.md)

# ---- Variables (this function only) ---------------------------------------------------

variable "loadtest_coordinator_zip" {
  description = "Explicit zip for loadtest-coordinator (e.g. a kept previous build, to roll back); null uses artifacts_dir."
  type        = string
  default     = null
}

variable "loadtest_scenarios" {
  description = "Scenario name (events/loadtest/<name>.json) => nightly schedule (cron or rate expression, UTC)."
  type        = map(string)
  default = {
    "bulk-import"      = "cron(0 1 * * ? *)"
    "quote-generation" = "cron(30 1 * * ? *)"
    "realtime-events"  = "cron(0 2 * * ? *)"
  }

  validation {
    condition     = alltrue([for k, v in var.loadtest_scenarios : can(regex("^[a-z0-9][a-z0-9._-]*$", k))])
    error_message = "loadtest_scenarios keys must be scenario names (lower-case letters, digits, '.', '_', '-')."
  }
}

variable "loadtest_schedules_enabled" {
  description = "Whether the nightly load-test schedules are ENABLED."
  type        = bool
  default     = true
}

variable "loadtest_scenarios_dir" {
  description = "Local folder whose *.json scenario files (and body files) are uploaded to the scenario prefix."
  type        = string
  default     = null
}

variable "loadtest_slice_seconds" {
  description = "LOADTEST_COORD_SLICE_SECONDS: one coordinator invocation runs one slice; lead + slice + grace + 60 s must stay under 870 s."
  type        = number
  default     = 600

  validation {
    condition     = var.loadtest_slice_seconds >= 30 && var.loadtest_slice_seconds <= 765
    error_message = "loadtest_slice_seconds must be 30-765 (with the default lead 15 s and grace 30 s)."
  }
}

variable "loadtest_lead_seconds" {
  description = "LOADTEST_COORD_LEAD_SECONDS: shards and the next slice's coordinator are invoked this early."
  type        = number
  default     = 15
}

variable "loadtest_shard_grace_seconds" {
  description = "LOADTEST_COORD_SHARD_GRACE_SECONDS: how long after its window a shard may answer."
  type        = number
  default     = 30
}

variable "loadtest_shard_rps" {
  description = "LOADTEST_COORD_SHARD_RPS: requests per second one shard is sized for."
  type        = number
  default     = 50
}

variable "loadtest_sse_clients_per_shard" {
  description = "LOADTEST_COORD_SSE_CLIENTS_PER_SHARD: SSE streams per shard (1-900; Lambda allows 1,024 descriptors)."
  type        = number
  default     = 800

  validation {
    condition     = var.loadtest_sse_clients_per_shard >= 1 && var.loadtest_sse_clients_per_shard <= 900
    error_message = "loadtest_sse_clients_per_shard must be 1-900."
  }
}

variable "loadtest_max_shards" {
  description = "LOADTEST_COORD_MAX_SHARDS: plans wider than this are refused."
  type        = number
  default     = 200
}

variable "prometheus_url" {
  description = "The environment's Prometheus (the Grafana dashboards' Prometheus datasource, docs/dashboards.md), e.g. https://prometheus.internal; the coordinator remote-writes every run's k6_* series to <url>/api/v1/write. null: no Prometheus, no remote write."
  type        = string
  default     = null

  validation {
    condition     = var.prometheus_url == null || (can(regex("^https?://[^/]+", var.prometheus_url)) && !strcontains(coalesce(var.prometheus_url, "-"), "REPLACE-ME"))
    error_message = "prometheus_url must be an http(s) URL (the server, without /api/v1/write), or null."
  }
}

variable "loadtest_remote_write_url" {
  description = "LOADTEST_COORD_REMOTE_WRITE_URL when the endpoint is not <prometheus_url>/api/v1/write (a remote-write gateway, Mimir, Amazon Managed Prometheus); null: derived from prometheus_url."
  type        = string
  default     = null
}

variable "loadtest_incident_subscribers" {
  description = "E-mail addresses subscribed to the REL incident topic."
  type        = list(string)
  default     = []
}

# ---- Function -------------------------------------------------------------------------

locals {
  # Remote write is on wherever a Prometheus is configured.
  ltc_remote_write = var.loadtest_remote_write_url != null ? var.loadtest_remote_write_url : (
    var.prometheus_url == null ? "" : "${trimsuffix(var.prometheus_url, "/")}/api/v1/write"
  )
  # An Amazon Managed Service for Prometheus endpoint (https://aps-workspaces.<region>.amazonaws.com/
  # workspaces/<id>/api/v1/remote_write): the coordinator signs with SigV4 (region from the URL)
  # and needs aps:RemoteWrite on that workspace. [region, workspace id], or null.
  ltc_amp       = try(regex("^https://aps-workspaces\\.([a-z0-9-]+)\\.amazonaws\\.com/workspaces/([^/]+)/", local.ltc_remote_write), null)
  ltc_name      = "loadtest-coordinator-${var.environment}"
  ltc_zip       = coalesce(var.loadtest_coordinator_zip, "${coalesce(var.artifacts_dir, "${path.root}/../target/lambda")}/loadtest-coordinator/bootstrap.zip")
  ltc_arn       = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.ltc_name}"
  ltc_prefix    = "k6/"
  ltc_scen_dir  = coalesce(var.loadtest_scenarios_dir, "${path.root}/../events/loadtest")
  ltc_objects   = "arn:${local.partition}:s3:::${var.report_bucket}/${local.ltc_prefix}*"
  ltc_scenarios = fileset(local.ltc_scen_dir, "*.json")
}

resource "aws_sns_topic" "loadtest_incidents" {
  name = "loadtest-incidents-${var.environment}"
  # Only the coordinator publishes here; the AWS managed key's policy lets principals of this
  # account use it through SNS, so no extra KMS grant is needed.
  kms_master_key_id = "alias/aws/sns"
  tags              = { Function = "loadtest-coordinator" }
}

resource "aws_sns_topic_subscription" "loadtest_incidents_email" {
  for_each = toset(var.loadtest_incident_subscribers)

  topic_arn = aws_sns_topic.loadtest_incidents.arn
  protocol  = "email"
  endpoint  = each.value
}

data "aws_iam_policy_document" "loadtest_coordinator" {
  # Scenarios, run state, slice claims and partials, artifacts, gate, baseline, incidents:
  # all under k6/. PutObject covers the conditional creates (If-None-Match).
  statement {
    sid       = "OwnPrefix"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [local.ltc_objects]
  }

  # Incident numbering lists k6/incidents/; GetObject of a missing key (gate, baseline, slice
  # partials before they exist) must be 404, not 403.
  statement {
    sid       = "ListOwnPrefix"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.report_bucket}"]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.ltc_prefix}*"]
    }
  }

  statement {
    sid       = "MissingKeysAre404"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.report_bucket}"]
  }

  # Fan-out (RequestResponse) to the shards, and the asynchronous continuation of itself.
  statement {
    sid       = "InvokeShardsAndContinue"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.loadtest_shard.function_arn, local.ltc_arn]
  }

  # REL incidents; and the owners' notice of a run with no verdict (the info topic, which
  # alert-router collects into the daily digest).
  statement {
    sid       = "PublishIncidentsAndNotices"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.loadtest_incidents.arn, aws_sns_topic.slo_info.arn]
  }

  # Remote write to Amazon Managed Service for Prometheus (SigV4-signed, service "aps").
  dynamic "statement" {
    for_each = local.ltc_amp == null ? [] : [local.ltc_amp]
    content {
      sid       = "RemoteWriteToAmp"
      actions   = ["aps:RemoteWrite"]
      resources = ["arn:${local.partition}:aps:${statement.value[0]}:${local.account_id}:workspace/${statement.value[1]}"]
    }
  }
}

module "loadtest_coordinator" {
  source = "./modules/lambda_function"

  function_name = local.ltc_name
  description   = "Load-test coordinator: slices, shards, merged histograms, thresholds, release gate (${var.deployment})"
  zip_path      = local.ltc_zip

  # Mostly waiting on shards; merging histograms and drawing the chart are light.
  memory_mb = 512
  timeout_s = 900

  # A retried slice would run its window late: the slice claim turns a retry into a no-op,
  # and a lost slice is counted by the finalizer; so no async retries.
  maximum_retry_attempts    = 0
  maximum_event_age_seconds = 300

  # Each slice invokes the next one; runs beyond 16 slices would trip recursion detection.
  allow_recursive_loop = false

  log_retention_days = var.log_retention_days
  policy_json        = data.aws_iam_policy_document.loadtest_coordinator.json

  # Exactly the variables the code reads (shared/src/config.rs, src/config.rs).
  environment = {
    ENVIRONMENT                             = var.environment
    DEPLOYMENT                              = var.deployment
    REPORT_BUCKET                           = var.report_bucket
    REPORT_PREFIX                           = var.report_prefix
    METRICS_NAMESPACE                       = var.metrics_namespace
    LOG_MASK_FIELDS                         = join(",", var.log_mask_fields)
    LOADTEST_COORD_PREFIX                   = local.ltc_prefix
    LOADTEST_COORD_SHARD_FUNCTION           = module.loadtest_shard.function_name
    LOADTEST_COORD_SELF_FUNCTION            = local.ltc_name
    LOADTEST_COORD_SLICE_SECONDS            = tostring(var.loadtest_slice_seconds)
    LOADTEST_COORD_LEAD_SECONDS             = tostring(var.loadtest_lead_seconds)
    LOADTEST_COORD_SHARD_GRACE_SECONDS      = tostring(var.loadtest_shard_grace_seconds)
    LOADTEST_COORD_SHARD_RPS                = tostring(var.loadtest_shard_rps)
    LOADTEST_COORD_SSE_CLIENTS_PER_SHARD    = tostring(var.loadtest_sse_clients_per_shard)
    LOADTEST_COORD_MAX_SHARDS               = tostring(var.loadtest_max_shards)
    LOADTEST_COORD_INVOCATION_LIMIT_SECONDS = "900"
    LOADTEST_COORD_REMOTE_WRITE_URL         = local.ltc_remote_write
    LOADTEST_COORD_INCIDENT_TOPIC_ARN       = aws_sns_topic.loadtest_incidents.arn
    LOADTEST_COORD_NOTICE_TOPIC_ARN         = aws_sns_topic.slo_info.arn
  }

  tags = { Function = "loadtest-coordinator" }
}

# The scenario files (and any body files next to them) in the bucket the coordinator reads.
resource "aws_s3_object" "loadtest_scenario" {
  for_each = local.ltc_scenarios

  bucket       = var.report_bucket
  key          = "${local.ltc_prefix}scenarios/${each.value}"
  source       = "${local.ltc_scen_dir}/${each.value}"
  etag         = filemd5("${local.ltc_scen_dir}/${each.value}")
  content_type = "application/json"
}

# ---- Nightly schedules, one per scenario -------------------------------------------------

data "aws_iam_policy_document" "ltc_scheduler_assume" {
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

resource "aws_iam_role" "ltc_scheduler" {
  name               = "${local.ltc_name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.ltc_scheduler_assume.json
}

data "aws_iam_policy_document" "ltc_scheduler" {
  statement {
    sid       = "InvokeCoordinatorOnly"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.loadtest_coordinator.function_arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [module.loadtest_coordinator.dlq_arn]
  }
}

resource "aws_iam_role_policy" "ltc_scheduler" {
  name   = "invoke-loadtest-coordinator"
  role   = aws_iam_role.ltc_scheduler.id
  policy = data.aws_iam_policy_document.ltc_scheduler.json
}

resource "aws_scheduler_schedule" "loadtest_nightly" {
  #checkov:skip=CKV_AWS_297:The input holds no secrets (a scenario name, Scheduler placeholders); Scheduler encrypts it with an AWS owned key.
  for_each = var.loadtest_scenarios

  name                         = "${local.ltc_name}-${each.key}"
  description                  = "Nightly load test: ${each.key}"
  schedule_expression          = each.value
  schedule_expression_timezone = "UTC"
  state                        = var.loadtest_schedules_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.loadtest_coordinator.function_arn
    role_arn = aws_iam_role.ltc_scheduler.arn

    # run_id = the execution id: a repeated delivery of the same execution is the same run
    # (the coordinator's run.json create-only write makes it a no-op). Literal JSON so that
    # Scheduler substitutes its <aws.scheduler.*> placeholders (jsonencode escapes < and >).
    input = chomp(<<-JSON
      {"scenario": "${each.key}", "run_id": "<aws.scheduler.execution-id>", "scheduled_time": "<aws.scheduler.scheduled-time>"}
    JSON
    )

    retry_policy {
      maximum_event_age_in_seconds = 600
      maximum_retry_attempts       = 2
    }

    dead_letter_config {
      arn = module.loadtest_coordinator.dlq_arn
    }
  }

  depends_on = [aws_iam_role_policy.ltc_scheduler]
}

output "loadtest_coordinator_function_name" {
  value = module.loadtest_coordinator.function_name
}

output "loadtest_remote_write_url" {
  description = "Where the coordinator remote-writes the k6_* series (empty: nowhere)."
  value       = local.ltc_remote_write
}

output "loadtest_incident_topic_arn" {
  value = aws_sns_topic.loadtest_incidents.arn
}

output "loadtest_gate_uri_prefix" {
  description = "CI: aws s3 cp <prefix><scenario>.json - | jq -e '.state == \"PASS\"'"
  value       = "s3://${var.report_bucket}/${local.ltc_prefix}gate/"
}
