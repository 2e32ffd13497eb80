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

# ---- PostgreSQL DR (postgres_dr.tf, modules/postgres/dr; docs/iac.md) ------------------------

variable "postgres_dr_enabled" {
  description = "Create the playbook's PostgreSQL (primary, standby replica, drill restore groups, alarms) with modules/postgres/dr; dr-restore then takes its source, groups, secret and replica from it. Off in dev: the suite deploys without a database there."
  type        = bool
  default     = false
}

variable "postgres_identifier" {
  description = "The primary is <postgres_identifier>-<environment> (the replica <...>-replica)."
  type        = string
  default     = "app-db"
}

variable "postgres_engine_version" {
  description = "PostgreSQL major (\"16\": RDS applies minor versions automatically) or major.minor."
  type        = string
  default     = "16"
}

variable "postgres_instance_class" {
  description = "Instance class of the primary (and of the replica unless postgres_replica_instance_class)."
  type        = string
  default     = "db.t4g.medium"
}

variable "postgres_allocated_storage_gib" {
  description = "Initial gp3 storage in GiB."
  type        = number
  default     = 50
}

variable "postgres_max_allocated_storage_gib" {
  description = "Storage autoscaling ceiling in GiB."
  type        = number
  default     = 200
}

variable "postgres_multi_az" {
  description = "Multi-AZ primary (synchronous standby in another AZ; the chaos postgres-failover experiment needs it)."
  type        = bool
  default     = true
}

variable "postgres_deletion_protection" {
  description = "Deletion protection on the primary and the replica."
  type        = bool
  default     = true
}

variable "postgres_backup_retention_days" {
  description = "Automated backup retention, 7-35 days: the window dr-restore's point-in-time drills can restore into."
  type        = number
  default     = 14

  validation {
    condition     = var.postgres_backup_retention_days >= 7 && var.postgres_backup_retention_days <= 35
    error_message = "postgres_backup_retention_days must be between 7 and 35."
  }
}

variable "postgres_backup_window" {
  description = "Daily backup window (UTC); must not overlap postgres_maintenance_window."
  type        = string
  default     = "03:00-03:30"
}

variable "postgres_maintenance_window" {
  description = "Weekly maintenance window (UTC)."
  type        = string
  default     = "sun:04:00-sun:05:00"
}

variable "postgres_master_username" {
  description = "Master user name. Its password is never a variable: RDS manages it in Secrets Manager, or (with a replica) the module generates it and writes it with write-only arguments."
  type        = string
  default     = "dbadmin"
}

variable "postgres_master_password_version" {
  description = "With a replica: bump to generate a new master password (written to the instance and its secret in one apply). Drills restoring to a time before the change need the old password."
  type        = number
  default     = 1
}

variable "postgres_vpc_id" {
  description = "VPC of the primary and of the drill restores."
  type        = string
  default     = null

  validation {
    condition     = !var.postgres_dr_enabled || can(regex("^vpc-[0-9a-f]{8,17}$", var.postgres_vpc_id))
    error_message = "postgres_dr_enabled needs postgres_vpc_id, a VPC id (vpc-...)."
  }
}

variable "postgres_subnet_ids" {
  description = "Private subnets (two AZs at least) of the DB subnet group shared by the primary and the drill restores."
  type        = list(string)
  default     = []

  validation {
    condition     = !var.postgres_dr_enabled || (length(var.postgres_subnet_ids) >= 2 && alltrue([for s in var.postgres_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))]))
    error_message = "postgres_dr_enabled needs postgres_subnet_ids: at least two subnet ids (subnet-...) in different AZs."
  }
}

variable "postgres_allowed_security_group_ids" {
  description = "Security groups (the application's) admitted to PostgreSQL on the primary."
  type        = list(string)
  default     = []
}

variable "postgres_allowed_cidr_blocks" {
  description = "IPv4 CIDR blocks admitted to PostgreSQL on the primary (e.g. a VPN), /8 or narrower."
  type        = list(string)
  default     = []
}

