# The playbook's storage: the DR bucket, replication of attachments/ and exports/ from the
# primary into it (versioning, replication role, replication metrics), and a daily S3
# Inventory of both buckets feeding manifest-diff. All off by default: the buckets usually
# belong to the data platform already; turn on what this stack should own.
#
# Lifecycle rules on both buckets are owned by lifecycle-enforcer (it reconciles them nightly,
# keeping foreign rules), not by Terraform: one owner, or the two would undo each other.

variable "dr_region" {
  description = "Region of the DR bucket; null is the deployment region."
  type        = string
  default     = null
}

variable "dr_bucket_create" {
  description = "Create the DR bucket (replica_bucket): versioned, SSE-S3, public access blocked."
  type        = bool
  default     = false
}

variable "replication_enabled" {
  description = "Replicate replication_prefixes from primary_bucket to replica_bucket (turns on versioning on the primary, which replication requires)."
  type        = bool
  default     = false
}

variable "replication_prefixes" {
  description = "Key prefixes replicated to the DR bucket."
  type        = list(string)
  default     = ["attachments/", "exports/"]
}

variable "inventory_enabled" {
  description = "Daily S3 Inventory (CSV) of the primary and DR buckets into inventory_bucket, for manifest-diff's inventory mode."
  type        = bool
  default     = false
}

variable "inventory_bucket" {
  description = "Bucket receiving the inventory reports (under inventory/); null is report_bucket. Its bucket policy must let s3.amazonaws.com write there."
  type        = string
  default     = null
}

locals {
  st_inventory_bucket = coalesce(var.inventory_bucket, var.report_bucket)
  # Where S3 puts each report: <prefix>/<source bucket>/<config id>/ (manifest-diff's
  # PRIMARY_INVENTORY / REPLICA_INVENTORY).
  st_inventory_locations = {
    primary = "s3://${local.st_inventory_bucket}/inventory/${var.primary_bucket}/daily/"
    replica = "s3://${local.st_inventory_bucket}/inventory/${var.replica_bucket}/daily/"
  }
}

# ---- DR bucket ------------------------------------------------------------------------

resource "aws_s3_bucket" "dr" {
  #checkov:skip=CKV_AWS_144:This is the replication destination itself.
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES256): a KMS key would need grants for the replication role and every reader; pass one by editing the encryption resource if policy requires it.
  #checkov:skip=CKV_AWS_18:Access logs would go to another bucket this stack does not own; CloudTrail data events are the audit trail.
  #checkov:skip=CKV2_AWS_62:Event notifications are owned per bucket by the functions' files (lifecycle_enforcer.tf), not here.
  #checkov:skip=CKV2_AWS_61:Lifecycle rules are owned by lifecycle-enforcer, which reconciles them nightly.
  count    = var.dr_bucket_create ? 1 : 0
  provider = aws.dr
  bucket   = var.replica_bucket
}

