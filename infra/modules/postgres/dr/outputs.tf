# What dr-restore's configuration consumes is marked with its environment variable.

output "primary_identifier" {
  description = "DR_SOURCE_DB_INSTANCE: the instance the drills restore."
  value       = aws_db_instance.primary.identifier
}

output "primary_arn" {
  value = aws_db_instance.primary.arn
}

output "endpoint" {
  description = "host:port of the primary (the application's DATABASE_URL host)."
  value       = aws_db_instance.primary.endpoint
}

output "address" {
  value = aws_db_instance.primary.address
}

output "port" {
  value = aws_db_instance.primary.port
}

output "db_name" {
  description = "DR_DB_NAME: the database checked on restores."
  value       = aws_db_instance.primary.db_name
}

output "master_username" {
  value = aws_db_instance.primary.username
}

output "master_user_secret_arn" {
  description = "DR_DB_SECRET_ID: the master credentials ({\"username\", \"password\"}); RDS-managed without a replica, module-owned with one."
  value       = local.rds_managed_password ? aws_db_instance.primary.master_user_secret[0].secret_arn : aws_secretsmanager_secret.master[0].arn
}

output "master_user_secret_kms_key_arn" {
  description = "Key of the master secret: a reader needs kms:Decrypt on it (dr-restore's DatabaseCredentialsKey statement)."
  value       = local.kms_key_arn
}

output "kms_key_arn" {
  value = local.kms_key_arn
}

output "subnet_group_name" {
  description = "DR_SUBNET_GROUP: DB subnet group of the primary and of the drill restores."
  value       = aws_db_subnet_group.this.name
}

output "primary_security_group_id" {
  value = aws_security_group.this["primary"].id
}

output "restore_security_group_id" {
  description = "DR_SECURITY_GROUP_IDS: security group of the drill restores (admits restore_allowed_security_group_ids only)."
  value       = aws_security_group.this["restore"].id
}

output "parameter_group_name" {
  description = "Parameter group of the primary (and of a same-region replica)."
  value       = aws_db_parameter_group.primary.name
}

output "restore_parameter_group_name" {
  description = "DR_PARAMETER_GROUP: parameter group of the drill restores (the primary's settings; rds.force_ssl = 0 unless restore_force_ssl)."
  value       = var.restore_force_ssl ? aws_db_parameter_group.primary.name : aws_db_parameter_group.restore[0].name
}

output "restore_instance_class" {
  description = "DR_INSTANCE_CLASS: instance class for the drill restores."
  value       = coalesce(var.restore_instance_class, var.instance_class)
}

output "replica_identifier" {
  description = "The standby (DR_FAILOVER_REPLICA when replica_in_primary_region); null without a replica."
  value       = one(aws_db_instance.replica[*].identifier)
}

output "replica_arn" {
  value = one(aws_db_instance.replica[*].arn)
}

output "replica_endpoint" {
  description = "host:port of the standby (the standby DATABASE_URL a failover switches to)."
  value       = one(aws_db_instance.replica[*].endpoint)
}

output "replica_region" {
  value = var.replica_enabled ? local.dr_region : null
}

output "replica_in_primary_region" {
  description = "Whether the replica is in the primary's region, where dr-restore's RDS client can promote it."
  value       = var.replica_enabled && !local.cross_region
}

output "automated_backups_replication_arn" {
  description = "The primary's automated backups in the DR region (restore-db-instance-to-point-in-time --source-db-instance-automated-backups-arn); null when not replicated."
  value       = one(aws_db_instance_automated_backups_replication.dr[*].id)
}

output "monitoring_role_arn" {
  value = aws_iam_role.monitoring.arn
}

output "alarm_names" {
  value = compact([
    aws_cloudwatch_metric_alarm.this["free_storage"].alarm_name,
    aws_cloudwatch_metric_alarm.this["cpu"].alarm_name,
    one(aws_cloudwatch_metric_alarm.replica_lag[*].alarm_name),
  ])
}
