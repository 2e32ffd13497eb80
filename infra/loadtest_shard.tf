# loadtest-shard: runs one stripe of one time slice of a load-test scenario (open-model HTTP or
# SSE clients) and returns mergeable HDR histograms. Invoked synchronously by
# loadtest-coordinator (infra/loadtest_coordinator.tf grants it lambda:InvokeFunction on
# module.loadtest_shard.function_arn). (docs/loadtest-shard.md)

# ---- Variables (this function only) ---------------------------------------------------

variable "loadtest_shard_zip" {
  description = "Explicit zip for loadtest-shard (e.g. a kept previous build, to roll back); null uses artifacts_dir."
  type        = string
  default     = null
}

variable "loadtest_allowed_hosts" {
  description = "LOADTEST_ALLOWED_HOSTS: the only hosts the shards may load (exact host or *.suffix). Empty refuses every target."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for h in var.loadtest_allowed_hosts : can(regex("^(\\*\\.)?[A-Za-z0-9.-]+$", h))])
    error_message = "loadtest_allowed_hosts entries are hosts (api.example.com) or suffixes (*.staging.example.com), without scheme or port."
  }
}

variable "loadtest_shard_memory_mb" {
  description = "Memory of a shard; 1769 MB buys one full vCPU (the load generator is one thread)."
  type        = number
  default     = 1769
}

variable "loadtest_shard_timeout_s" {
  description = "Timeout of a shard invocation; the coordinator plans slices shorter than this."
  type        = number
  default     = 900

  validation {
    condition     = var.loadtest_shard_timeout_s >= 30 && var.loadtest_shard_timeout_s <= 900
    error_message = "loadtest_shard_timeout_s must be 30-900."
  }
}

variable "loadtest_deadline_margin_ms" {
  description = "LOADTEST_DEADLINE_MARGIN_MS: a shard stops scheduling this long before its deadline."
  type        = number
  default     = 3000
}

variable "loadtest_max_streams" {
  description = "LOADTEST_MAX_STREAMS: SSE streams / connections per shard (Lambda allows 1,024 file descriptors)."
  type        = number
  default     = 900

  validation {
    condition     = var.loadtest_max_streams >= 1 && var.loadtest_max_streams <= 1000
    error_message = "loadtest_max_streams must be 1-1000."
  }
}

# ---- Function -------------------------------------------------------------------------

locals {
  lts_name = "loadtest-shard-${var.environment}"
  lts_zip  = coalesce(var.loadtest_shard_zip, "${coalesce(var.artifacts_dir, "${path.root}/../target/lambda")}/loadtest-shard/bootstrap.zip")
}

# The shard calls no AWS API (it talks HTTP to the allow-listed target and returns its result
# to the caller). IAM needs at least one statement: an explicit deny that keeps a shard from
# ever becoming a fan-out amplifier, whatever else is attached to the role later.
data "aws_iam_policy_document" "loadtest_shard" {
  statement {
    sid       = "NeverInvokesAnything"
    effect    = "Deny"
    actions   = ["lambda:InvokeFunction", "lambda:InvokeAsync"]
    resources = ["*"]
  }
}

module "loadtest_shard" {
  source = "./modules/lambda_function"

  function_name = local.lts_name
  description   = "Load-test shard: one stripe of one slice, open-model HTTP or SSE (${var.deployment})"
  zip_path      = local.lts_zip

  memory_mb = var.loadtest_shard_memory_mb
  timeout_s = var.loadtest_shard_timeout_s

  # Invoked synchronously; an asynchronous retry would replay load, so none.
  maximum_retry_attempts    = 0
  maximum_event_age_seconds = 60

  log_retention_days = var.log_retention_days
  policy_json        = data.aws_iam_policy_document.loadtest_shard.json

  # Exactly the variables the code reads (shared/src/config.rs, src/config.rs).
  environment = {
    ENVIRONMENT                 = var.environment
    DEPLOYMENT                  = var.deployment
    REPORT_BUCKET               = var.report_bucket
    REPORT_PREFIX               = var.report_prefix
    METRICS_NAMESPACE           = var.metrics_namespace
    LOG_MASK_FIELDS             = join(",", var.log_mask_fields)
    LOADTEST_ALLOWED_HOSTS      = join(",", var.loadtest_allowed_hosts)
    LOADTEST_DEADLINE_MARGIN_MS = tostring(var.loadtest_deadline_margin_ms)
    LOADTEST_MAX_STREAMS        = tostring(var.loadtest_max_streams)
  }

  tags = { Function = "loadtest-shard" }
}

output "loadtest_shard_function_name" {
  value = module.loadtest_shard.function_name
}

output "loadtest_shard_function_arn" {
  value = module.loadtest_shard.function_arn
}
