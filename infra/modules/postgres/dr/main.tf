# The playbook's PostgreSQL disaster recovery (docs/db/disaster_recovery.md, docs/dr-restore.md):
# an RDS for PostgreSQL primary set up for point-in-time recovery, what dr-restore's quarterly
# drills restore into (subnet group, security group, parameter group), a read replica as the
# failover standby (same region or aws.dr's), automated backups replicated to the DR region,
# and the alarms that say the RPO is at risk. Every resource is named after var.identifier.
#
# RPO: RDS archives the WAL to S3 every 5 minutes, so LatestRestorableTime trails the present
# by up to 5 minutes: that is the 5-minute RPO of a point-in-time restore (dr-restore measures
# it each quarter). The replica streams the WAL continuously: its RPO is its ReplicaLag
# (alarmed below at replica_lag_alarm_seconds).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

data "aws_region" "dr" {
  provider = aws.dr
}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  dr_region  = data.aws_region.dr.name
  # aws.dr may be the primary's region: then the replica lives in the primary's VPC, uses its
  # groups and key, and nothing is replicated across regions.
  cross_region = local.region != local.dr_region

  family             = "postgres${split(".", var.engine_version)[0]}"
  replica_identifier = "${var.identifier}-replica"
  log_types          = ["postgresql", "upgrade"]
  port               = 5432

  # RDS cannot create a read replica of an instance whose master password it manages in
  # Secrets Manager (RDS user guide, "Limitations for Secrets Manager integration"): with a
  # replica the module owns the secret and writes the password with write-only arguments.
  rds_managed_password = !var.replica_enabled

  # null or "" creates the key ("" too because checkov renders a null variable as "": written
  # this way, its checks see the keys instead of skipping them as count = 0).
  create_kms_key         = var.kms_key_arn == null ? true : var.kms_key_arn == ""
  create_replica_kms_key = var.replica_kms_key_arn == null ? true : var.replica_kms_key_arn == ""
  kms_key_arn            = local.create_kms_key ? aws_kms_key.primary[0].arn : var.kms_key_arn
  # A cross-region replica (and the replicated backups, and the secret's replica) must be
  # encrypted with a key of their own region.
  replica_kms_key_arn = !local.cross_region ? local.kms_key_arn : (local.create_replica_kms_key ? one(aws_kms_key.dr[*].arn) : var.replica_kms_key_arn)

  # One set of settings for the primary, the replica and the drill restores, so a restore
  # behaves like the database it stands in for; all are dynamic parameters (no reboot).
  # rds.force_ssl is spelled out in each group: 1 (clients must use TLS), except 0 in the
  # drill restores' group.
  parameters = {
    # DDL (schema changes, grants) is the audit trail an incident review needs; "all" would
    # log every read and swamp the log.
    "log_statement"              = "ddl"
    "log_min_duration_statement" = tostring(var.log_min_duration_ms)
    "log_connections"            = "1"
    "log_disconnections"         = "1"
    # Lock waits longer than deadlock_timeout (1 s) and temp files over 10 MB: the usual
    # causes of a slow primary.
    "log_lock_waits" = "1"
    "log_temp_files" = "10240"
    # Autovacuum runs over 10 s: bloat and wraparound trouble show here first.
    "log_autovacuum_min_duration" = "10000"
  }
}

# ---- Encryption --------------------------------------------------------------------------

# One key for the database's data at rest in the primary's region: storage (and so the
# automated backups and snapshots), Performance Insights, the master secret, the exported logs.
resource "aws_kms_key" "primary" {
  count = local.create_kms_key ? 1 : 0

  description             = "PostgreSQL ${var.identifier}: storage, backups, Performance Insights, master secret, logs"
  enable_key_rotation     = true
  is_enabled              = true
  deletion_window_in_days = 30 # the backups are unreadable without it: the longest window
  policy                  = jsonencode(local.key_policy[local.region])
  tags                    = var.tags
}

resource "aws_kms_alias" "primary" {
  count = length(aws_kms_key.primary)

  name          = "alias/${var.identifier}"
  target_key_id = aws_kms_key.primary[0].key_id
}

locals {
  # The account administers the key through IAM (the default key policy); CloudWatch Logs may
  # use it only for this database's log groups (primary and replica).
  key_policy = { for r in distinct([local.region, local.dr_region]) : r => {
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "RdsLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${r}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${r}:${local.account_id}:log-group:/aws/rds/instance/${var.identifier}*"
          }
        }
      },
    ]
  } }
}

# ---- Network -----------------------------------------------------------------------------

# Shared by the primary and dr-restore's drill restores (DR_SUBNET_GROUP): a drill restores
# into the same private subnets the primary lives in, never into the default subnet group.
resource "aws_db_subnet_group" "this" {
  name        = var.identifier
  description = "PostgreSQL ${var.identifier}: the primary and its drill restores"
  subnet_ids  = var.subnet_ids
  tags        = var.tags
}

