# Addresses renamed when the primary region's security groups and alarms became one for_each
# block each: Terraform moves each existing object to its new address in the state, so nothing
# is destroyed or recreated. The ingress rules kept their addresses (their keys are the callers'
# security group ids and CIDR blocks, which a moved block cannot name). Keep these blocks until
# every deployment has applied them: a state still holding the old addresses is migrated then.

moved {
  from = aws_security_group.primary
  to   = aws_security_group.this["primary"]
}

moved {
  from = aws_security_group.restore
  to   = aws_security_group.this["restore"]
}

moved {
  from = aws_cloudwatch_metric_alarm.free_storage
  to   = aws_cloudwatch_metric_alarm.this["free_storage"]
}

moved {
  from = aws_cloudwatch_metric_alarm.cpu
  to   = aws_cloudwatch_metric_alarm.this["cpu"]
}
