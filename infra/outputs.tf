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
