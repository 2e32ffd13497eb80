# The failover standby (a read replica in aws.dr's region) and, across regions, the replicated
# automated backups. dr-restore's failover rehearsal promotes the replica (DR_FAILOVER_REPLICA)
# when it is in the function's region; a cross-region replica is promoted by hand
# (docs/db/disaster_recovery.md).

# ---- What the replica needs in its own region (cross-region only) ---------------------------

resource "aws_kms_key" "dr" {
  count    = local.cross_region && local.create_replica_kms_key && (var.replica_enabled || var.backup_replication_enabled) ? 1 : 0
  provider = aws.dr

  description             = "PostgreSQL ${var.identifier} in ${local.dr_region}: replica storage, replicated backups, Performance Insights, secret replica, logs"
  enable_key_rotation     = true
  is_enabled              = true
  deletion_window_in_days = 30
  policy                  = jsonencode(local.key_policy[local.dr_region])
  tags                    = var.tags
}

resource "aws_kms_alias" "dr" {
  count    = length(aws_kms_key.dr)
  provider = aws.dr

  name          = "alias/${var.identifier}"
  target_key_id = aws_kms_key.dr[0].key_id
}

resource "aws_db_subnet_group" "dr" {
  count    = local.cross_region && var.replica_enabled ? 1 : 0
  provider = aws.dr

  name        = local.replica_identifier
  description = "PostgreSQL ${var.identifier}: the standby replica in ${local.dr_region}"
  subnet_ids  = var.replica_subnet_ids
  tags        = var.tags

  lifecycle {
    precondition {
      condition     = length(var.replica_subnet_ids) >= 2
      error_message = "A cross-region replica needs replica_subnet_ids: private subnets in at least two AZs of ${local.dr_region}."
    }
  }
}

# A block of its own, not an instance of main.tf's aws_security_group.this: it is in aws.dr's
# region, and a resource block has one provider.
resource "aws_security_group" "replica" {
  count    = local.cross_region && var.replica_enabled ? 1 : 0
  provider = aws.dr

  name        = local.replica_identifier
  description = "PostgreSQL ${var.identifier}: the standby replica in ${local.dr_region}, from the standby application only"
  vpc_id      = var.replica_vpc_id
  tags        = merge(var.tags, { Name = local.replica_identifier })

  lifecycle {
    precondition {
      condition     = var.replica_vpc_id != null
      error_message = "A cross-region replica needs replica_vpc_id (a VPC of ${local.dr_region})."
    }
  }
}

resource "aws_vpc_security_group_ingress_rule" "replica_from_sg" {
  for_each = local.cross_region && var.replica_enabled ? toset(var.replica_allowed_security_group_ids) : toset([])
  provider = aws.dr

  security_group_id            = aws_security_group.replica[0].id
  description                  = "PostgreSQL from ${each.value}"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
}

resource "aws_vpc_security_group_ingress_rule" "replica_from_cidr" {
  for_each = local.cross_region && var.replica_enabled ? toset(var.replica_allowed_cidr_blocks) : toset([])
  provider = aws.dr

  security_group_id = aws_security_group.replica[0].id
  description       = "PostgreSQL from ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = local.port
  to_port           = local.port
}

# Parameter groups are regional: the same settings as the primary's (force_ssl included).
resource "aws_db_parameter_group" "dr" {
  count    = local.cross_region && var.replica_enabled ? 1 : 0
  provider = aws.dr

  name_prefix = "${var.identifier}-${local.family}-"
  family      = local.family
  description = "PostgreSQL ${var.identifier}: the standby replica in ${local.dr_region} (TLS required, audit logging)"
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

# ---- The replica ------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "replica" {
  for_each = var.replica_enabled ? toset(local.log_types) : toset([])
  provider = aws.dr

  name              = "/aws/rds/instance/${local.replica_identifier}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.replica_kms_key_arn
  tags              = var.tags
}

resource "aws_db_instance" "replica" {
  #checkov:skip=CKV_AWS_133:RDS for PostgreSQL read replicas take no automated backups; the primary's are the backups (replicated to this region when cross-region), and a promotion turns them on (docs/db/disaster_recovery.md).
  #checkov:skip=CKV_AWS_157:Multi-AZ on the standby doubles its cost before it is ever used; replica_multi_az = true pays for it up front, otherwise it is made Multi-AZ after promotion.
  count    = var.replica_enabled ? 1 : 0
  provider = aws.dr

  identifier = local.replica_identifier
  # The source's ARN in both cases: across regions RDS needs it, and in the same region the
  # provider refuses an identifier once db_subnet_group_name is set (seen at plan time).
  replicate_source_db = aws_db_instance.primary.arn
  # The standby becomes the primary on failover: it must keep up with the primary's writes
  # now and carry its load then.
  instance_class = coalesce(var.replica_instance_class, var.instance_class)
  port           = local.port
  # Engine, version, database, master user and password come from the source.

  storage_type          = "gp3"
  max_allocated_storage = var.max_allocated_storage_gib
  storage_encrypted     = true
  kms_key_id            = local.replica_kms_key_arn

  multi_az               = var.replica_multi_az
  db_subnet_group_name   = local.cross_region ? aws_db_subnet_group.dr[0].name : aws_db_subnet_group.this.name
  vpc_security_group_ids = local.cross_region ? [aws_security_group.replica[0].id] : [aws_security_group.this["primary"].id, aws_security_group.this["restore"].id]
  publicly_accessible    = false
  parameter_group_name   = local.cross_region ? aws_db_parameter_group.dr[0].name : aws_db_parameter_group.primary.name
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  iam_database_authentication_enabled = true
  copy_tags_to_snapshot               = true
  deletion_protection                 = var.deletion_protection
  # RDS takes no final snapshot of a read replica (the primary's backups hold the data).
  skip_final_snapshot = true

  maintenance_window         = var.maintenance_window
  auto_minor_version_upgrade = true
  apply_immediately          = false

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = local.replica_kms_key_arn
  performance_insights_retention_period = var.performance_insights_retention_days
  monitoring_interval                   = var.monitoring_interval_seconds
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  enabled_cloudwatch_logs_exports       = local.log_types

  # Not primary_tags: a tag-selected chaos experiment must never pick the standby.
  tags = var.tags

  depends_on = [aws_cloudwatch_log_group.replica, aws_iam_role_policy_attachment.monitoring]
}

# ---- Automated backups in the DR region (cross-region only) ---------------------------------

# Snapshots and WAL copied continuously to aws.dr's region: a point-in-time restore there
# (restore-db-instance-to-point-in-time --source-db-instance-automated-backups-arn) even when
# the primary's region, and the replica with it, are gone; its lag behind the primary is
# minutes, like the primary's own WAL archive.
resource "aws_db_instance_automated_backups_replication" "dr" {
  count    = local.cross_region && var.backup_replication_enabled ? 1 : 0
  provider = aws.dr

  source_db_instance_arn = aws_db_instance.primary.arn
  kms_key_id             = local.replica_kms_key_arn
  retention_period       = var.backup_retention_days
}
