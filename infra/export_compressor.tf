# export-compressor: on ObjectCreated under exports/, gzip JSON/CSV or convert large CSV /
# JSON lines to Parquet, verify the output by reading it back, swap it in, count the saving.
# (docs/export-compressor.md)

# ---- Variables (this function only) ---------------------------------------------------

variable "export_compressor_zip" {
  description = "Explicit zip for export-compressor (e.g. a kept previous build, to roll back); null uses artifacts_dir."
  type        = string
  default     = null
}

variable "export_compressor_buckets" {
  description = "Buckets whose exports are compressed; null means [primary_bucket]."
  type        = list(string)
  default     = null

  validation {
    condition     = var.export_compressor_buckets == null || alltrue([for b in coalesce(var.export_compressor_buckets, []) : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", b))])
    error_message = "export_compressor_buckets must be bucket names."
  }
}

variable "export_source_prefix" {
  description = "SOURCE_PREFIX: objects under it are compressed."
  type        = string
  default     = "exports/"

  validation {
    condition     = endswith(var.export_source_prefix, "/") && !startswith(var.export_source_prefix, "/")
    error_message = "export_source_prefix must end with '/' and not start with one."
  }
}

variable "export_output_prefix" {
  description = "OUTPUT_PREFIX: where the compressed outputs go; never processed (no loop). Must differ from export_source_prefix."
  type        = string
  default     = "exports/compressed/"

  validation {
    condition     = endswith(var.export_output_prefix, "/") && !startswith(var.export_output_prefix, "/") && var.export_output_prefix != var.export_source_prefix
    error_message = "export_output_prefix must end with '/', not start with one, and differ from export_source_prefix."
  }
}

variable "export_gzip_level" {
  description = "GZIP_LEVEL: 0-9."
  type        = number
  default     = 6

  validation {
    condition     = var.export_gzip_level >= 0 && var.export_gzip_level <= 9
    error_message = "export_gzip_level must be 0-9."
  }
}

variable "export_parquet_min_bytes" {
  description = "PARQUET_MIN_BYTES: CSV / JSON lines at least this big become Parquet; null never."
  type        = number
  default     = 67108864
}

variable "export_multipart_threshold_bytes" {
  description = "MULTIPART_THRESHOLD_BYTES: outputs at least this big are uploaded in parts."
  type        = number
  default     = 16777216
}

variable "export_multipart_part_bytes" {
  description = "MULTIPART_PART_BYTES: the part size, 5 MiB-5 GiB."
  type        = number
  default     = 8388608

  validation {
    condition     = var.export_multipart_part_bytes >= 5242880 && var.export_multipart_part_bytes <= 5368709120
    error_message = "export_multipart_part_bytes must be between 5 MiB and 5 GiB."
  }
}

variable "export_price_per_gb_month" {
  description = "PRICE_PER_GB_MONTH: storage price per class in $/GB-month, over the defaults (STANDARD 0.023, STANDARD_IA 0.0125, GLACIER 0.004)."
  type        = map(number)
  default     = {}
}

variable "export_compressor_trigger" {
  description = "\"eventbridge\": an EventBridge rule on Object Created under export_source_prefix (the buckets must have EventBridge notifications on); \"none\": wire the trigger elsewhere."
  type        = string
  default     = "eventbridge"

  validation {
    condition     = contains(["eventbridge", "none"], var.export_compressor_trigger)
    error_message = "export_compressor_trigger must be \"eventbridge\" or \"none\"."
  }
}

variable "export_compressor_kms_key_arns" {
  description = "KMS keys of SSE-KMS encrypted buckets (the function then needs kms:Decrypt and kms:GenerateDataKey); [] for SSE-S3."
  type        = list(string)
  default     = []
}

# ---- Function -------------------------------------------------------------------------

locals {
  ec_name    = "export-compressor-${var.environment}"
  ec_zip     = coalesce(var.export_compressor_zip, "${coalesce(var.artifacts_dir, "${path.root}/../target/lambda")}/export-compressor/bootstrap.zip")
  ec_buckets = coalesce(var.export_compressor_buckets, [var.primary_bucket])

  # Sources (read, tags, delete) and outputs (staging upload, copy, delete of the staging
  # object). With the default prefixes the outputs lie inside the sources.
  ec_source_objects = [for b in local.ec_buckets : "arn:${local.partition}:s3:::${b}/${var.export_source_prefix}*"]
  ec_output_objects = [for b in local.ec_buckets : "arn:${local.partition}:s3:::${b}/${var.export_output_prefix}*"]
  ec_report_objects = "arn:${local.partition}:s3:::${var.report_bucket}/${var.report_prefix}export-compressor/*"

  ec_prices = join(",", [for c, p in var.export_price_per_gb_month : "${c}=${p}"])
}

data "aws_iam_policy_document" "export_compressor" {
  # GetObjectTagging comes first (legal hold); HeadObject and GetObject (download, read-back of
  # the staging object, source of CopyObject/UploadPartCopy) are s3:GetObject.
  statement {
    sid       = "ReadExportsAndOutputs"
    actions   = ["s3:GetObject", "s3:GetObjectTagging"]
    resources = distinct(concat(local.ec_source_objects, local.ec_output_objects))
  }

  # The original is deleted only after its output is verified in place; staging objects are
  # deleted after the copy.
  statement {
    sid       = "DeleteOriginalsAndStaging"
    actions   = ["s3:DeleteObject"]
    resources = distinct(concat(local.ec_source_objects, local.ec_output_objects))
  }

  # PutObject / multipart upload of the staging object, CopyObject (with TaggingDirective
  # REPLACE, which needs s3:PutObjectTagging) into the final key, abort of a failed upload.
  statement {
    sid       = "WriteOutputsOnly"
    actions   = ["s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"]
    resources = local.ec_output_objects
  }

  # HeadObject on a missing key (a repeated event: is the original gone, does its output
  # exist?) answers 403 instead of 404 without s3:ListBucket. The code never lists these
  # buckets.
  statement {
    sid       = "MissingKeysAre404"
    actions   = ["s3:ListBucket"]
    resources = [for b in local.ec_buckets : "arn:${local.partition}:s3:::${b}"]
  }

  # The monthly roll-up and per-export records: read-modify-write, and the rebuild lists the
  # records.
  statement {
    sid       = "OwnReports"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [local.ec_report_objects]
  }

  statement {
    sid       = "ListOwnReports"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.report_bucket}"]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.report_prefix}export-compressor/*"]
    }
  }

  # Record and roll-up reads of keys that do not exist yet must be 404 (see manifest_diff.tf).
  statement {
    sid       = "ReportBucketMissingKeysAre404"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.report_bucket}"]
  }

  dynamic "statement" {
    for_each = length(var.export_compressor_kms_key_arns) > 0 ? [1] : []
    content {
      sid       = "SseKms"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = var.export_compressor_kms_key_arns
    }
  }
}

