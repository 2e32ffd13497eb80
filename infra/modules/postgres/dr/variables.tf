# ---- The primary -------------------------------------------------------------------------

variable "identifier" {
  description = "DB instance identifier of the primary; the replica is <identifier>-replica and every other resource is named after it."
  type        = string

  validation {
    # RDS: 1-63 lowercase letters, digits, hyphens, starting with a letter; "-replica" and
    # "-final-<n>" are appended, so leave room.
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.identifier)) && !strcontains(var.identifier, "--") && !endswith(var.identifier, "-")
    error_message = "identifier must be 1-40 lowercase letters, digits and single hyphens, starting with a letter."
  }
}

variable "engine_version" {
  description = "PostgreSQL version: a major (\"16\", RDS picks the newest minor and auto_minor_version_upgrade keeps it current) or major.minor. The parameter group family follows the major."
  type        = string
  default     = "16"

  validation {
    condition     = can(regex("^1[3-9](\\.[0-9]+)?$", var.engine_version))
    error_message = "engine_version must be a PostgreSQL major 13-19, optionally with a minor (\"16\" or \"16.4\")."
  }
}

variable "instance_class" {
  description = "Instance class of the primary (and of the replica unless replica_instance_class is set). Performance Insights needs db.t4g.medium or larger."
  type        = string

  validation {
    condition     = startswith(var.instance_class, "db.")
    error_message = "instance_class must be an instance class like db.r6g.large."
  }
}

variable "allocated_storage_gib" {
  description = "Initial gp3 storage in GiB."
  type        = number
  default     = 50

  validation {
    condition     = var.allocated_storage_gib >= 20
    error_message = "allocated_storage_gib must be at least 20 (gp3)."
  }
}

variable "max_allocated_storage_gib" {
  description = "Storage autoscaling ceiling in GiB (RDS grows the volume when free space runs low); must exceed allocated_storage_gib."
  type        = number
  default     = 200

  validation {
    condition     = var.max_allocated_storage_gib >= var.allocated_storage_gib
    error_message = "max_allocated_storage_gib must be at least allocated_storage_gib."
  }
}

variable "db_name" {
  description = "Database created in the primary (the one dr-restore checks, DR_DB_NAME)."
  type        = string
  default     = "app"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must be a lowercase PostgreSQL identifier."
  }
}

variable "master_username" {
  description = "Master user name (its password is never an input: see master_password_version)."
  type        = string
  default     = "dbadmin"

  validation {
    # RDS reserves rdsadmin and the rds_* roles.
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.master_username)) && !startswith(var.master_username, "rds")
    error_message = "master_username must be a lowercase identifier not starting with \"rds\"."
  }
}

variable "master_password_version" {
  description = "Only with replica_enabled (the module then owns the secret): bump to generate a new master password and write it to the instance and the secret in the same apply."
  type        = number
  default     = 1
}

variable "multi_az" {
  description = "Multi-AZ primary: a synchronous standby in another AZ, promoted by RDS in 1-2 minutes without data loss (the chaos postgres-failover experiment rehearses it)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Deletion protection on the primary and the replica (Terraform cannot destroy them until it is turned off)."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Automated backup retention in days: the point-in-time restore window of dr-restore's drills (and of the DR-region copy when it is replicated)."
  type        = number
  default     = 14

  validation {
    # 7: a drill may restore to any point of the last week, and a weekly incident review
    # can still go back to before the incident. 35: the RDS maximum.
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35."
  }
}

variable "backup_window" {
  description = "Daily snapshot window (UTC, hh:mm-hh:mm, at least 30 minutes); must not overlap maintenance_window."
  type        = string
  default     = "03:00-03:30"
}

variable "maintenance_window" {
  description = "Weekly maintenance window (UTC, ddd:hh:mm-ddd:hh:mm): minor version upgrades and pending changes are applied here."
  type        = string
  default     = "sun:04:00-sun:05:00"
}

variable "performance_insights_retention_days" {
  description = "Performance Insights retention: 7 (free) or a multiple of 31 up to 731."
  type        = number
  default     = 7
}

variable "monitoring_interval_seconds" {
  description = "Enhanced Monitoring interval (1, 5, 10, 15, 30 or 60 seconds)."
  type        = number
  default     = 60

  validation {
    condition     = contains([1, 5, 10, 15, 30, 60], var.monitoring_interval_seconds)
    error_message = "monitoring_interval_seconds must be 1, 5, 10, 15, 30 or 60 (0 would turn Enhanced Monitoring off)."
  }
}

variable "log_min_duration_ms" {
  description = "log_min_duration_statement: statements slower than this are logged with their duration."
  type        = number
  default     = 1000
}

variable "log_retention_days" {
  description = "Retention of the exported PostgreSQL logs (/aws/rds/instance/<id>/postgresql and /upgrade)."
  type        = number
  default     = 365
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key of the primary region (storage, Performance Insights, the master secret, the exported logs); null (or \"\") creates one. Its key policy must let logs.<region>.amazonaws.com use it."
  type        = string
  default     = null
}

variable "tags" {
  description = "Extra tags on every resource (the provider's default_tags still apply)."
  type        = map(string)
  default     = {}
}

variable "primary_tags" {
  description = "Tags on the primary instance only, not on the replica (e.g. the chaos-target tag the FIS failover experiment selects its target by: the standby must never be picked)."
  type        = map(string)
  default     = {}
}

# ---- Network -----------------------------------------------------------------------------

variable "vpc_id" {
  description = "VPC of the primary, its security groups and the drill restores."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (two AZs at least) of the DB subnet group shared by the primary and the drill restores."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids needs subnets in at least two AZs (a DB subnet group and Multi-AZ require it)."
  }
}