locals {
  # The security groups of the primary's region, one resource block (aws_security_group.this);
  # each is named <identifier>-<key>. The cross-region replica's group is in aws.dr's region
  # (replica.tf): a block has one provider, so it stays a block of its own. Literals only (no
  # var.): checkov expands a for_each it can evaluate, and then checks each group on its own.
  security_groups = {
    # The primary (and a same-region replica): the application only.
    primary = {
      description = "the primary (and a same-region replica), from the application only"
    }
    # What dr-restore verifies (DR_SECURITY_GROUP_IDS): the drill restores, and the same-region
    # standby once a rehearsal promotes it. Only the function (and whoever the caller adds, e.g.
    # a bastion to look at a kept restore) may connect: a restore holds production data.
    restore = {
      description = "drill restores and the promoted standby, from dr-restore only"
    }
  }
}

resource "aws_security_group" "this" {
  # The skip is for the restore group (the primary's is attached to the primary); a skip
  # comment covers every instance of the block.
  #checkov:skip=CKV2_AWS_5:Attached at run time: dr-restore names it in RestoreDBInstanceToPointInTime (DR_SECURITY_GROUP_IDS); with a same-region replica it is attached to the replica too.
  for_each = local.security_groups

  name        = "${var.identifier}-${each.key}"
  description = "PostgreSQL ${var.identifier}: ${each.value.description}"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.identifier}-${each.key}" })
  # No egress rule: RDS answers connections (stateful) and initiates none.
}

# The ingress rules stay one block per group and source kind: their instance keys are the
# callers' security group ids and CIDR blocks, which a moved block cannot name (moved.tf), so
# merging them would replace (destroy, then create) every rule of the production database.
resource "aws_vpc_security_group_ingress_rule" "primary_from_sg" {
  for_each = toset(var.allowed_security_group_ids)

  security_group_id            = aws_security_group.this["primary"].id
  description                  = "PostgreSQL from ${each.value}"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
}

resource "aws_vpc_security_group_ingress_rule" "primary_from_cidr" {
  for_each = toset(var.allowed_cidr_blocks)

  security_group_id = aws_security_group.this["primary"].id
  description       = "PostgreSQL from ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = local.port
  to_port           = local.port
}

resource "aws_vpc_security_group_ingress_rule" "restore_from_sg" {
  for_each = toset(var.restore_allowed_security_group_ids)

  security_group_id            = aws_security_group.this["restore"].id
  description                  = "PostgreSQL from ${each.value} (dr-restore checks)"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
}

resource "aws_vpc_security_group_ingress_rule" "restore_from_cidr" {
  for_each = toset(var.restore_allowed_cidr_blocks)

  security_group_id = aws_security_group.this["restore"].id
  description       = "PostgreSQL from ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = local.port
  to_port           = local.port
}

# ---- Parameter groups --------------------------------------------------------------------

# Two blocks, not one for_each over a map like the security groups: the drill group exists only
# without restore_force_ssl, and checkov (tools/iac-check.sh) cannot expand a for_each whose
# entries depend on a variable. It would then not connect the primary to its group: the
# rds.force_ssl = 1 check (CKV2_AWS_69) would pass without looking at the group, and the
# query-logging one (CKV2_AWS_30) would fail.

