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
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

# Asynchronous invocations (schedule, S3 event, self-continuation) that still fail after the
# retries land here instead of vanishing.
resource "aws_sqs_queue" "failures" {
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
      destination = aws_sqs_queue.failures.arn
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
