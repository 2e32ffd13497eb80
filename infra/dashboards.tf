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

  # Metrics whose documents carry a dimension beyond function and environment (the EMF tables
  # in docs/*.md): CloudWatch matches a dimension set exactly, so a row naming only function
  # and environment shows nothing. SEARCH with the full schema draws one line per value
  # (scenario, target, drill, ...), values the functions choose at run time.
  db_extra = {
    chaos_run_duration_seconds          = ["chaos-runner", "experiment,mode"]
    dr_drill_duration_seconds           = ["dr-restore", "drill"]
    dr_rpo_seconds                      = ["dr-restore", "drill"]
    export_bytes_before                 = ["export-compressor", "target"]
    export_bytes_saved                  = ["export-compressor", "target"]
    export_cost_saved_dollars           = ["export-compressor", "target"]
    export_duration_seconds             = ["export-compressor", "target"]
    export_objects_compressed           = ["export-compressor", "target"]
    loadtest_shard_connect_errors       = ["loadtest-shard", "scenario"]
    loadtest_shard_dropped              = ["loadtest-shard", "scenario"]
    loadtest_shard_errors               = ["loadtest-shard", "scenario"]
    loadtest_shard_latency_p95_ms       = ["loadtest-shard", "scenario"]
    loadtest_shard_ok                   = ["loadtest-shard", "scenario"]
    loadtest_shard_scheduled            = ["loadtest-shard", "scenario"]
    loadtest_shard_scheduler_lag_p99_ms = ["loadtest-shard", "scenario"]
    loadtest_shard_sse_handshake_p95_ms = ["loadtest-shard", "scenario"]
    loadtest_shard_sse_reconnects       = ["loadtest-shard", "scenario"]
    loadtest_shard_sse_streams_failed   = ["loadtest-shard", "scenario"]
    loadtest_shard_sse_streams_opened   = ["loadtest-shard", "scenario"]
    loadtest_shard_timeouts             = ["loadtest-shard", "scenario"]
    s3_cost_estimate_dollars            = ["export-compressor", "estimate,storage_class"]
  }
  db_q = { for m, v in local.db_extra : m => "{\"${local.db_ns}\",environment,function,${v[1]}} MetricName=\"${m}\" function=\"${local.db_m[v[0]]}\"" }

  db_widgets = {
    api = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title = "Load test: requests answered, errors, timeouts (per minute)", region = local.region, stat = "Sum", period = 60, view = "timeSeries"
          metrics = [
            [{ id = "loadtestshardok", expression = "SEARCH('${local.db_q.loadtest_shard_ok}', 'Sum', 60)" }],
            [{ id = "loadtestsharderrors", expression = "SEARCH('${local.db_q.loadtest_shard_errors}', 'Sum', 60)" }],
            [{ id = "loadtestshardtimeouts", expression = "SEARCH('${local.db_q.loadtest_shard_timeouts}', 'Sum', 60)" }],
            [{ id = "loadtestshardconnecterrors", expression = "SEARCH('${local.db_q.loadtest_shard_connect_errors}', 'Sum', 60)" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title = "Load test: p95 latency per shard (ms)", region = local.region, stat = "Maximum", period = 60, view = "timeSeries"
          metrics = [
            [{ id = "loadtestshardlatencyp95ms", expression = "SEARCH('${local.db_q.loadtest_shard_latency_p95_ms}', 'Maximum', 60)" }],
            [{ id = "loadtestshardschedulerlagp99ms", expression = "SEARCH('${local.db_q.loadtest_shard_scheduler_lag_p99_ms}', 'Maximum', 60)" }],
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
          metrics = [[{ id = "loadtestshardssehandshakep95ms", expression = "SEARCH('${local.db_q.loadtest_shard_sse_handshake_p95_ms}', 'Maximum', 60)" }]]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title = "SSE: streams opened, failed, reconnects", region = local.region, stat = "Sum", period = 60, view = "timeSeries"
          metrics = [
            [{ id = "loadtestshardssestreamsopened", expression = "SEARCH('${local.db_q.loadtest_shard_sse_streams_opened}', 'Sum', 60)" }],
            [{ id = "loadtestshardssestreamsfailed", expression = "SEARCH('${local.db_q.loadtest_shard_sse_streams_failed}', 'Sum', 60)" }],
            [{ id = "loadtestshardssereconnects", expression = "SEARCH('${local.db_q.loadtest_shard_sse_reconnects}', 'Sum', 60)" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 24, height = 6
        properties = {
          title = "Load test: arrivals dropped (open model: the target could not keep up)", region = local.region, stat = "Sum", period = 60, view = "timeSeries"
          metrics = [
            [{ id = "loadtestshardscheduled", expression = "SEARCH('${local.db_q.loadtest_shard_scheduled}', 'Sum', 60)" }],
            [{ id = "loadtestsharddropped", expression = "SEARCH('${local.db_q.loadtest_shard_dropped}', 'Sum', 60)" }],
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
            [{ id = "exportdurationseconds", expression = "SEARCH('${local.db_q.export_duration_seconds}', 'Maximum', 3600)" }],
            [{ id = "drdrilldurationseconds", expression = "SEARCH('${local.db_q.dr_drill_duration_seconds}', 'Maximum', 3600)" }],
            [{ id = "chaosrundurationseconds", expression = "SEARCH('${local.db_q.chaos_run_duration_seconds}', 'Maximum', 3600)" }],
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
            [{ id = "drrposeconds", expression = "SEARCH('${local.db_q.dr_rpo_seconds}', 'Maximum', 3600)" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title = "Objects handled", region = local.region, stat = "Sum", period = 3600, view = "timeSeries"
          metrics = [
            [{ id = "exportobjectscompressed", expression = "SEARCH('${local.db_q.export_objects_compressed}', 'Sum', 3600)" }],
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
            [{ id = "s3costestimatedollars", expression = "SEARCH('${local.db_q.s3_cost_estimate_dollars}', 'Maximum', 86400)" }],
            [{ id = "exportcostsaveddollars", expression = "SEARCH('${local.db_q.export_cost_saved_dollars}', 'Maximum', 86400)" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title = "Bytes saved by compression", region = local.region, stat = "Sum", period = 86400, view = "timeSeries"
          metrics = [
            [{ id = "exportbytesbefore", expression = "SEARCH('${local.db_q.export_bytes_before}', 'Sum', 86400)" }],
            [{ id = "exportbytessaved", expression = "SEARCH('${local.db_q.export_bytes_saved}', 'Sum', 86400)" }],
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
