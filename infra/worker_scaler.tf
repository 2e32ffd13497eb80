# worker-scaler: every few minutes, reads the RQ backlog from Redis and sizes the RQ worker
# fleet (an ECS service's desired count or an Auto Scaling group's desired capacity): doubled
# 20:00-02:00 UTC while the backlog stays high, base otherwise. (docs/worker-scaler.md)

# ---- Variables (this function only) ---------------------------------------------------

variable "worker_scaler_zip" {
  description = "Explicit zip for worker-scaler (e.g. a kept previous build, to roll back); null uses artifacts_dir."
  type        = string
  default     = null
}

variable "worker_scaler_redis_url" {
  description = "SCALER_REDIS_URL: RQ's Redis, e.g. redis://queue-cache.xxxx.cache.amazonaws.com:6379/0."
  type        = string
  default     = "redis://127.0.0.1:6379"
  sensitive   = true

  validation {
    condition     = can(regex("^rediss?://", var.worker_scaler_redis_url))
    error_message = "worker_scaler_redis_url must start with redis:// or rediss://."
  }
}

variable "worker_scaler_queues" {
  description = "SCALER_QUEUES: the RQ queue names whose backlog drives the fleet."
  type        = list(string)
  default     = ["default"]

  validation {
    condition     = length(var.worker_scaler_queues) > 0
    error_message = "worker_scaler_queues must name at least one queue."
  }
}

variable "worker_scaler_target" {
  description = "SCALER_TARGET: ecs:CLUSTER/SERVICE or asg:GROUP_NAME."
  type        = string
  default     = "ecs:workers/rq-worker"

  validation {
    condition     = can(regex("^(ecs:[^/]+/[^/]+|asg:.+)$", var.worker_scaler_target))
    error_message = "worker_scaler_target must be ecs:CLUSTER/SERVICE or asg:GROUP_NAME."
  }
}

variable "worker_scaler_policy" {
  description = "The policy: base and max workers, high/low backlog marks, consecutive checks, cool-down (s), UTC window HH:MM-HH:MM."
  type = object({
    base_workers       = number
    max_workers        = number
    high_backlog       = number
    low_backlog        = number
    consecutive_checks = number
    cooldown_seconds   = number
    window             = string
  })
  default = {
    base_workers       = 2
    max_workers        = 8
    high_backlog       = 100
    low_backlog        = 10
    consecutive_checks = 3
    cooldown_seconds   = 900
    window             = "20:00-02:00"
  }

  validation {
    condition     = var.worker_scaler_policy.base_workers >= 1 && var.worker_scaler_policy.max_workers >= var.worker_scaler_policy.base_workers && var.worker_scaler_policy.low_backlog < var.worker_scaler_policy.high_backlog
    error_message = "Need 1 <= base_workers <= max_workers and low_backlog < high_backlog."
  }
}

variable "worker_scaler_schedule_expression" {
  description = "How often the scaler checks (one check per scheduled time; N consecutive checks are N of these)."
  type        = string
  default     = "rate(5 minutes)"
}

variable "worker_scaler_schedule_enabled" {
  description = "false pauses the scaler (the fleet stays as it is)."
  type        = bool
  default     = true
}

variable "worker_scaler_vpc_subnet_ids" {
  description = "Subnets that reach Redis (ElastiCache is in a VPC); [] runs outside a VPC."
  type        = list(string)
  default     = []
}

variable "worker_scaler_security_group_ids" {
  description = "Security groups allowed to Redis's port, when worker_scaler_vpc_subnet_ids is set."
  type        = list(string)
  default     = []
}

# ---- Function -------------------------------------------------------------------------

locals {
  ws_name = "worker-scaler-${var.environment}"
  ws_zip  = coalesce(var.worker_scaler_zip, "${coalesce(var.artifacts_dir, "${path.root}/../target/lambda")}/worker-scaler/bootstrap.zip")

  ws_is_ecs      = startswith(var.worker_scaler_target, "ecs:")
  ws_ecs_parts   = local.ws_is_ecs ? split("/", trimprefix(var.worker_scaler_target, "ecs:")) : ["", ""]
  ws_ecs_service = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/${local.ws_ecs_parts[0]}/${local.ws_ecs_parts[1]}"
  ws_asg_name    = trimprefix(var.worker_scaler_target, "asg:")
  ws_asg_arn     = "arn:${local.partition}:autoscaling:${local.region}:${local.account_id}:autoScalingGroup:*:autoScalingGroupName/${local.ws_asg_name}"
}

