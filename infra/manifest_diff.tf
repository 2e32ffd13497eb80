# manifest-diff: compares the primary and DR buckets' object manifests nightly (ListObjectsV2)
# or when an S3 Inventory report completes, and writes a drift report.

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name

  md_name = "manifest-diff-${var.environment}"
  # Built from its parts rather than read from the module: the role's policy needs it before
  # the function exists (self-continuation).
  md_arn = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.md_name}"
  md_zip = coalesce(var.manifest_diff_zip, "${coalesce(var.artifacts_dir, "${path.root}/../target/lambda")}/manifest-diff/bootstrap.zip")

  # Everything the function writes and reads back lives under this prefix (run.rs: reports,
  # drift CSV parts, checkpoints in _state/).
  md_report_objects = "arn:${local.partition}:s3:::${var.report_bucket}/${var.report_prefix}manifest-diff/*"

  # s3://bucket/key-prefix/ -> {bucket, key}; the key gets the trailing '/' the code adds.
  inventory_parts = [for u in compact([var.primary_inventory, var.replica_inventory]) : regex("^s3://([^/]+)/?(.*)$", u)]
  inventory_locations = [for m in local.inventory_parts : {
    bucket = m[0]
    key    = m[1] == "" || endswith(m[1], "/") ? m[1] : "${m[1]}/"
  }]
  inventory_buckets = distinct([for l in local.inventory_locations : l.bucket])
  md_listed_buckets = distinct(concat([var.primary_bucket, var.replica_bucket], local.inventory_buckets))
}

data "aws_iam_policy_document" "manifest_diff" {
  # ListObjectsV2 on both compared buckets; on the inventory bucket(s) to find the newest
  # dated report folder.
  statement {
    sid       = "ListComparedAndInventoryBuckets"
    actions   = ["s3:ListBucket"]
    resources = [for b in local.md_listed_buckets : "arn:${local.partition}:s3:::${b}"]
  }

  # The code never lists the report bucket, but it reads keys that may not exist yet (the
  # checkpoint, an earlier report of the same run id) and treats NoSuchKey as "none". Without
  # s3:ListBucket, S3 answers 403 AccessDenied for a missing key instead of 404, and every new
  # run would fail. No s3:prefix condition: the GetObject this is checked for carries no
  # prefix, so such a condition would likely never match (not tested against AWS).
  statement {
    sid       = "ReportBucketMissingKeysAre404"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.report_bucket}"]
  }

  # manifest.json, manifest.checksum and the gzipped CSV files under each inventory location.
  dynamic "statement" {
    for_each = length(local.inventory_locations) > 0 ? [1] : []
    content {
      sid       = "ReadInventoryReports"
      actions   = ["s3:GetObject"]
      resources = distinct([for l in local.inventory_locations : "arn:${local.partition}:s3:::${l.bucket}/${l.key}*"])
    }
  }

  # Checkpoints, replays of finished reports, and drift CSV parts joined at the end.
  statement {
    sid       = "ReadOwnReports"
    actions   = ["s3:GetObject"]
    resources = [local.md_report_objects]
  }

  # Reports, drift CSV (and its parts, deleted once joined), checkpoints.
  statement {
    sid       = "WriteOwnReports"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = [local.md_report_objects]
  }

  # A long list-mode run checkpoints before the 15-minute limit and invokes itself
  # asynchronously with {"resume": ...}.
  dynamic "statement" {
    for_each = var.continuation == "invoke" ? [1] : []
    content {
      sid       = "SelfContinuation"
      actions   = ["lambda:InvokeFunction"]
      resources = [local.md_arn]
    }
  }
}

module "manifest_diff" {
  source = "./modules/lambda_function"

  function_name = local.md_name
  description   = "Drift between ${var.primary_bucket} and ${var.replica_bucket} (${var.deployment})"
  zip_path      = local.md_zip

  # The inventory mode external-sorts both sides at once with up to SORT_MEMORY_MB each before
  # spilling to /tmp, on top of gzip/CSV buffers; 1024 MB leaves headroom and buys the CPU
  # share (about 0.6 vCPU) that decompressing and sorting need.
  memory_mb = 1024
  # Lambda's maximum: a run stops CHECKPOINT_MARGIN_SECONDS before it, checkpoints (list
  # mode) and continues in a new invocation.
  timeout_s = 900
  # Inventory files are downloaded to /tmp and sort runs spill there: give /tmp the maximum.
  ephemeral_storage_mb = 10240

  # Retrying a failed run repeats up to 15 minutes of work, and most failures (a wrong bucket,
  # a corrupt inventory) fail again; AWS calls are already retried inside the SDK.
  maximum_retry_attempts    = 1
  maximum_event_age_seconds = 21600

  # Self-continuation is a deliberate loop: a list run longer than 16 invocations (about
  # 4 hours) would otherwise be cut off, its checkpoint left unfinished. Each continuation
  # carries the checkpoint sequence, so duplicates are no-ops.
  allow_recursive_loop = var.continuation == "invoke"

  log_retention_days = var.log_retention_days
  policy_json        = data.aws_iam_policy_document.manifest_diff.json

