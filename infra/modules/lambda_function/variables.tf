variable "function_name" {
  description = "Lambda function name; also names the role, the log group and the failure queue."
  type        = string

  validation {
    # The role is named after the function and IAM role names stop at 64 characters;
    # "-failures" is appended for the queue (SQS: 80).
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.function_name))
    error_message = "function_name must be 1-64 letters, digits, '-' or '_'."
  }
}

variable "description" {
  description = "Lambda function description."
  type        = string
  default     = ""
}

variable "zip_path" {
  description = "The cargo-lambda zip, target/lambda/<name>/bootstrap.zip."
  type        = string

  validation {
    condition     = fileexists(var.zip_path)
    error_message = "The deployment zip does not exist: build it first with `make package` (cargo lambda build --release --arm64 --output-format zip)."
  }
}

variable "memory_mb" {
  description = "Memory in MB; Lambda's CPU share grows with it."
  type        = number
  default     = 256
}

variable "timeout_s" {
  description = "Timeout in seconds (at most 900)."
  type        = number
  default     = 60

  validation {
    condition     = var.timeout_s >= 1 && var.timeout_s <= 900
    error_message = "timeout_s must be between 1 and 900 seconds."
  }
}

variable "ephemeral_storage_mb" {
  description = "Size of /tmp in MB (512-10240)."
  type        = number
  default     = 512

  validation {
    condition     = var.ephemeral_storage_mb >= 512 && var.ephemeral_storage_mb <= 10240
    error_message = "ephemeral_storage_mb must be between 512 and 10240."
  }
}

variable "environment" {
  description = "Environment variables of the function."
  type        = map(string)
  default     = {}
}

variable "policy_json" {
  description = "IAM policy (JSON) for what the function's code calls. Logs, X-Ray and the failure queue are added by the module."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of /aws/lambda/<function_name>."
  type        = number
  default     = 30
}

variable "maximum_retry_attempts" {
  description = "Retries of a failed asynchronous invocation (0-2) before it goes to the failure queue."
  type        = number
  default     = 2

  validation {
    condition     = var.maximum_retry_attempts >= 0 && var.maximum_retry_attempts <= 2
    error_message = "maximum_retry_attempts must be 0, 1 or 2."
  }
}

variable "maximum_event_age_seconds" {
  description = "How long an asynchronous event may wait in Lambda's queue (60-21600) before it goes to the failure queue."
  type        = number
  default     = 21600
}

variable "allow_recursive_loop" {
  description = "Let the function invoke itself more than 16 times in one chain (Lambda's recursive loop detection stops such chains by default). Only for functions that continue long work by invoking themselves."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}

# ---- Optional, added later: every one has a default that keeps earlier callers unchanged ----

variable "failure_topic_arn" {
  description = "SNS topic for the on-failure destination of asynchronous invocations instead of the module's SQS queue (the queue still exists: Scheduler and EventBridge dead-letter there). null: the queue."
  type        = string
  default     = null
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions; -1 leaves the function in the account's unreserved pool, 0 stops it."
  type        = number
  default     = -1
}

variable "vpc_subnet_ids" {
  description = "Subnets to run in (for functions that reach a database or Redis); [] runs outside any VPC."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups of the function's network interfaces when vpc_subnet_ids is set."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.vpc_subnet_ids) == 0 || length(var.vpc_security_group_ids) > 0
    error_message = "vpc_security_group_ids must be set together with vpc_subnet_ids."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the environment variables; null uses Lambda's AWS managed key."
  type        = string
  default     = null
}

variable "log_kms_key_arn" {
  description = "Customer-managed KMS key for the log group (its key policy must allow logs.<region>.amazonaws.com); null uses CloudWatch Logs' default encryption."
  type        = string
  default     = null
}

variable "code_signing_config_arn" {
  description = "Lambda code signing configuration to enforce; null deploys unsigned zips."
  type        = string
  default     = null
}