# name_prefix + create_before_destroy: a major version upgrade needs a group of the new family
# before the instance can switch to it.
resource "aws_db_parameter_group" "primary" {
  name_prefix = "${var.identifier}-${local.family}-"
  family      = local.family
  description = "PostgreSQL ${var.identifier}: primary and replica (TLS required, audit logging)"
  tags        = var.tags

  # Spelled out (not in the dynamic block) so TLS-required is visible at a glance.
  parameter {
    name         = "rds.force_ssl"
    value        = "1"
    apply_method = "immediate"
  }

  dynamic "parameter" {
    for_each = local.parameters
    content {
      name         = parameter.key
      value        = parameter.value
      apply_method = "immediate"
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

# The drill restores' group (DR_PARAMETER_GROUP): the primary's settings with rds.force_ssl = 0,
# because dr-restore's check connects without TLS (tokio-postgres NoTls; docs/dr-restore.md,
# Known gaps). A restore is reachable from the restore security group only. Once the check
# speaks TLS, set restore_force_ssl = true and the restores use the primary's group.
resource "aws_db_parameter_group" "restore" {
  count = var.restore_force_ssl ? 0 : 1

  name_prefix = "${var.identifier}-restore-${local.family}-"
  family      = local.family
  description = "PostgreSQL ${var.identifier}: drill restores (primary settings, TLS optional for dr-restore's check)"
  tags        = var.tags

  parameter {
    name         = "rds.force_ssl"
    value        = "0"
    apply_method = "immediate"
  }

  dynamic "parameter" {
    for_each = local.parameters
    content {
      name         = parameter.key
      value        = parameter.value
      apply_method = "immediate"
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

# ---- Enhanced Monitoring ---------------------------------------------------------------------

data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# IAM is global: the same role serves the replica in another region.
resource "aws_iam_role" "monitoring" {
  name               = "${var.identifier}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# ---- Master credentials -------------------------------------------------------------------

# Only with a replica (see local.rds_managed_password). The password is generated by Secrets
# Manager during the apply, written to the instance and to this secret through write-only
# arguments, and never stored in the state or the plan; no variable ever holds it. Bump
# master_password_version to change it (both are rewritten in the same apply).
resource "aws_secretsmanager_secret" "master" {
  #checkov:skip=CKV2_AWS_57:Secrets Manager rotation needs a rotation Lambda inside the VPC; rotate by bumping master_password_version. A rotated password would also break point-in-time drills to a time before the rotation (the restore keeps the old password).
  count = local.rds_managed_password ? 0 : 1

  name        = "postgres/${var.identifier}/master"
  description = "Master user of PostgreSQL ${var.identifier} ({\"username\", \"password\"}, as RDS writes its own): dr-restore's DR_DB_SECRET_ID by default"
  kms_key_id  = local.kms_key_arn
  tags        = var.tags

  # The standby's region can read it after a regional failover.
  dynamic "replica" {
    for_each = local.cross_region ? [local.dr_region] : []
    content {
      region     = replica.value
      kms_key_id = local.replica_kms_key_arn
    }
  }
}

ephemeral "aws_secretsmanager_random_password" "master" {
  count = local.rds_managed_password ? 0 : 1

  password_length = 40
  # RDS refuses / " @ and spaces in passwords; letters and digits are 238 bits at 40.
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret_version" "master" {
  count = local.rds_managed_password ? 0 : 1

  secret_id = aws_secretsmanager_secret.master[0].id
  secret_string_wo = jsonencode({
    engine   = "postgres"
    username = var.master_username
    password = ephemeral.aws_secretsmanager_random_password.master[0].random_password
  })
  secret_string_wo_version = var.master_password_version
}

# ---- The primary ------------------------------------------------------------------------------

# Created before the instance so the exported logs get this retention and key instead of a
# group RDS would create without either.
resource "aws_cloudwatch_log_group" "primary" {
  for_each = toset(local.log_types)

  name              = "/aws/rds/instance/${var.identifier}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = var.tags
}

resource "aws_db_instance" "primary" {
  identifier     = var.identifier
  engine         = "postgres"
  engine_version = var.engine_version
  instance_class = var.instance_class
  db_name        = var.db_name
  port           = local.port

  username = var.master_username
  # Without a replica RDS generates the password, keeps it in Secrets Manager (encrypted with
  # the module's key) and rotates it; with one, see aws_secretsmanager_secret.master.
  manage_master_user_password   = local.rds_managed_password ? true : null
  master_user_secret_kms_key_id = local.rds_managed_password ? local.kms_key_arn : null
  password_wo                   = local.rds_managed_password ? null : ephemeral.aws_secretsmanager_random_password.master[0].random_password
  password_wo_version           = local.rds_managed_password ? null : var.master_password_version
  # Applications may authenticate with IAM tokens instead of the master password.
  iam_database_authentication_enabled = true

  storage_type          = "gp3"
  allocated_storage     = var.allocated_storage_gib
  max_allocated_storage = var.max_allocated_storage_gib
  storage_encrypted     = true
  kms_key_id            = local.kms_key_arn

  multi_az               = var.multi_az
  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.this["primary"].id]
  publicly_accessible    = false
  parameter_group_name   = aws_db_parameter_group.primary.name
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  # Point-in-time recovery: automated backups (daily snapshot + WAL every 5 minutes) kept
  # backup_retention_days; a drill can restore to any second of that window.
  backup_retention_period = var.backup_retention_days
  backup_window           = var.backup_window
  copy_tags_to_snapshot   = true
  # Keep the automated backups (for their retention) if the instance is deleted: deleting the
  # database must not also delete the means to restore it.
  delete_automated_backups  = false
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${var.identifier}-final"

  maintenance_window          = var.maintenance_window
  auto_minor_version_upgrade  = true
  allow_major_version_upgrade = false # a major upgrade is a planned change (new parameter group family), not a side effect
  apply_immediately           = false # changes wait for the maintenance window, except when applied by hand

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = local.kms_key_arn
  performance_insights_retention_period = var.performance_insights_retention_days
  monitoring_interval                   = var.monitoring_interval_seconds
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  enabled_cloudwatch_logs_exports       = local.log_types

  tags = merge(var.tags, var.primary_tags)

  depends_on = [aws_cloudwatch_log_group.primary, aws_iam_role_policy_attachment.monitoring]
}