data "aws_iam_policy_document" "worker_scaler" {
  # ECS: DescribeServices and UpdateService (desiredCount only) on the one service.
  dynamic "statement" {
    for_each = local.ws_is_ecs ? [1] : []
    content {
      sid       = "ScaleTheEcsService"
      actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
      resources = [local.ws_ecs_service]
    }
  }

  # Auto Scaling: DescribeAutoScalingGroups supports no resource-level permission.
  dynamic "statement" {
    for_each = local.ws_is_ecs ? [] : [1]
    content {
      sid       = "DescribeGroups"
      actions   = ["autoscaling:DescribeAutoScalingGroups"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = local.ws_is_ecs ? [] : [1]
    content {
      sid       = "ScaleTheGroup"
      actions   = ["autoscaling:SetDesiredCapacity"]
      resources = [local.ws_asg_arn]
    }
  }
}

module "worker_scaler" {
  source = "./modules/lambda_function"

  function_name = local.ws_name
  description   = "Size the RQ worker fleet from the Redis backlog (${var.deployment})"
  zip_path      = local.ws_zip

  # A few Redis round trips and two AWS calls; the Redis timeouts bound a hung Redis.
  memory_mb = 256
  timeout_s = 60

  # A failed check is not retried: the next scheduled check decides afresh.
  maximum_retry_attempts    = 0
  maximum_event_age_seconds = 300

  vpc_subnet_ids         = var.worker_scaler_vpc_subnet_ids
  vpc_security_group_ids = var.worker_scaler_security_group_ids

  log_retention_days = var.log_retention_days
  policy_json        = data.aws_iam_policy_document.worker_scaler.json

  # Exactly the variables the code reads (shared/src/config.rs, src/config.rs).
  environment = {
    ENVIRONMENT               = var.environment
    DEPLOYMENT                = var.deployment
    REPORT_BUCKET             = var.report_bucket
    REPORT_PREFIX             = var.report_prefix
    METRICS_NAMESPACE         = var.metrics_namespace
    LOG_MASK_FIELDS           = join(",", var.log_mask_fields)
    SCALER_REDIS_URL          = var.worker_scaler_redis_url
    SCALER_QUEUES             = join(",", var.worker_scaler_queues)
    SCALER_TARGET             = var.worker_scaler_target
    SCALER_BASE_WORKERS       = tostring(var.worker_scaler_policy.base_workers)
    SCALER_MAX_WORKERS        = tostring(var.worker_scaler_policy.max_workers)
    SCALER_HIGH_BACKLOG       = tostring(var.worker_scaler_policy.high_backlog)
    SCALER_LOW_BACKLOG        = tostring(var.worker_scaler_policy.low_backlog)
    SCALER_CONSECUTIVE_CHECKS = tostring(var.worker_scaler_policy.consecutive_checks)
    SCALER_COOLDOWN_SECONDS   = tostring(var.worker_scaler_policy.cooldown_seconds)
    SCALER_WINDOW             = var.worker_scaler_policy.window
  }

  tags = { Function = "worker-scaler" }
}

# ---- Schedule ---------------------------------------------------------------------------

data "aws_iam_policy_document" "ws_scheduler_assume" {
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

resource "aws_iam_role" "ws_scheduler" {
  name               = "${local.ws_name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.ws_scheduler_assume.json
}

data "aws_iam_policy_document" "ws_scheduler" {
  statement {
    sid       = "InvokeWorkerScalerOnly"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.worker_scaler.function_arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [module.worker_scaler.dlq_arn]
  }
}

resource "aws_iam_role_policy" "ws_scheduler" {
  name   = "invoke-worker-scaler"
  role   = aws_iam_role.ws_scheduler.id
  policy = data.aws_iam_policy_document.ws_scheduler.json
}

resource "aws_scheduler_schedule" "worker_scaler" {
  #checkov:skip=CKV_AWS_297:The input holds no secrets (a source, the scheduled time); Scheduler encrypts it with an AWS owned key.
  name                         = local.ws_name
  description                  = "RQ worker right-sizing check"
  schedule_expression          = var.worker_scaler_schedule_expression
  schedule_expression_timezone = "UTC"
  state                        = var.worker_scaler_schedule_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.worker_scaler.function_arn
    role_arn = aws_iam_role.ws_scheduler.arn

    # scheduled_time is the check's idempotency key: a repeated delivery is not counted twice.
    # Literal JSON so Scheduler substitutes its placeholders (see manifest_diff.tf).
    input = chomp(<<-JSON
      {"source": "schedule", "scheduled_time": "<aws.scheduler.scheduled-time>"}
    JSON
    )

    # A late check is worthless: the next one comes in minutes.
    retry_policy {
      maximum_event_age_in_seconds = 240
      maximum_retry_attempts       = 1
    }

    dead_letter_config {
      arn = module.worker_scaler.dlq_arn
    }
  }

  depends_on = [aws_iam_role_policy.ws_scheduler]
}

output "worker_scaler_function_name" {
  value = module.worker_scaler.function_name
}
