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
  db_all = [
    "manifest-diff", "lifecycle-enforcer", "export-compressor", "dr-restore", "chaos-runner",
    "loadtest-coordinator", "loadtest-shard", "uptime-probe", "cost-anomaly", "worker-scaler",
  ]
  # The functions this environment deploys (dr-restore only with dr_enabled): a row for one
  # that is not deployed shows nothing (crates/iac-check: "is not deployed").
  db_fns = [for f in local.db_all : f if f != "dr-restore" || var.dr_enabled]

  # One EMF metric of one function: [namespace, metric, dims...].
  db_m = { for f in local.db_all : f => "${f}-${var.environment}" }

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
    api_availability                    = ["uptime-probe", "target"]
    probe_latency_ms                    = ["uptime-probe", "target"]
    loadtest_run_passed                 = ["loadtest-coordinator", "scenario"]
    loadtest_gate_blocked               = ["loadtest-coordinator", "scenario"]
    loadtest_http_req_duration_p95      = ["loadtest-coordinator", "scenario"]
    finops_daily_spend_dollars          = ["cost-anomaly", "env"]
    finops_projected_month_end_dollars  = ["cost-anomaly", "env"]
    finops_budget_projected_percent     = ["cost-anomaly", "budget"]
    finops_budget_utilisation_percent   = ["cost-anomaly", "budget"]
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
      {
        type = "metric", x = 0, y = 12, width = 8, height = 6
        properties = {
          title   = "Availability per probe target (%, uptime-probe)", region = local.region, stat = "Average", period = 300, view = "timeSeries"
          yAxis   = { left = { min = 0, max = 100 } }
          metrics = [[{ id = "apiavailability", expression = "SEARCH('${local.db_q.api_availability}', 'Average', 300)" }]]
        }
      },
      {
        type = "metric", x = 8, y = 12, width = 8, height = 6
        properties = {
          title   = "Probe latency per target (ms, p95 of 1-minute probes)", region = local.region, stat = "p95", period = 300, view = "timeSeries"
          metrics = [[{ id = "probelatencyms", expression = "SEARCH('${local.db_q.probe_latency_ms}', 'p95', 300)" }]]
        }
      },
      {
        type = "metric", x = 16, y = 12, width = 8, height = 6
        properties = {
          title       = "Error budget remaining per SLO (%, 30 days; chaos runs need 25 %)", region = local.region, stat = "Minimum", period = 900, view = "timeSeries"
          metrics     = [[{ id = "errorbudgetremaining", expression = "SEARCH('{\"${local.db_ns}/SLO\",environment,function,slo} MetricName=\"error_budget_remaining_percent\" function=\"${local.db_m["uptime-probe"]}\"', 'Minimum', 900)" }]]
          annotations = { horizontal = [{ label = "chaos gate", value = 25 }] }
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
          metrics = concat([
            [local.db_ns, "manifest_diff_duration_seconds", "function", local.db_m["manifest-diff"], "environment", local.db_env],
            [local.db_ns, "lifecycle_run_duration_seconds", "function", local.db_m["lifecycle-enforcer"], "environment", local.db_env],
            [{ id = "exportdurationseconds", expression = "SEARCH('${local.db_q.export_duration_seconds}', 'Maximum', 3600)" }],
            [{ id = "chaosrundurationseconds", expression = "SEARCH('${local.db_q.chaos_run_duration_seconds}', 'Maximum', 3600)" }],
            ], var.dr_enabled ? [
            [{ id = "drdrilldurationseconds", expression = "SEARCH('${local.db_q.dr_drill_duration_seconds}', 'Maximum', 3600)" }],
          ] : [])
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title = "DR: drift, RPO", region = local.region, stat = "Maximum", period = 3600, view = "timeSeries"
          metrics = concat([
            [local.db_ns, "manifest_drift_ratio", "function", local.db_m["manifest-diff"], "environment", local.db_env],
            [local.db_ns, "manifest_missing_objects", "function", local.db_m["manifest-diff"], "environment", local.db_env],
            [local.db_ns, "manifest_drift_detected", "function", local.db_m["manifest-diff"], "environment", local.db_env],
            ], var.dr_enabled ? [
            [{ id = "drrposeconds", expression = "SEARCH('${local.db_q.dr_rpo_seconds}', 'Maximum', 3600)" }],
          ] : [])
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
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title = "RQ workers: backlog, desired, running (worker-scaler)", region = local.region, stat = "Maximum", period = 60, view = "timeSeries"
          metrics = [
            [local.db_ns, "worker_backlog_total", "function", local.db_m["worker-scaler"], "environment", local.db_env],
            [local.db_ns, "workers_desired", "function", local.db_m["worker-scaler"], "environment", local.db_env],
            [local.db_ns, "workers_running", "function", local.db_m["worker-scaler"], "environment", local.db_env],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 12, width = 12, height = 6
        properties = {
          title = "Load tests: passed, gate blocked, p95 (ms) per scenario (loadtest-coordinator)", region = local.region, stat = "Maximum", period = 3600, view = "timeSeries"
          metrics = [
            [{ id = "loadtestrunpassed", expression = "SEARCH('${local.db_q.loadtest_run_passed}', 'Maximum', 3600)" }],
            [{ id = "loadtestgateblocked", expression = "SEARCH('${local.db_q.loadtest_gate_blocked}', 'Maximum', 3600)" }],
            [{ id = "loadtestp95", expression = "SEARCH('${local.db_q.loadtest_http_req_duration_p95}', 'Maximum', 3600)" }],
          ]
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
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title   = "Daily spend per environment ($, Cost Explorer via cost-anomaly)", region = local.region, stat = "Maximum", period = 86400, view = "timeSeries"
          metrics = [[{ id = "dailyspend", expression = "SEARCH('${local.db_q.finops_daily_spend_dollars}', 'Maximum', 86400)" }]]
        }
      },
      {
        type = "metric", x = 12, y = 12, width = 12, height = 6
        properties = {
          title = "Cost anomalies open, and alerted (new, grew)", region = local.region, stat = "Maximum", period = 86400, view = "timeSeries"
          metrics = [
            [local.db_ns, "finops_anomalies", "function", local.db_m["cost-anomaly"], "environment", local.db_env],
            [local.db_ns, "finops_anomaly_alerts_new", "function", local.db_m["cost-anomaly"], "environment", local.db_env, { stat = "Sum" }],
            [local.db_ns, "finops_anomaly_alerts_updated", "function", local.db_m["cost-anomaly"], "environment", local.db_env, { stat = "Sum" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 18, width = 24, height = 6
        properties = {
          title = "Projected month end: $ per environment, and % of each budget (100 = on budget)", region = local.region, stat = "Maximum", period = 86400, view = "timeSeries"
          metrics = [
            [{ id = "projected", expression = "SEARCH('${local.db_q.finops_projected_month_end_dollars}', 'Maximum', 86400)" }],
            [{ id = "budgetprojected", expression = "SEARCH('${local.db_q.finops_budget_projected_percent}', 'Maximum', 86400)", yAxis = "right" }],
            [{ id = "budgetused", expression = "SEARCH('${local.db_q.finops_budget_utilisation_percent}', 'Maximum', 86400)", yAxis = "right" }],
          ]
          annotations = { horizontal = [{ label = "budget", value = 100, yAxis = "right" }] }
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
