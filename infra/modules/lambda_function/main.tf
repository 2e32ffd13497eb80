# One cargo-lambda function: its role, log group, failure queue and asynchronous-invoke
# settings. What the function's code calls comes in as policy_json; the module adds only what
# the platform needs (logs, X-Ray, the failure queue).

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = var.function_name
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "function" {
  name   = "function"
  role   = aws_iam_role.this.id
  policy = var.policy_json
}

# Created here rather than by Lambda on first write, so retention is set and the role needs
# no logs:CreateLogGroup.
resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is chosen per environment (log_retention_days: 14/30/90 days); the functions' reports in S3 are the long-term record.
  #checkov:skip=CKV_AWS_158:Logs carry no secrets (LOG_MASK_FIELDS masks them); CloudWatch Logs encrypts at rest by default. Pass log_kms_key_arn for a customer-managed key.
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

# Asynchronous invocations (schedule, S3 event, self-continuation) that still fail after the
# retries land here instead of vanishing.
resource "aws_sqs_queue" "failures" {
  #checkov:skip=CKV_AWS_27:Encrypted with SQS-managed keys (sqs_managed_sse_enabled); a CMK would add a key policy for Lambda, Scheduler and EventBridge to each queue.
  name                      = "${var.function_name}-failures"
  message_retention_seconds = 1209600 # 14 days, the SQS maximum: time to notice and replay
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

data "aws_iam_policy_document" "runtime" {
  statement {
    sid       = "OwnLogGroupOnly"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  # Lambda sends on-failure destination records with the function's own role.
  statement {
    sid       = "FailureDestination"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.failures.arn]
  }

  dynamic "statement" {
    for_each = var.failure_topic_arn == null ? [] : [1]
    content {
      sid       = "FailureTopic"
      actions   = ["sns:Publish"]
      resources = [var.failure_topic_arn]
    }
  }

  # Inside a VPC Lambda manages the function's network interfaces with its role
  # (AWSLambdaVPCAccessExecutionRole); these actions take no resource-level permissions.
  dynamic "statement" {
    for_each = length(var.vpc_subnet_ids) > 0 ? [1] : []
    content {
      sid = "VpcNetworkInterfaces"
      actions = [
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
      ]
      resources = ["*"]
    }
  }

  # Active tracing: these actions have no resource-level permissions (AWSXRayDaemonWriteAccess).
  statement {
    sid       = "XRay"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "runtime" {
  name   = "runtime"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.runtime.json
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Failed async invocations go to the on-failure destination (aws_lambda_function_event_invoke_config below), which records the error too; a DLQ as well would deliver each failure twice.
  #checkov:skip=CKV_AWS_117:Most functions call only AWS APIs; those that reach a database or Redis pass vpc_subnet_ids and vpc_security_group_ids.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile per account; pass code_signing_config_arn to enforce it.
  #checkov:skip=CKV_AWS_173:Environment variables hold names and settings, never secrets (those come from SSM / Secrets Manager); Lambda encrypts them at rest with an AWS managed key. Pass kms_key_arn for a customer-managed key.
  function_name    = var.function_name
  description      = var.description
  role             = aws_iam_role.this.arn
  filename         = var.zip_path
  source_code_hash = filebase64sha256(var.zip_path)
  runtime          = "provided.al2023"
  architectures    = ["arm64"] # cargo lambda build --arm64
  handler          = "bootstrap"
  memory_size      = var.memory_mb
  timeout          = var.timeout_s
  package_type     = "Zip"
  # -1: unreserved (the account pool). Reserve for functions that must never be throttled
  # or must never fan out further.
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn
  code_signing_config_arn        = var.code_signing_config_arn

  ephemeral_storage {
    size = var.ephemeral_storage_mb
  }

  # JSON system logs (START/END/REPORT) next to the function's own JSON lines. No
  # application_log_level: Lambda would then drop stdout lines without a "level" key, and
  # the EMF metric lines have none.
  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.this.name
  }

  tracing_config {
    mode = "Active"
  }

  dynamic "vpc_config" {
    for_each = length(var.vpc_subnet_ids) > 0 ? [1] : []
    content {
      subnet_ids         = var.vpc_subnet_ids
      security_group_ids = var.vpc_security_group_ids
    }
  }

  environment {
    variables = var.environment
  }

  tags = var.tags

  # The role must be able to write logs before the first invocation.
  depends_on = [aws_iam_role_policy.runtime, aws_iam_role_policy.function]
}

resource "aws_lambda_function_event_invoke_config" "this" {
  function_name                = aws_lambda_function.this.function_name
  maximum_retry_attempts       = var.maximum_retry_attempts
  maximum_event_age_in_seconds = var.maximum_event_age_seconds

  destination_config {
    on_failure {
      # The module's queue unless a topic is given (e.g. to page someone).
      destination = coalesce(var.failure_topic_arn, aws_sqs_queue.failures.arn)
    }
  }

  # sqs:SendMessage must be in place: Lambda checks it when the destination is set.
  depends_on = [aws_iam_role_policy.runtime]
}

# Lambda stops a chain of invocations caused by one event after 16 (recursive loop
# detection) and sends the event to the failure queue. A function that deliberately
# continues itself would be cut off mid-run.
resource "aws_lambda_function_recursion_config" "this" {
  count = var.allow_recursive_loop ? 1 : 0

  function_name  = aws_lambda_function.this.function_name
  recursive_loop = "Allow"
}