module "export_compressor" {
  source = "./modules/lambda_function"

  function_name = local.ec_name
  description   = "Compress exports under ${var.export_source_prefix} (${var.deployment})"
  zip_path      = local.ec_zip

  # gzip and ZSTD are single-threaded here; 1769 MB buys one full vCPU. Parquet holds one
  # row group (PARQUET_ROW_GROUP_ROWS) and one batch; gzip a few MiB of buffers.
  memory_mb = 1769
  timeout_s = 900
  # The original, the output and the read-back copy are on /tmp at once (about 2.6x the
  # original for CSV): 10 GB handles originals up to about 3.5 GB.
  ephemeral_storage_mb = 10240

  # A retry redoes the work safely (idempotent); most failures other than throttling repeat.
  maximum_retry_attempts    = 2
  maximum_event_age_seconds = 21600

  log_retention_days = var.log_retention_days
  policy_json        = data.aws_iam_policy_document.export_compressor.json

  # Exactly the variables the code reads (shared/src/config.rs, src/config.rs, handler.rs).
  environment = {
    ENVIRONMENT               = var.environment
    DEPLOYMENT                = var.deployment
    REPORT_BUCKET             = var.report_bucket
    REPORT_PREFIX             = var.report_prefix
    METRICS_NAMESPACE         = var.metrics_namespace
    LOG_MASK_FIELDS           = join(",", var.log_mask_fields)
    SOURCE_PREFIX             = var.export_source_prefix
    OUTPUT_PREFIX             = var.export_output_prefix
    GZIP_LEVEL                = tostring(var.export_gzip_level)
    PARQUET_MIN_BYTES         = var.export_parquet_min_bytes == null ? "off" : tostring(var.export_parquet_min_bytes)
    MULTIPART_THRESHOLD_BYTES = tostring(var.export_multipart_threshold_bytes)
    MULTIPART_PART_BYTES      = tostring(var.export_multipart_part_bytes)
    PRICE_PER_GB_MONTH        = local.ec_prices
  }

  tags = { Function = "export-compressor" }
}

# ---- Trigger: EventBridge ---------------------------------------------------------------
# EventBridge rather than an aws_s3_bucket_notification: that resource owns a bucket's WHOLE
# notification configuration, and lifecycle-enforcer and others listen on the same bucket.
# The buckets need EventBridge notifications turned on (`eventbridge = true` in whichever
# aws_s3_bucket_notification owns them). Outputs under OUTPUT_PREFIX also match the prefix
# filter; the function skips them (skip `own_output`) at the cost of one short invocation.

resource "aws_cloudwatch_event_rule" "export_created" {
  count = var.export_compressor_trigger == "eventbridge" ? 1 : 0

  name        = "${local.ec_name}-object-created"
  description = "Object Created under ${var.export_source_prefix} in ${join(", ", local.ec_buckets)}"
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = local.ec_buckets }
      object = { key = [{ prefix = var.export_source_prefix }] }
    }
  })
}

resource "aws_cloudwatch_event_target" "export_created" {
  count = var.export_compressor_trigger == "eventbridge" ? 1 : 0

  rule = aws_cloudwatch_event_rule.export_created[0].name
  arn  = module.export_compressor.function_arn

  retry_policy {
    maximum_retry_attempts       = 8
    maximum_event_age_in_seconds = 21600
  }

  dead_letter_config {
    arn = module.export_compressor.dlq_arn
  }
}

resource "aws_lambda_permission" "export_created" {
  count = var.export_compressor_trigger == "eventbridge" ? 1 : 0

  statement_id  = "eventbridge-object-created"
  action        = "lambda:InvokeFunction"
  function_name = module.export_compressor.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.export_created[0].arn
}

# EventBridge writes undeliverable events to the function's failure queue.
data "aws_iam_policy_document" "ec_dlq" {
  count = var.export_compressor_trigger == "eventbridge" ? 1 : 0

  statement {
    sid       = "EventBridgeDeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [module.export_compressor.dlq_arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.export_created[0].arn]
    }
  }
}

resource "aws_sqs_queue_policy" "ec_dlq" {
  count = var.export_compressor_trigger == "eventbridge" ? 1 : 0

  queue_url = module.export_compressor.dlq_url
  policy    = data.aws_iam_policy_document.ec_dlq[0].json
}

output "export_compressor_function_name" {
  value = module.export_compressor.function_name
}
