# ---- Where and what -------------------------------------------------------------------

variable "environment" {
  description = "dev, staging or prod: the ENVIRONMENT the code checks, the name suffix, and the workspace to apply in."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "deployment" {
  description = "Label stamped on logs, metrics and reports (DEPLOYMENT): the git sha of the build."
  type        = string

  validation {
    condition     = length(trimspace(var.deployment)) > 0
    error_message = "Pass -var deployment=$(git rev-parse --short HEAD)."
  }
}

variable "aws_region" {
  description = "Region to deploy to; null takes it from AWS_REGION or the profile."
  type        = string
  default     = null
}

variable "artifacts_dir" {
  description = "Where cargo-lambda put the zips (<dir>/<function>/bootstrap.zip); null means ../target/lambda from infra/."
  type        = string
  default     = null
}

variable "manifest_diff_zip" {
  description = "Explicit zip for manifest-diff (e.g. a kept previous build, to roll back); null uses artifacts_dir."
  type        = string
  default     = null
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention."
  type        = number
  default     = 30
}

# ---- Settings every function reads (shared/src/config.rs) ------------------------------

variable "report_bucket" {
  description = "REPORT_BUCKET: receives reports and run checkpoints."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.report_bucket))
    error_message = "report_bucket must be a bucket name (3-63 lowercase letters, digits, '.', '-')."
  }
}

variable "report_prefix" {
  description = "REPORT_PREFIX: manifest-diff writes under <report_prefix>manifest-diff/."
  type        = string
  default     = "reports/"

  validation {
    # The code appends a missing '/'; requiring it here keeps the IAM resources identical.
    condition     = endswith(var.report_prefix, "/") && !startswith(var.report_prefix, "/")
    error_message = "report_prefix must end with '/' and not start with one, e.g. \"reports/\"."
  }
}

variable "metrics_namespace" {
  description = "METRICS_NAMESPACE: CloudWatch namespace of the EMF metrics."
  type        = string
  default     = "PlatformPlaybook"
}

variable "log_mask_fields" {
  description = "LOG_MASK_FIELDS: extra field names whose values are never logged (password, secret, token, ... are always masked)."
  type        = list(string)
  default     = []
}

# ---- manifest-diff (functions/manifest-diff/src/request.rs, handler.rs) ---------------

variable "primary_bucket" {
  description = "PRIMARY_BUCKET: the bucket of record."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.primary_bucket))
    error_message = "primary_bucket must be a bucket name (3-63 lowercase letters, digits, '.', '-')."
  }
}

variable "replica_bucket" {
  description = "REPLICA_BUCKET: the DR copy."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.replica_bucket)) && var.replica_bucket != var.primary_bucket
    error_message = "replica_bucket must be a bucket name, different from primary_bucket."
  }
}

variable "prefixes" {
  description = "PREFIXES: key prefixes compared, none inside another; [\"\"] alone means the whole bucket."
  type        = list(string)
  default     = ["attachments/", "exports/"]

  validation {
    condition     = length(var.prefixes) > 0 && alltrue([for p in var.prefixes : !startswith(p, "/") && !strcontains(p, ",")])
    error_message = "prefixes must be non-empty, without a leading '/' or a ','."
  }
}

variable "source_mode" {
  description = "SOURCE: default source of manual invocations, \"list\" (ListObjectsV2) or \"inventory\" (S3 Inventory reports)."
  type        = string
  default     = "list"

  validation {
    condition     = contains(["list", "inventory"], var.source_mode)
    error_message = "source_mode must be \"list\" or \"inventory\"."
  }

  validation {
    condition     = var.source_mode == "list" || (var.primary_inventory != "" && var.replica_inventory != "")
    error_message = "source_mode \"inventory\" needs primary_inventory and replica_inventory."
  }
}

variable "primary_inventory" {
  description = "PRIMARY_INVENTORY: where the primary bucket's inventory reports land, s3://inventory-bucket/prefix/source-bucket/config-id/ (\"\" when unused)."
  type        = string
  default     = ""

  validation {
    condition     = var.primary_inventory == "" || can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", var.primary_inventory))
    error_message = "primary_inventory must be \"\" or s3://inventory-bucket/prefix/source-bucket/config-id/."
  }
}

variable "replica_inventory" {
  description = "REPLICA_INVENTORY: the same for the replica bucket."
  type        = string
  default     = ""

  validation {
    condition     = var.replica_inventory == "" || can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", var.replica_inventory))
    error_message = "replica_inventory must be \"\" or s3://inventory-bucket/prefix/source-bucket/config-id/."
  }
}

variable "lag_allowance_hours" {
  description = "LAG_ALLOWANCE_HOURS: objects newer than this are pending replication, not drift."
  type        = number
  default     = 24
}

variable "drift_threshold_percent" {
  description = "DRIFT_THRESHOLD_PERCENT: drift above this percentage of eligible objects is DRIFT."
  type        = number
  default     = 0.1

  validation {
    condition     = var.drift_threshold_percent >= 0 && var.drift_threshold_percent <= 100
    error_message = "drift_threshold_percent is a percentage, 0-100."
  }
}

variable "continuation" {
  description = "CONTINUATION: \"invoke\" (a run that nears the timeout checkpoints and invokes itself) or \"return\" (the caller re-invokes)."
  type        = string
  default     = "invoke"

  validation {
    condition     = contains(["invoke", "return"], var.continuation)
    error_message = "continuation must be \"invoke\" or \"return\"."
  }
}

variable "checkpoint_margin_seconds" {
  description = "CHECKPOINT_MARGIN_SECONDS: stop this long before the Lambda deadline to write the checkpoint."
  type        = number
  default     = 30
}

variable "sort_memory_mb" {
  description = "SORT_MEMORY_MB: memory per side for the external sort of inventory rows; beyond it rows spill to /tmp."
  type        = number
  default     = 96

  validation {
    # Both sides are held at once inside a 1024 MB function.
    condition     = var.sort_memory_mb >= 16 && var.sort_memory_mb <= 384
    error_message = "sort_memory_mb must be between 16 and 384 (two sides must fit in the function's 1024 MB)."
  }
}

# ---- Triggers ---------------------------------------------------------------------------

variable "schedule_enabled" {
  description = "Whether the nightly schedule fires (it exists either way)."
  type        = bool
  default     = true
}

variable "schedule_expression" {
  description = "When the nightly run fires, in UTC."
  type        = string
  default     = "cron(30 2 * * ? *)"
}

variable "schedule_source" {
  description = "The source the scheduled run asks for: \"list\" or \"inventory\"."
  type        = string
  default     = "list"

  validation {
    condition     = contains(["list", "inventory"], var.schedule_source)
    error_message = "schedule_source must be \"list\" or \"inventory\"."
  }

  validation {
    # The scheduled payload names no inventory: both come from the environment.
    condition     = var.schedule_source == "list" || (var.primary_inventory != "" && var.replica_inventory != "")
    error_message = "schedule_source \"inventory\" needs primary_inventory and replica_inventory."
  }
}

variable "manage_inventory_notification" {
  description = "Manage the S3 notification of the inventory bucket(s) that starts a run when a report's manifest.checksum lands. It REPLACES the bucket's whole notification configuration."
  type        = bool
  default     = false

  validation {
    # The event names one side's report; the other side's newest comes from the environment.
    condition     = !var.manage_inventory_notification || (var.primary_inventory != "" && var.replica_inventory != "")
    error_message = "manage_inventory_notification needs primary_inventory and replica_inventory."
  }
}