resource "aws_s3_bucket_versioning" "dr" {
  count    = var.dr_bucket_create ? 1 : 0
  provider = aws.dr
  bucket   = aws_s3_bucket.dr[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "dr" {
  count    = var.dr_bucket_create ? 1 : 0
  provider = aws.dr
  bucket   = aws_s3_bucket.dr[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "dr" {
  count                   = var.dr_bucket_create ? 1 : 0
  provider                = aws.dr
  bucket                  = aws_s3_bucket.dr[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ---- Replication primary -> DR ------------------------------------------------------------

resource "aws_s3_bucket_versioning" "primary" {
  count  = var.replication_enabled ? 1 : 0
  bucket = var.primary_bucket
  versioning_configuration {
    status = "Enabled"
  }
}

data "aws_iam_policy_document" "replication_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "replication" {
  count              = var.replication_enabled ? 1 : 0
  name               = "s3-replication-${var.environment}"
  assume_role_policy = data.aws_iam_policy_document.replication_assume.json
}

data "aws_iam_policy_document" "replication" {
  statement {
    sid       = "ReadReplicationConfig"
    actions   = ["s3:GetReplicationConfiguration", "s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.primary_bucket}"]
  }

  statement {
    sid       = "ReadSourceVersions"
    actions   = ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"]
    resources = [for p in var.replication_prefixes : "arn:${local.partition}:s3:::${var.primary_bucket}/${p}*"]
  }

  statement {
    sid       = "WriteReplicas"
    actions   = ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"]
    resources = [for p in var.replication_prefixes : "arn:${local.partition}:s3:::${var.replica_bucket}/${p}*"]
  }
}

resource "aws_iam_role_policy" "replication" {
  count  = var.replication_enabled ? 1 : 0
  name   = "replicate-to-dr"
  role   = aws_iam_role.replication[0].id
  policy = data.aws_iam_policy_document.replication.json
}

resource "aws_s3_bucket_replication_configuration" "primary" {
  count  = var.replication_enabled ? 1 : 0
  bucket = var.primary_bucket
  role   = aws_iam_role.replication[0].arn

  dynamic "rule" {
    for_each = var.replication_prefixes
    content {
      id       = "dr-${trimsuffix(rule.value, "/")}"
      priority = rule.key
      status   = "Enabled"

      filter {
        prefix = rule.value
      }

      # Deletes replicate too: the DR copy mirrors the primary (manifest-diff counts
      # objects only on the replica as "extra").
      delete_marker_replication {
        status = "Enabled"
      }

      destination {
        bucket        = "arn:${local.partition}:s3:::${var.replica_bucket}"
        storage_class = "STANDARD"

        # Replication metrics and the 15-minute threshold events (OperationMissedThreshold):
        # lag shows in CloudWatch (AWS/S3 ReplicationLatency, OperationsPendingReplication).
        metrics {
          status = "Enabled"
          event_threshold {
            minutes = 15
          }
        }

        replication_time {
          status = "Enabled"
          time {
            minutes = 15
          }
        }
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.primary, aws_s3_bucket_versioning.dr]
}

# ---- S3 Inventory of both buckets --------------------------------------------------------

resource "aws_s3_bucket_inventory" "primary" {
  count                    = var.inventory_enabled ? 1 : 0
  bucket                   = var.primary_bucket
  name                     = "daily"
  included_object_versions = "Current"
  optional_fields          = ["Size", "LastModifiedDate", "ETag", "IsMultipartUploaded", "StorageClass", "ReplicationStatus"]

  schedule {
    frequency = "Daily"
  }

  destination {
    bucket {
      format     = "CSV"
      bucket_arn = "arn:${local.partition}:s3:::${local.st_inventory_bucket}"
      prefix     = "inventory"
      encryption {
        sse_s3 {}
      }
    }
  }
}

resource "aws_s3_bucket_inventory" "replica" {
  count                    = var.inventory_enabled ? 1 : 0
  provider                 = aws.dr
  bucket                   = var.replica_bucket
  name                     = "daily"
  included_object_versions = "Current"
  optional_fields          = ["Size", "LastModifiedDate", "ETag", "IsMultipartUploaded", "StorageClass", "ReplicationStatus"]

  schedule {
    frequency = "Daily"
  }

  destination {
    bucket {
      format     = "CSV"
      bucket_arn = "arn:${local.partition}:s3:::${local.st_inventory_bucket}"
      prefix     = "inventory"
      encryption {
        sse_s3 {}
      }
    }
  }

  depends_on = [aws_s3_bucket.dr]
}

output "inventory_locations" {
  description = "Set primary_inventory / replica_inventory to these for manifest-diff's inventory mode (reports appear about a day after inventory_enabled)."
  value       = var.inventory_enabled ? local.st_inventory_locations : null
}

output "replication_role_arn" {
  value = var.replication_enabled ? aws_iam_role.replication[0].arn : null
}