  # Exactly the variables the code reads (shared/src/config.rs, request.rs, handler.rs).
  # AWS_REGION and AWS_LAMBDA_FUNCTION_NAME are set by Lambda itself.
  environment = {
    ENVIRONMENT               = var.environment
    DEPLOYMENT                = var.deployment
    REPORT_BUCKET             = var.report_bucket
    REPORT_PREFIX             = var.report_prefix
    METRICS_NAMESPACE         = var.metrics_namespace
    LOG_MASK_FIELDS           = join(",", var.log_mask_fields)
    PRIMARY_BUCKET            = var.primary_bucket
    REPLICA_BUCKET            = var.replica_bucket
    PREFIXES                  = join(",", var.prefixes)
    SOURCE                    = var.source_mode
    PRIMARY_INVENTORY         = var.primary_inventory
    REPLICA_INVENTORY         = var.replica_inventory
    LAG_ALLOWANCE_HOURS       = tostring(var.lag_allowance_hours)
    DRIFT_THRESHOLD_PERCENT   = tostring(var.drift_threshold_percent)
    CONTINUATION              = var.continuation
    CHECKPOINT_MARGIN_SECONDS = tostring(var.checkpoint_margin_seconds)
    SORT_MEMORY_MB            = tostring(var.sort_memory_mb)
  }

  tags = { Function = "manifest-diff" }
}

# ---- Nightly schedule -------------------------------------------------------------------

data "aws_iam_policy_document" "md_scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    # Only schedules of this account may use the role (confused deputy).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "md_scheduler" {
  name               = "${local.md_name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.md_scheduler_assume.json
}

data "aws_iam_policy_document" "md_scheduler" {
  statement {
    sid       = "InvokeManifestDiffOnly"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.manifest_diff.function_arn]
  }

  # Scheduler writes events it could not deliver to its dead-letter queue with this role.
  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [module.manifest_diff.dlq_arn]
  }
}

resource "aws_iam_role_policy" "md_scheduler" {
  name   = "invoke-manifest-diff"
  role   = aws_iam_role.md_scheduler.id
  policy = data.aws_iam_policy_document.md_scheduler.json
}

resource "aws_scheduler_schedule" "manifest_diff_nightly" {
  #checkov:skip=CKV_AWS_297:The input holds no secrets (a source, a run id placeholder); Scheduler encrypts it with an AWS owned key.
  name                         = "${local.md_name}-nightly"
  description                  = "Nightly primary/DR manifest diff"
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = "UTC"
  state                        = var.schedule_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.manifest_diff.function_arn
    role_arn = aws_iam_role.md_scheduler.arn

    # Only fields the payload accepts (request.rs refuses unknown ones). run_id makes a
    # repeated delivery of the same execution a replay of its report. Written as literal JSON:
    # jsonencode() would escape "<" and ">" as \u003c/\u003e and Scheduler would not
    # substitute its placeholders.
    input = chomp(<<-JSON
      {"source": "${var.schedule_source}", "run_id": "<aws.scheduler.execution-id>", "scheduled_time": "<aws.scheduler.scheduled-time>"}
    JSON
    )

    # Covers Scheduler's call to Lambda (throttling, Lambda unavailable). Once Lambda has
    # accepted the event, failures of the run itself follow the function's own async retry
    # and on-failure destination.
    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }

    dead_letter_config {
      arn = module.manifest_diff.dlq_arn
    }
  }

  depends_on = [aws_iam_role_policy.md_scheduler]
}

# ---- Inventory completion (S3 event on manifest.checksum) ------------------------------
#
# aws_s3_bucket_notification owns the bucket's WHOLE notification configuration (there can be
# only one per bucket): applying it removes any notification someone else configured on the
# inventory bucket, and two of them on one bucket overwrite each other. Hence the toggle
# manage_inventory_notification (default off); when the bucket already has notifications,
# leave it off and add the lambda_function block below to whoever owns them.
# S3 can only notify a function in the bucket's own region.

locals {
  md_notification_buckets = var.manage_inventory_notification ? toset(local.inventory_buckets) : toset([])
  md_inventory_keys = {
    for b in local.inventory_buckets : b => distinct([for l in local.inventory_locations : l.key if l.bucket == b])
  }
  # Per bucket, the inventory key prefixes in it, minus any inside another one ("" is the
  # whole bucket): S3 refuses overlapping filters for the same event.
  md_notification_prefixes = {
    for b, keys in local.md_inventory_keys : b => [
      for k in keys : k if !anytrue([for other in keys : other != k && startswith(k, other)])
    ]
  }
}

resource "aws_lambda_permission" "md_inventory_s3" {
  for_each = local.md_notification_buckets

  statement_id   = "s3-inventory-${replace(each.key, ".", "-")}"
  action         = "lambda:InvokeFunction"
  function_name  = module.manifest_diff.function_name
  principal      = "s3.amazonaws.com"
  source_arn     = "arn:${local.partition}:s3:::${each.key}"
  source_account = local.account_id # bucket names are global: pin the owner too
}

resource "aws_s3_bucket_notification" "md_inventory" {
  for_each = local.md_notification_buckets

  bucket = each.key

  dynamic "lambda_function" {
    for_each = local.md_notification_prefixes[each.key]
    content {
      lambda_function_arn = module.manifest_diff.function_arn
      events              = ["s3:ObjectCreated:*"]
      filter_prefix       = lambda_function.value == "" ? null : lambda_function.value
      # S3 writes manifest.checksum last, when the report is complete.
      filter_suffix = "manifest.checksum"
    }
  }

  # S3 tests the destination when the configuration is saved.
  depends_on = [aws_lambda_permission.md_inventory_s3]
}
