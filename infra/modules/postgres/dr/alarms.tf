# Alarms on what puts recovery at risk: the standby falling behind (a failover would lose more
# than the RPO), and the primary running out of storage (writes stop; WAL kept for a lagging
# replica also eats it) or of CPU. OK notifications go to the same topics, so a page resolves.

locals {
  # CloudWatch notifies only topics in the alarm's region: a cross-region replica's alarm
  # needs topics of its own region.
  replica_alarm_topic_arns = local.cross_region ? var.replica_alarm_topic_arns : (length(var.replica_alarm_topic_arns) > 0 ? var.replica_alarm_topic_arns : var.alarm_topic_arns)
}

resource "aws_cloudwatch_metric_alarm" "replica_lag" {
  count    = var.replica_enabled ? 1 : 0
  provider = aws.dr

  alarm_name        = "${local.replica_identifier}-lag"
  alarm_description = "PostgreSQL standby ${local.replica_identifier} is more than ${var.replica_lag_alarm_seconds} s behind ${var.identifier} (the RPO objective) for 5 minutes, or reports no lag at all (replication stopped, replica down or promoted): a failover now loses more than the objective. docs/db/disaster_recovery.md"
  namespace         = "AWS/RDS"
  metric_name       = "ReplicaLag"
  dimensions        = { DBInstanceIdentifier = aws_db_instance.replica[0].identifier }

  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.replica_lag_alarm_seconds
  # No ReplicaLag datapoint means there is no working standby: that is the alarm too.
  treat_missing_data = "breaching"

  alarm_actions = local.replica_alarm_topic_arns
  ok_actions    = local.replica_alarm_topic_arns
  tags          = var.tags
}

locals {
  # The primary's alarms, one resource block (aws_cloudwatch_metric_alarm.this): each watches
  # one AWS/RDS metric of the primary over 5-minute periods and notifies alarm_topic_arns. The
  # replica's lag alarm (above) is in aws.dr's region: a block has one provider. No
  # var.identifier here (the block adds it): checkov expands a for_each it can evaluate.
  alarms = {
    free_storage = {
      name                = "free-storage"
      description         = "has less than ${var.free_storage_alarm_gib} GiB free: storage autoscaling reached max_allocated_storage_gib (${var.max_allocated_storage_gib} GiB) or cannot keep up, or WAL is retained for a stuck replica. The database stops accepting writes when full."
      metric_name         = "FreeStorageSpace"
      statistic           = "Minimum"
      evaluation_periods  = 2
      comparison_operator = "LessThanThreshold"
      threshold           = var.free_storage_alarm_gib * 1073741824
    }
    cpu = {
      name                = "cpu"
      description         = "CPU above ${var.cpu_alarm_percent} % for 15 minutes: queries slow down and the replica's replay falls behind."
      metric_name         = "CPUUtilization"
      statistic           = "Average"
      evaluation_periods  = 3
      comparison_operator = "GreaterThanThreshold"
      threshold           = var.cpu_alarm_percent
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name        = "${var.identifier}-${each.value.name}"
  alarm_description = "PostgreSQL ${var.identifier} ${each.value.description}"
  namespace         = "AWS/RDS"
  metric_name       = each.value.metric_name
  dimensions        = { DBInstanceIdentifier = aws_db_instance.primary.identifier }

  statistic           = each.value.statistic
  period              = 300
  evaluation_periods  = each.value.evaluation_periods
  comparison_operator = each.value.comparison_operator
  threshold           = each.value.threshold
  treat_missing_data  = "missing"

  alarm_actions = var.alarm_topic_arns
  ok_actions    = var.alarm_topic_arns
  tags          = var.tags
}

# Warnings at plan time (a check block does not stop the apply): an alarm nobody receives.
check "alarms_are_routed" {
  assert {
    condition     = length(var.alarm_topic_arns) > 0
    error_message = "PostgreSQL ${var.identifier}: alarm_topic_arns is empty, the storage and CPU alarms notify nobody."
  }

  assert {
    condition     = !var.replica_enabled || length(local.replica_alarm_topic_arns) > 0
    error_message = "PostgreSQL ${var.identifier}: the replica-lag alarm notifies nobody; a cross-region replica needs replica_alarm_topic_arns (topics of ${local.dr_region})."
  }
}
