# The four CloudWatch dashboards, built only from metrics the functions emit (their EMF
# tables: docs/observability.md and docs/<fn>.md; crates/iac-check fails if a metric named
# here is in no doc) and Lambda's / SQS's own metrics. Every EMF metric carries the
# dimensions function (the Lambda name, <fn>-<env>) and environment.

variable "dashboards_enabled" {
  description = "Create the dashboards Unified API health, Frontend UX, Async jobs and FinOps."
  type        = bool
  default     = true
}

locals {
  db_ns  = var.metrics_namespace
  db_env = var.environment
  db_fns = ["manifest-diff", "lifecycle-enforcer", "export-compressor", "dr-restore", "chaos-runner", "loadtest-shard"]

  # One EMF metric of one function: [namespace, metric, dims...].
  db_m = { for f in local.db_fns : f => "${f}-${var.environment}" }

  db_widgets = {
    api = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title = "Load test: requests answered, errors, timeouts (per minute)", region = local.region, stat = "Sum", period = 60, view = "timeSeries"
          metrics = [
            [local.db_ns, "loadtest_shard_ok", "function", local.db_m["loadtest-shard"], "environment", local.db_env],
            [local.db_ns, "loadtest_shard_errors", "function", local.db_m["loadtest-shard"], "environment", local.db_env],
            [local.db_ns, "loadtest_shard_timeouts", "function", local.db_m["loadtest-shard"], "environment", local.db_env],
            [local.db_ns, "loadtest_shard_connect_errors", "function", local.db_m["loadtest-shard"], "environment", local.db_env],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title = "Load test: p95 latency per shard (ms)", region = local.region, stat = "Maximum", period = 60, view = "timeSeries"
          metrics = [
            [local.db_ns, "loadtest_shard_latency_p95_ms", "function", local.db_m["loadtest-shard"], "environment", local.db_env],
            [local.db_ns, "loadtest_shard_scheduler_lag_p99_ms", "function", local.db_m["loadtest-shard"], "environment", local.db_env],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 24, height = 6
        properties = {
          title   = "Failed invocations per function (function_errors)", region = local.region, stat = "Sum", period = 300, view = "timeSeries"
          metrics = [for f in local.db_fns : [local.db_ns, "function_errors", "function", local.db_m[f], "environment", local.db_env]]
        }
      },
    ]
    ux = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title   = "SSE: handshake p95 (ms)", region = local.region, stat = "Maximum", period = 60, view = "timeSeries"
          metrics = [[local.db_ns, "loadtest_shard_sse_handshake_p95_ms", "function", local.db_m["loadtest-shard"], "environment", local.db_env]]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title = "SSE: streams opened, failed, reconnects", region = local.region, stat = "Sum", period = 60, view = "timeSeries"
          metrics = [
            [local.db_ns, "loadtest_shard_sse_streams_opened", "function", local.db_m["loadtest-shard"], "environment", local.db_env],
            [local.db_ns, "loadtest_shard_sse_streams_failed", "function", local.db_m["loadtest-shard"], "environment", local.db_env],
            [local.db_ns, "loadtest_shard_sse_reconnects", "function", local.db_m["loadtest-shard"], "environment", local.db_env],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 24, height = 6
        properties = {
          title = "Load test: arrivals dropped (open model: the target could not keep up)", region = local.region, stat = "Sum", period = 60, view = "timeSeries"
          metrics = [
            [local.db_ns, "loadtest_shard_scheduled", "function", local.db_m["loadtest-shard"], "environment", local.db_env],
            [local.db_ns, "loadtest_shard_dropped", "function", local.db_m["loadtest-shard"], "environment", local.db_env],
          ]
        }
      },
    ]
    async = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title = "Run durations (s)", region = local.region, stat = "Maximum", period = 3600, view = "timeSeries"
          metrics = [
            [local.db_ns, "manifest_diff_duration_seconds", "function", local.db_m["manifest-diff"], "environment", local.db_env],
            [local.db_ns, "lifecycle_run_duration_seconds", "function", local.db_m["lifecycle-enforcer"], "environment", local.db_env],
            [local.db_ns, "export_duration_seconds", "function", local.db_m["export-compressor"], "environment", local.db_env],
            [local.db_ns, "dr_drill_duration_seconds", "function", local.db_m["dr-restore"], "environment", local.db_env],
            [local.db_ns, "chaos_run_duration_seconds", "function", local.db_m["chaos-runner"], "environment", local.db_env],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title = "DR: drift, RPO", region = local.region, stat = "Maximum", period = 3600, view = "timeSeries"
          metrics = [
            [local.db_ns, "manifest_drift_ratio", "function", local.db_m["manifest-diff"], "environment", local.db_env],
            [local.db_ns, "manifest_missing_objects", "function", local.db_m["manifest-diff"], "environment", local.db_env],
            [local.db_ns, "dr_rpo_seconds", "function", local.db_m["dr-restore"], "environment", local.db_env],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title = "Objects handled", region = local.region, stat = "Sum", period = 3600, view = "timeSeries"
          metrics = [
            [local.db_ns, "export_objects_compressed", "function", local.db_m["export-compressor"], "environment", local.db_env],
            [local.db_ns, "lifecycle_objects_tagged", "function", local.db_m["lifecycle-enforcer"], "environment", local.db_env],
            [local.db_ns, "lifecycle_objects_out_of_policy", "function", local.db_m["lifecycle-enforcer"], "environment", local.db_env],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title   = "Failed async invocations waiting in the failure queues", region = local.region, stat = "Maximum", period = 300, view = "timeSeries"
          metrics = [for f in local.db_fns : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${local.db_m[f]}-failures"]]
        }
      },
    ]
    finops = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title = "S3 storage cost estimate and savings ($)", region = local.region, stat = "Maximum", period = 86400, view = "timeSeries"
          metrics = [
            [local.db_ns, "s3_cost_estimate_dollars", "function", local.db_m["export-compressor"], "environment", local.db_env],
            [local.db_ns, "export_cost_saved_dollars", "function", local.db_m["export-compressor"], "environment", local.db_env],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title = "Bytes saved by compression", region = local.region, stat = "Sum", period = 86400, view = "timeSeries"
          metrics = [
            [local.db_ns, "export_bytes_before", "function", local.db_m["export-compressor"], "environment", local.db_env],
            [local.db_ns, "export_bytes_saved", "function", local.db_m["export-compressor"], "environment", local.db_env],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 24, height = 6
        properties = {
          title   = "Lambda duration per function (GB-seconds drive the bill)", region = local.region, stat = "Sum", period = 86400, view = "timeSeries"
          metrics = [for f in local.db_fns : ["AWS/Lambda", "Duration", "FunctionName", local.db_m[f]]]
        }
      },
    ]
  }

  db_names = {
    api    = "unified-api-health"
    ux     = "frontend-ux"
    async  = "async-jobs"
    finops = "finops"
  }
}

resource "aws_cloudwatch_dashboard" "this" {
  for_each = var.dashboards_enabled ? local.db_names : {}

  dashboard_name = "${each.value}-${var.environment}"
  dashboard_body = jsonencode({ widgets = local.db_widgets[each.key] })
}

output "dashboard_names" {
  value = [for d in aws_cloudwatch_dashboard.this : d.dashboard_name]
}
