# The playbook's PostgreSQL and its disaster recovery (modules/postgres/dr): the primary set up
# for point-in-time recovery, the standby replica, the groups dr-restore's drills restore into,
# and the alarms. Off unless postgres_dr_enabled (staging and prod; dev deploys without a
# database). dr-restore (dr_restore.tf) takes its source, subnet/security/parameter groups,
# instance class, credentials and failover replica from here unless its dr_* variables name
# others. docs/iac.md, docs/deploy.md, docs/db/disaster_recovery.md.

module "postgres_dr" {
  count  = var.postgres_dr_enabled ? 1 : 0
  source = "./modules/postgres/dr"

  # aws.postgres_dr: postgres_replica_region, else dr_region, else this region (providers.tf).
  providers = {
    aws    = aws
    aws.dr = aws.postgres_dr
  }

  identifier              = "${var.postgres_identifier}-${var.environment}"
  engine_version          = var.postgres_engine_version
  instance_class          = var.postgres_instance_class
  db_name                 = var.dr_db_name # the database dr-restore checks
  master_username         = var.postgres_master_username
  master_password_version = var.postgres_master_password_version

  allocated_storage_gib     = var.postgres_allocated_storage_gib
  max_allocated_storage_gib = var.postgres_max_allocated_storage_gib
  multi_az                  = var.postgres_multi_az
  deletion_protection       = var.postgres_deletion_protection
  backup_retention_days     = var.postgres_backup_retention_days
  backup_window             = var.postgres_backup_window
  maintenance_window        = var.postgres_maintenance_window
  kms_key_arn               = var.postgres_kms_key_arn

  performance_insights_retention_days = var.postgres_performance_insights_retention_days
  monitoring_interval_seconds         = var.postgres_monitoring_interval_seconds
  log_retention_days                  = var.postgres_log_retention_days

  vpc_id                     = var.postgres_vpc_id
  subnet_ids                 = var.postgres_subnet_ids
  allowed_security_group_ids = var.postgres_allowed_security_group_ids
  allowed_cidr_blocks        = var.postgres_allowed_cidr_blocks

  # The drill restores (and a promoted same-region standby) admit dr-restore's network
  # interfaces: its check connects to them.
  restore_allowed_security_group_ids = distinct(concat(var.dr_lambda_security_group_ids, var.postgres_restore_allowed_security_group_ids))
  restore_allowed_cidr_blocks        = var.postgres_restore_allowed_cidr_blocks
  # null: the primary's class.
  restore_instance_class = var.dr_instance_class

  replica_enabled                    = var.postgres_replica_enabled
  replica_instance_class             = var.postgres_replica_instance_class
  replica_multi_az                   = var.postgres_replica_multi_az
  replica_kms_key_arn                = var.postgres_replica_kms_key_arn
  replica_vpc_id                     = var.postgres_replica_vpc_id
  replica_subnet_ids                 = var.postgres_replica_subnet_ids
  replica_allowed_security_group_ids = var.postgres_replica_allowed_security_group_ids
  replica_allowed_cidr_blocks        = var.postgres_replica_allowed_cidr_blocks
  backup_replication_enabled         = var.postgres_backup_replication_enabled

  # Storage running out pages (the database stops taking writes); the SLO critical topic
  # reaches PagerDuty (slo_alarms.tf).
  alarm_topic_arns         = [var.postgres_alarm_topic_arn != null ? var.postgres_alarm_topic_arn : aws_sns_topic.slo_critical.arn]
  replica_alarm_topic_arns = var.postgres_replica_alarm_topic_arn == null ? [] : [var.postgres_replica_alarm_topic_arn]
  # Lag beyond the RPO dr-restore holds the drills to means a failover now loses more.
  replica_lag_alarm_seconds = var.postgres_replica_lag_alarm_seconds != null ? var.postgres_replica_lag_alarm_seconds : var.dr_rpo_objective_seconds
  free_storage_alarm_gib    = var.postgres_free_storage_alarm_gib
  cpu_alarm_percent         = var.postgres_cpu_alarm_percent

  # The chaos postgres-failover experiment (chaos_runner.tf) selects its target by this tag;
  # the module puts it on the primary only, not on the replica.
  primary_tags = { "chaos-target" = var.chaos_targets.primary_db }
  tags         = { Component = "postgres" }
}
