output "function_name" {
  value = aws_lambda_function.this.function_name
}

output "function_arn" {
  value = aws_lambda_function.this.arn
}

output "role_arn" {
  value = aws_iam_role.this.arn
}

output "role_name" {
  value = aws_iam_role.this.name
}

output "log_group_name" {
  value = aws_cloudwatch_log_group.this.name
}

output "dlq_arn" {
  description = "The on-failure destination of asynchronous invocations."
  value       = aws_sqs_queue.failures.arn
}

output "dlq_url" {
  value = aws_sqs_queue.failures.url
}

output "failure_destination_arn" {
  description = "Where failed asynchronous invocations go: the topic if failure_topic_arn is set, else the queue."
  value       = coalesce(var.failure_topic_arn, aws_sqs_queue.failures.arn)
}

output "dlq_name" {
  description = "The failure queue's name (the QueueName dimension of its AWS/SQS metrics)."
  value       = aws_sqs_queue.failures.name
}
