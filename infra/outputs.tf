output "manifest_diff_function_name" {
  value = module.manifest_diff.function_name
}

output "manifest_diff_function_arn" {
  value = module.manifest_diff.function_arn
}

output "manifest_diff_role_arn" {
  value = module.manifest_diff.role_arn
}

output "manifest_diff_log_group" {
  value = module.manifest_diff.log_group_name
}

output "manifest_diff_schedule_name" {
  value = aws_scheduler_schedule.manifest_diff_nightly.name
}

output "manifest_diff_dlq_arn" {
  description = "Failed asynchronous invocations (schedule, S3 event, continuation) and undeliverable schedules."
  value       = module.manifest_diff.dlq_arn
}

output "manifest_diff_dlq_url" {
  value = module.manifest_diff.dlq_url
}

output "manifest_diff_report_location" {
  value = "s3://${var.report_bucket}/${var.report_prefix}manifest-diff/"
}

output "manifest_diff_inventory_notification_buckets" {
  value = sort(tolist(local.md_notification_buckets))
}

# ---- PostgreSQL DR (postgres_dr.tf); null when postgres_dr_enabled = false ------------------

output "postgres_endpoint" {
  description = "host:port of the primary."
  value       = one(module.postgres_dr[*].endpoint)
}

output "postgres_primary_identifier" {
  description = "The primary (dr-restore's DR_SOURCE_DB_INSTANCE)."
  value       = one(module.postgres_dr[*].primary_identifier)
}

output "postgres_replica_identifier" {
  description = "The standby replica (dr-restore's DR_FAILOVER_REPLICA when it is in this region)."
  value       = one(module.postgres_dr[*].replica_identifier)
}

output "postgres_replica_endpoint" {
  description = "host:port of the standby replica (the standby DATABASE_URL)."
  value       = one(module.postgres_dr[*].replica_endpoint)
}

output "postgres_replica_region" {
  value = one(module.postgres_dr[*].replica_region)
}

output "postgres_subnet_group_name" {
  description = "DB subnet group of the primary and of the drill restores (DR_SUBNET_GROUP)."
  value       = one(module.postgres_dr[*].subnet_group_name)
}

output "postgres_restore_security_group_id" {
  description = "Security group of the drill restores (DR_SECURITY_GROUP_IDS)."
  value       = one(module.postgres_dr[*].restore_security_group_id)
}

output "postgres_parameter_group_name" {
  description = "Parameter group of the primary."
  value       = one(module.postgres_dr[*].parameter_group_name)
}

output "postgres_restore_parameter_group_name" {
  description = "Parameter group of the drill restores (DR_PARAMETER_GROUP)."
  value       = one(module.postgres_dr[*].restore_parameter_group_name)
}

output "postgres_master_user_secret_arn" {
  description = "Master credentials in Secrets Manager (dr-restore's DR_DB_SECRET_ID by default)."
  value       = one(module.postgres_dr[*].master_user_secret_arn)
}

output "postgres_automated_backups_replication_arn" {
  description = "The primary's automated backups replicated to the DR region (point-in-time restores there)."
  value       = one(module.postgres_dr[*].automated_backups_replication_arn)
}

output "postgres_alarm_names" {
  value = one(module.postgres_dr[*].alarm_names)
}

output "dr_restore_database" {
  description = "What dr-restore's drills and rehearsals use (the module's outputs unless a dr_* variable overrides them)."
  value = {
    source_db_instance = local.dr_source_db_instance
    subnet_group       = local.dr_subnet_group
    security_group_ids = local.dr_security_group_ids
    parameter_group    = local.dr_parameter_group
    instance_class     = local.dr_instance_class
    db_secret_arn      = local.dr_db_secret_arn
    failover_replica   = local.dr_failover_replica
  }
}