variable "allowed_security_group_ids" {
  description = "Security groups admitted to PostgreSQL (5432) on the primary (the application)."
  type        = list(string)
  default     = []
}

variable "allowed_cidr_blocks" {
  description = "IPv4 CIDR blocks admitted to PostgreSQL on the primary (e.g. a VPN range), /8 or narrower: never 0.0.0.0/0."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.allowed_cidr_blocks : can(cidrnetmask(c)) && try(tonumber(split("/", c)[1]) >= 8, false)])
    error_message = "allowed_cidr_blocks must be IPv4 CIDR blocks of /8 or narrower (never 0.0.0.0/0): the database is never open to the internet."
  }
}

variable "restore_allowed_security_group_ids" {
  description = "Security groups admitted to the databases dr-restore verifies (drill restores, and the promoted same-region standby): the dr-restore function's, plus e.g. a bastion to investigate a kept restore."
  type        = list(string)
  default     = []
}

variable "restore_allowed_cidr_blocks" {
  description = "CIDR blocks admitted to the drill restores; never 0.0.0.0/0."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.restore_allowed_cidr_blocks : can(cidrnetmask(c)) && try(tonumber(split("/", c)[1]) >= 8, false)])
    error_message = "restore_allowed_cidr_blocks must be IPv4 CIDR blocks of /8 or narrower (never 0.0.0.0/0)."
  }
}

# ---- Drill restores (dr-restore) -------------------------------------------------------------

variable "restore_instance_class" {
  description = "Instance class the drill restores are meant to use (exported for DR_INSTANCE_CLASS); null: the primary's, so a drill measures the restore time a real recovery would see."
  type        = string
  default     = null
}

variable "restore_force_ssl" {
  description = "rds.force_ssl of the drill restores. false (default): the restores get a parameter group of their own, identical to the primary's but with rds.force_ssl = 0, because dr-restore's check connects without TLS (docs/dr-restore.md, Known gaps). true: the restores use the primary's group."
  type        = bool
  default     = false
}

# ---- Standby replica and DR-region backups -----------------------------------------------------

variable "replica_enabled" {
  description = "A read replica in aws.dr's region (the same region when the caller passes the primary's provider), the failover standby. RDS cannot replicate a primary whose master password it manages in Secrets Manager: with a replica the module owns the secret (write-only password)."
  type        = bool
  default     = true
}

variable "replica_instance_class" {
  description = "Instance class of the replica; null: the primary's (it must absorb the primary's write rate, and it becomes the primary on failover)."
  type        = string
  default     = null
}

variable "replica_multi_az" {
  description = "Multi-AZ replica: pays for a second standby up front so the promoted database is Multi-AZ from its first minute; false: make it Multi-AZ after promotion."
  type        = bool
  default     = false
}

variable "replica_kms_key_arn" {
  description = "Cross-region replica: customer-managed KMS key in the replica's region (storage, Performance Insights, replicated backups, the secret's replica, the replica's logs); null (or \"\") creates one. Ignored for a same-region replica (it uses kms_key_arn's key)."
  type        = string
  default     = null
}

variable "replica_vpc_id" {
  description = "Cross-region replica: VPC of the replica in its region (ignored for a same-region replica, which uses vpc_id)."
  type        = string
  default     = null
}

variable "replica_subnet_ids" {
  description = "Cross-region replica: private subnets (two AZs at least) of the replica's DB subnet group."
  type        = list(string)
  default     = []
}

variable "replica_allowed_security_group_ids" {
  description = "Cross-region replica: security groups of its region admitted to PostgreSQL (the standby application)."
  type        = list(string)
  default     = []
}

variable "replica_allowed_cidr_blocks" {
  description = "Cross-region replica: CIDR blocks admitted to PostgreSQL; never 0.0.0.0/0."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.replica_allowed_cidr_blocks : can(cidrnetmask(c)) && try(tonumber(split("/", c)[1]) >= 8, false)])
    error_message = "replica_allowed_cidr_blocks must be IPv4 CIDR blocks of /8 or narrower (never 0.0.0.0/0)."
  }
}

variable "backup_replication_enabled" {
  description = "Cross-region only: replicate the primary's automated backups (snapshots and transaction logs) to aws.dr's region, so a point-in-time restore is possible there even if the primary's region is lost."
  type        = bool
  default     = true
}

# ---- Alarms ------------------------------------------------------------------------------------

variable "alarm_topic_arns" {
  description = "SNS topics (primary's region) notified by the primary's alarms and, for a same-region replica, the replica-lag alarm."
  type        = list(string)
  default     = []
}

variable "replica_alarm_topic_arns" {
  description = "Cross-region replica: SNS topics in the replica's region for its lag alarm (CloudWatch notifies only topics of the alarm's region); empty: alarm_topic_arns for a same-region replica."
  type        = list(string)
  default     = []
}

variable "replica_lag_alarm_seconds" {
  description = "ReplicaLag above this for 5 minutes alarms: a failover now would lose more than the RPO objective."
  type        = number
  default     = 300
}

variable "free_storage_alarm_gib" {
  description = "FreeStorageSpace below this alarms (autoscaling has hit max_allocated_storage_gib, or cannot keep up)."
  type        = number
  default     = 10
}

variable "cpu_alarm_percent" {
  description = "CPUUtilization above this for 15 minutes alarms."
  type        = number
  default     = 80
}
