# Alarms for what used to fail quietly: each reads a metric its function emits (docs/signals.json;
# crates/iac-check checks the namespace, name and full dimension set against the catalogue)
# and notifies the warn topic (Slack #on-call) when it fires AND when it resolves (ok_actions),
# so a thread that opened also closes. docs/observability.md, "Alarms for quiet failures",
# says what each means and how it resolves.
#
# Nightly and on-demand jobs emit once per run: their alarms keep their state between runs
# (treat_missing_data = "ignore") and resolve when the next run reports success. Event
# counters treat silence as zero (notBreaching) and resolve one period after the last event.
# Metrics whose documents carry a run-time dimension (drill, experiment, scenario) are read
# with a Metrics Insights query over their full schema, filtered by function.

locals {
  qf_topic = [aws_sns_topic.slo_warn.arn]
  qf_ns    = var.metrics_namespace

  # name => plain metric alarms
  qf_metric = {
    manifest_diff_drift = {
      name        = "manifest-diff-drift-${var.environment}"
      description = "manifest-diff's last run found DRIFT between the primary and DR buckets (docs/manifest-diff.md). Resolves when a later run reports no drift."
      metric      = "manifest_drift_detected"
      function    = "manifest-diff"
      statistic   = "Maximum"
      period      = 3600
      evaluations = 1
      comparison  = "GreaterThanOrEqualToThreshold"
      threshold   = 1
      missing     = "ignore"
    }
    export_compressor_failures = {
      name        = "export-compressor-failures-${var.environment}"
      description = "export-compressor invocations failed (function_errors; the event waits in the failure queue; docs/export-compressor.md). Resolves after 15 minutes without a failure."
      metric      = "function_errors"
      function    = "export-compressor"
      statistic   = "Sum"
      period      = 900
      evaluations = 1
      comparison  = "GreaterThanThreshold"
      threshold   = 0
      missing     = "notBreaching"
    }
    loadtest_coordinator_errors = {
      name        = "loadtest-coordinator-errors-${var.environment}"
      description = "A load test ended in ERROR: the coordinator's invocation failed, no verdict (docs/loadtest-coordinator.md). Resolves after an hour without a failure."
      metric      = "function_errors"
      function    = "loadtest-coordinator"
      statistic   = "Sum"
      period      = 3600
      evaluations = 1
      comparison  = "GreaterThanThreshold"
      threshold   = 0
      missing     = "notBreaching"
    }
    worker_scaler_at_cap = {
      name        = "worker-scaler-at-cap-${var.environment}"
      description = "worker-scaler has held the RQ workers at their cap (SCALER_MAX_WORKERS) for 15 minutes: the backlog may outgrow the cap (docs/worker-scaler.md). Resolves when it scales below the cap."
      metric      = "workers_desired"
      function    = "worker-scaler"
      statistic   = "Minimum"
      period      = 60
      evaluations = 15
      comparison  = "GreaterThanOrEqualToThreshold"
      threshold   = var.worker_scaler_policy.max_workers
      missing     = "notBreaching"
    }
  }

  # name => Metrics Insights alarms (one aggregated series over a schema with a run-time dimension)
  qf_insights = merge({
    chaos_experiment_stopped = {
      name        = "chaos-experiment-stopped-${var.environment}"
      description = "A chaos experiment was stopped (a stop condition fired, or a stop request): read its journal (docs/chaos-runner.md). Resolves an hour after the stop."
      query       = "SELECT SUM(chaos_runs_finished) FROM SCHEMA(\"${local.qf_ns}\", environment, experiment, function, mode, outcome) WHERE function = 'chaos-runner-${var.environment}' AND outcome = 'stopped'"
      period      = 3600
      comparison  = "GreaterThanThreshold"
      threshold   = 0
      missing     = "notBreaching"
    }
    loadtest_shards_failed = {
      name        = "loadtest-shards-failed-${var.environment}"
      description = "A load test lost shards (failed or timed out): its numbers are partial (docs/loadtest-coordinator.md). Resolves an hour later."
      query       = "SELECT SUM(loadtest_shards_failed) FROM SCHEMA(\"${local.qf_ns}\", environment, function, scenario) WHERE function = 'loadtest-coordinator-${var.environment}'"
      period      = 3600
      comparison  = "GreaterThanThreshold"
      threshold   = 0
      missing     = "notBreaching"
    }
    }, var.dr_enabled ? {
    dr_drill_failed = {
      name        = "dr-drill-failed-${var.environment}"
      description = "A DR drill or failover rehearsal failed a check (dr_drill_success = 0; the report names the check, docs/dr-restore.md). Resolves when the next drill passes."
      query       = "SELECT MIN(dr_drill_success) FROM SCHEMA(\"${local.qf_ns}\", drill, environment, function) WHERE function = 'dr-restore-${var.environment}'"
      period      = 3600
      comparison  = "LessThanThreshold"
      threshold   = 1
      missing     = "ignore"
    }
  } : {})
}

resource "aws_cloudwatch_metric_alarm" "quiet_metric" {
  for_each = local.qf_metric

  alarm_name          = each.value.name
  alarm_description   = each.value.description
  namespace           = local.qf_ns
  metric_name         = each.value.metric
  dimensions          = { environment = var.environment, function = "${each.value.function}-${var.environment}" }
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = each.value.evaluations
  datapoints_to_alarm = each.value.evaluations
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  treat_missing_data  = each.value.missing
  alarm_actions       = local.qf_topic
  ok_actions          = local.qf_topic
}

resource "aws_cloudwatch_metric_alarm" "quiet_insights" {
  for_each = local.qf_insights

  alarm_name          = each.value.name
  alarm_description   = each.value.description
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  treat_missing_data  = each.value.missing
  alarm_actions       = local.qf_topic
  ok_actions          = local.qf_topic

  metric_query {
    id          = "q"
    expression  = each.value.query
    period      = each.value.period
    return_data = true
  }
}