variable "postgres_restore_allowed_security_group_ids" {
  description = "Security groups admitted to drill restores besides dr-restore's own (dr_lambda_security_group_ids, always admitted), e.g. a bastion to inspect a kept restore."
  type        = list(string)
  default     = []
}

variable "postgres_restore_allowed_cidr_blocks" {
  description = "IPv4 CIDR blocks admitted to drill restores, /8 or narrower."
  type        = list(string)
  default     = []
}

variable "postgres_replica_enabled" {
  description = "A read replica as the failover standby (in postgres_replica_region)."
  type        = bool
  default     = true
}

variable "postgres_replica_region" {
  description = "Region of the standby replica; null: dr_region, else the deployment region. Only a replica in the deployment region can be promoted by dr-restore's failover rehearsal (its RDS client is regional)."
  type        = string
  default     = null
}

variable "postgres_replica_instance_class" {
  description = "Instance class of the replica; null: the primary's."
  type        = string
  default     = null
}

variable "postgres_replica_multi_az" {
  description = "Multi-AZ replica (paid up front) instead of converting it after promotion."
  type        = bool
  default     = false
}

variable "postgres_replica_vpc_id" {
  description = "Cross-region replica only: its VPC in postgres_replica_region."
  type        = string
  default     = null
}

variable "postgres_replica_subnet_ids" {
  description = "Cross-region replica only: private subnets (two AZs) in postgres_replica_region."
  type        = list(string)
  default     = []
}

variable "postgres_replica_allowed_security_group_ids" {
  description = "Cross-region replica only: security groups of its region admitted to PostgreSQL."
  type        = list(string)
  default     = []
}

variable "postgres_replica_allowed_cidr_blocks" {
  description = "Cross-region replica only: IPv4 CIDR blocks admitted to PostgreSQL."
  type        = list(string)
  default     = []
}

variable "postgres_backup_replication_enabled" {
  description = "Cross-region only: replicate the automated backups to postgres_replica_region (point-in-time restore there if the primary's region is lost)."
  type        = bool
  default     = true
}

variable "postgres_kms_key_arn" {
  description = "Existing KMS key (ARN) for the database in the deployment region; null: the module creates one."
  type        = string
  default     = null
}

variable "postgres_replica_kms_key_arn" {
  description = "Cross-region: existing KMS key (ARN) in postgres_replica_region; null: the module creates one."
  type        = string
  default     = null
}

variable "postgres_performance_insights_retention_days" {
  description = "Performance Insights retention (7 is free)."
  type        = number
  default     = 7
}

variable "postgres_monitoring_interval_seconds" {
  description = "Enhanced Monitoring interval."
  type        = number
  default     = 60
}

variable "postgres_log_retention_days" {
  description = "Retention of the exported PostgreSQL logs (DDL, connections, slow statements): a year, the audit trail an incident review or an auditor asks for."
  type        = number
  default     = 365
}

variable "postgres_alarm_topic_arn" {
  description = "SNS topic of the database alarms (free storage, CPU, and a same-region replica's lag); null: the SLO critical topic (slo-critical-<env>, PagerDuty)."
  type        = string
  default     = null
}

variable "postgres_replica_alarm_topic_arn" {
  description = "Cross-region replica: SNS topic in postgres_replica_region for its lag alarm (CloudWatch cannot notify another region's topic)."
  type        = string
  default     = null
}

variable "postgres_replica_lag_alarm_seconds" {
  description = "ReplicaLag alarm threshold; null: dr_rpo_objective_seconds (the RPO the drills measure)."
  type        = number
  default     = null
}

variable "postgres_free_storage_alarm_gib" {
  description = "FreeStorageSpace alarm threshold in GiB."
  type        = number
  default     = 10
}

variable "postgres_cpu_alarm_percent" {
  description = "CPUUtilization alarm threshold (15 minutes)."
  type        = number
  default     = 80
}
