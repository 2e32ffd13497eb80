# chaos-runner: the playbook's FIS experiments (RQ queue, S3, geocoding DNS, PostgreSQL) on
# their calendar, with stop conditions, steady-state probes, a journal and a postmortem.
# (docs/chaos-runner.md; runbooks under docs/realtime, docs/files, docs/integration, docs/db)

# ---- Variables (this function only) ---------------------------------------------------

variable "chaos_runner_zip" {
  description = "Explicit zip for chaos-runner (e.g. a kept previous build, to roll back); null uses artifacts_dir."
  type        = string
  default     = null
}

variable "chaos_schedule_enabled" {
  description = "Whether the Friday schedule runs (the runner itself decides which Friday is due)."
  type        = bool
  default     = true
}

variable "chaos_schedule_expression" {
  description = "When the runner wakes up: every 15 minutes on Fridays 09:00-16:45 UTC, so a run started at 09:00 is followed until it ends. Only the first Friday of the month starts anything."
  type        = string
  default     = "cron(0/15 9-16 ? * FRI *)"
}

variable "chaos_allow_production" {
  description = "CHAOS_ALLOW_PRODUCTION: the function's key for production; each experiment needs allow_production too."
  type        = bool
  default     = false
}

variable "chaos_dry_run" {
  description = "CHAOS_DRY_RUN: scheduled runs start FIS with actionsMode skip-all."
  type        = bool
  default     = false
}

variable "chaos_experiments_uri" {
  description = "CHAOS_EXPERIMENTS: s3://bucket/key of the experiment registry; null uses the copy compiled into the function (events/chaos-runner/experiments.json)."
  type        = string
  default     = null

  validation {
    condition     = var.chaos_experiments_uri == null || can(regex("^s3://[^/]+/.+", coalesce(var.chaos_experiments_uri, "x")))
    error_message = "chaos_experiments_uri must be s3://bucket/key."
  }
}

variable "chaos_poll_ms" {
  description = "CHAOS_POLL_MS: between two GetExperiment calls."
  type        = number
  default     = 15000
}

variable "chaos_targets" {
  description = "Tag values (tag key chaos-target) that select each experiment's targets: rq_workers (ECS tasks), app_subnet (subnet), app (EC2 instances), primary_db (RDS instance)."
  type = object({
    rq_workers = string
    app_subnet = string
    app        = string
    primary_db = string
  })
  default = {
    rq_workers = "rq-workers"
    app_subnet = "app-subnet"
    app        = "app"
    primary_db = "primary-db"
  }
}

variable "chaos_redis_host" {
  description = "Redis address the RQ latency is injected towards (sources of aws:ecs:task-network-latency)."
  type        = string
  default     = "redis.internal"
}

variable "chaos_geocoder_primary_host" {
  description = "Hostname of the primary geocoding API, blackholed in /etc/hosts by the geocoding-dns experiment."
  type        = string
  default     = "api.geocoder-primary.example"
}

variable "chaos_stop_alarm_api_availability_threshold" {
  description = "chaos-stop-api-availability fires when api_availability (percent, 1-minute) drops below this."
  type        = number
  default     = 99
}

# ---- Stop-condition alarms -------------------------------------------------------------
# FIS stops an experiment as soon as one of its stop-condition alarms goes to ALARM. The runner
# refuses to start while one is already in ALARM, and refuses templates without one.

locals {
  cr_name = "chaos-runner-${var.environment}"
  cr_zip  = coalesce(var.chaos_runner_zip, "${coalesce(var.artifacts_dir, "${path.root}/../target/lambda")}/chaos-runner/bootstrap.zip")

  cr_stop_alarms = {
    api_availability = {
      name      = "chaos-stop-api-availability"
      namespace = var.metrics_namespace
      metric    = "api_availability"
      # The full set uptime-probe publishes (CloudWatch matches dimension sets exactly).
      dimensions  = { environment = var.environment, function = "uptime-probe-${var.environment}", target = "api" }
      statistic   = "Average"
      comparison  = "LessThanThreshold"
      threshold   = var.chaos_stop_alarm_api_availability_threshold
      description = "API availability under chaos: stops any running FIS experiment."
      # uptime-probe publishes every minute: silence means the probe or the API is down.
      missing = "breaching"
    }
    rq_backlog = {
      name      = "chaos-stop-rq-backlog"
      namespace = var.metrics_namespace
      # worker-scaler's backlog over all SCALER_QUEUES (docs/worker-scaler.md).
      metric      = "worker_backlog_total"
      dimensions  = { environment = var.environment, function = "worker-scaler-${var.environment}" }
      statistic   = "Maximum"
      comparison  = "GreaterThanThreshold"
      threshold   = 1000
      description = "RQ backlog above 1000 jobs: stops the rq-queue experiment."
      # worker-scaler publishes every check: silence means the scaler or Redis is down.
      missing = "breaching"
    }
    s3_5xx = {
      name        = "chaos-stop-s3-5xx"
      namespace   = "AWS/S3"
      metric      = "5xxErrors"
      dimensions  = { BucketName = var.primary_bucket, FilterId = "EntireBucket" }
      statistic   = "Sum"
      comparison  = "GreaterThanThreshold"
      threshold   = 50
      description = "S3 5xx errors on the primary bucket: stops the s3-storage experiment."
      # A request metric: S3 publishes a period only when requests arrive, so no data is no 5xx.
      missing = "notBreaching"
    }
    db_connections = {
      name        = "chaos-stop-db-connections"
      namespace   = var.metrics_namespace
      metric      = "db_pool_errors"
      dimensions  = { environment = var.environment }
      statistic   = "Sum"
      comparison  = "GreaterThanThreshold"
      threshold   = 100
      description = "Database pool errors persist: stops the postgres-failover experiment."
      # The backend's counter (docs/signals.json, outside:backend) counts errors as they
      # happen: no data is no error.
      missing = "notBreaching"
    }
  }
}

# S3 publishes 5xxErrors (a request metric) only for a metrics configuration that names it:
# without this the chaos-stop-s3-5xx alarm never sees a datapoint. Request metrics are billed
# as custom CloudWatch metrics.
resource "aws_s3_bucket_metric" "primary_entire_bucket" {
  bucket = var.primary_bucket
  name   = "EntireBucket"
}

resource "aws_cloudwatch_metric_alarm" "chaos_stop" {
  for_each = local.cr_stop_alarms

  alarm_name          = each.value.name
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = 60
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  # Continuous signals (docs/signals.json `cadence`) breach when silent: FIS then stops the
  # experiment, and the runner refuses to start while the alarm is not OK. Event counts treat
  # silence as zero. crates/iac-check checks the rule against the catalogue.
  treat_missing_data = each.value.missing
}

# The quote-latency SLI as the SLO file defines it (infra/slo/slos.json, quote-latency): the
# share of quote probes that answered 2xx within 900 ms, from uptime-probe's own counts. Metric
# math over the two counters: no metric has to exist for the ratio itself.
resource "aws_cloudwatch_metric_alarm" "chaos_stop_quote_latency" {
  alarm_name          = "chaos-stop-quote-latency"
  alarm_description   = "Fewer than 90 % of quotes within 900 ms (uptime-probe, target quote): stops the geocoding-dns experiment."
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 90
  # uptime-probe probes quote every minute: silence means the probe or the API is down.
  treat_missing_data = "breaching"

  metric_query {
    id          = "good_ratio"
    expression  = "100 * (1 - slow / requests)"
    label       = "quotes within 900 ms (%)"
    return_data = true
  }
  metric_query {
    id = "slow"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "probe_slow_requests"
      dimensions  = { environment = var.environment, function = "uptime-probe-${var.environment}", target = "quote" }
      stat        = "Sum"
      period      = 60
    }
  }
  metric_query {
    id = "requests"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "probe_requests"
      dimensions  = { environment = var.environment, function = "uptime-probe-${var.environment}", target = "quote" }
      stat        = "Sum"
      period      = 60
    }
  }
}

# ---- FIS: role, log group, experiment templates ------------------------------------------

data "aws_iam_policy_document" "fis_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["fis.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "fis" {
  name               = "${local.cr_name}-fis"
  assume_role_policy = data.aws_iam_policy_document.fis_assume.json
}

# What the four templates' actions do, limited to the tagged targets where IAM allows it.
data "aws_iam_policy_document" "fis" {
  #checkov:skip=CKV_AWS_111:FIS actions (ecs:StopTask, ec2 network ACL swaps, ssm:SendCommand) take targets chosen at run time by tag; where IAM supports it the statements are conditioned on the experiment tag.
  #checkov:skip=CKV_AWS_356:Same reason: the FIS targets are selected by tag at run time, so resource ARNs are not known here.
  #checkov:skip=CKV_AWS_109:The role is assumed only by fis.amazonaws.com for the four registered templates.
  statement {
    sid       = "EcsTasks"
    actions   = ["ecs:DescribeTasks", "ecs:ListTasks", "ecs:StopTask"]
    resources = ["*"]
  }

  # aws:ecs:task-network-latency runs through SSM on the FIS agent sidecar of the task.
  statement {
    sid = "EcsTaskFaultsViaSsm"
    actions = [
      "ssm:SendCommand", "ssm:ListCommands", "ssm:CancelCommand", "ssm:GetCommandInvocation",
      "ssm:DescribeInstanceInformation", "ssm:AddTagsToResource", "ssm:CreateActivation",
      "ssm:DeleteActivation", "ssm:DeregisterManagedInstance", "iam:PassRole",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "Ec2Describe"
    actions   = ["ec2:DescribeInstances", "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeManagedPrefixLists", "ec2:GetManagedPrefixListEntries", "ec2:DescribeNetworkAcls"]
    resources = ["*"]
  }

  # aws:network:disrupt-connectivity builds a network ACL, swaps it in and back.
  statement {
    sid       = "NetworkAclBlackhole"
    actions   = ["ec2:CreateNetworkAcl", "ec2:CreateNetworkAclEntry", "ec2:DeleteNetworkAcl", "ec2:ReplaceNetworkAclAssociation", "ec2:CreateTags"]
    resources = ["*"]
  }

  statement {
    sid       = "PauseReplication"
    actions   = ["s3:PutReplicationConfiguration", "s3:GetReplicationConfiguration", "s3:ListAllMyBuckets", "tag:GetResources", "s3:PauseReplication"]
    resources = ["*"]
  }

  statement {
    sid       = "RdsFailover"
    actions   = ["rds:RebootDBInstance", "rds:DescribeDBInstances"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/chaos-target"
      values   = [var.chaos_targets.primary_db]
    }
  }

  statement {
    sid       = "ExperimentLog"
    actions   = ["logs:CreateLogDelivery", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "fis" {
  name   = "fis-actions"
  role   = aws_iam_role.fis.id
  policy = data.aws_iam_policy_document.fis.json
}

resource "aws_cloudwatch_log_group" "fis" {
  #checkov:skip=CKV_AWS_338:Retention follows var.log_retention_days like every log group of the suite; the postmortem in S3 is the durable record.
  #checkov:skip=CKV_AWS_158:Experiment logs hold no secrets; the account's default encryption applies (var.log_kms_key_arn is for the functions).
  name              = "/aws/fis/${local.cr_name}"
  retention_in_days = var.log_retention_days
}

locals {
  cr_alarm_arn = merge(
    { for k, a in aws_cloudwatch_metric_alarm.chaos_stop : k => a.arn },
    { quote_latency = aws_cloudwatch_metric_alarm.chaos_stop_quote_latency.arn },
  )
}

# rq-queue: 200 ms towards Redis on one worker task for 5 min, then one worker task stopped.
# The worker task definition needs the FIS agent sidecar and enableFaultInjection.
resource "aws_fis_experiment_template" "rq_queue" {
  description = "rq-queue: latency to Redis and a worker crash (docs/realtime/rq_recovery.md)"
  role_arn    = aws_iam_role.fis.arn

  stop_condition {
    source = "aws:cloudwatch:alarm"
    value  = local.cr_alarm_arn.api_availability
  }
  stop_condition {
    source = "aws:cloudwatch:alarm"
    value  = local.cr_alarm_arn.rq_backlog
  }

  action {
    name      = "redis-latency"
    action_id = "aws:ecs:task-network-latency"
    parameter {
      key   = "duration"
      value = "PT5M"
    }
    parameter {
      key   = "delayMilliseconds"
      value = "200"
    }
    parameter {
      key   = "sources"
      value = var.chaos_redis_host
    }
    target {
      key   = "Tasks"
      value = "rq-workers"
    }
  }

  action {
    name        = "crash-worker"
    action_id   = "aws:ecs:stop-task"
    start_after = ["redis-latency"]
    target {
      key   = "Tasks"
      value = "rq-workers"
    }
  }

  target {
    name           = "rq-workers"
    resource_type  = "aws:ecs:task"
    selection_mode = "COUNT(1)"
    resource_tag {
      key   = "chaos-target"
      value = var.chaos_targets.rq_workers
    }
  }

  log_configuration {
    log_schema_version = 2
    cloudwatch_logs_configuration {
      log_group_arn = "${aws_cloudwatch_log_group.fis.arn}:*"
    }
  }

  tags = { Name = "chaos-rq-queue", Function = "chaos-runner" }
}

# s3-storage: FIS has no S3 throttle/5xx action; the app subnet's S3 traffic is cut with a
# network ACL (scope s3) for 2 min, and replication to the DR bucket paused for 10 min.
resource "aws_fis_experiment_template" "s3_storage" {
  description = "s3-storage: S3 connectivity loss and paused replication (docs/files/s3_failover.md)"
  role_arn    = aws_iam_role.fis.arn

  stop_condition {
    source = "aws:cloudwatch:alarm"
    value  = local.cr_alarm_arn.api_availability
  }
  stop_condition {
    source = "aws:cloudwatch:alarm"
    value  = local.cr_alarm_arn.s3_5xx
  }

  action {
    name      = "s3-blackhole"
    action_id = "aws:network:disrupt-connectivity"
    parameter {
      key   = "duration"
      value = "PT2M"
    }
    parameter {
      key   = "scope"
      value = "s3"
    }
    target {
      key   = "Subnets"
      value = "app-subnet"
    }
  }

  action {
    name      = "pause-replication"
    action_id = "aws:s3:bucket-pause-replication"
    parameter {
      key   = "duration"
      value = "PT10M"
    }
    target {
      key   = "Buckets"
      value = "primary-bucket"
    }
  }

  target {
    name           = "app-subnet"
    resource_type  = "aws:ec2:subnet"
    selection_mode = "COUNT(1)"
    resource_tag {
      key   = "chaos-target"
      value = var.chaos_targets.app_subnet
    }
  }

  target {
    name           = "primary-bucket"
    resource_type  = "aws:s3:bucket"
    selection_mode = "COUNT(1)"
    resource_arns  = ["arn:${local.partition}:s3:::${var.primary_bucket}"]
  }

  log_configuration {
    log_schema_version = 2
    cloudwatch_logs_configuration {
      log_group_arn = "${aws_cloudwatch_log_group.fis.arn}:*"
    }
  }

  tags = { Name = "chaos-s3-storage", Function = "chaos-runner" }
}

# geocoding-dns: FIS has no DNS action. The documented workaround: aws:ssm:send-command runs a
# shell script that blackholes the primary provider's hostname in /etc/hosts for 5 minutes and
# restores the file afterwards (also when FIS cancels the command).
locals {
  cr_hosts_blackhole = <<-SH
    set -eu
    cp /etc/hosts /etc/hosts.chaos-runner.bak
    restore() { cp /etc/hosts.chaos-runner.bak /etc/hosts; rm -f /etc/hosts.chaos-runner.bak; }
    trap restore EXIT INT TERM
    echo "0.0.0.0 ${var.chaos_geocoder_primary_host} # chaos-runner" >> /etc/hosts
    sleep 300
  SH
}

resource "aws_fis_experiment_template" "geocoding_dns" {
  description = "geocoding-dns: primary geocoder blackholed via SSM /etc/hosts (docs/integration/geocoding_failover.md)"
  role_arn    = aws_iam_role.fis.arn

  stop_condition {
    source = "aws:cloudwatch:alarm"
    value  = local.cr_alarm_arn.quote_latency
  }

  action {
    name      = "blackhole-geocoder"
    action_id = "aws:ssm:send-command"
    parameter {
      key   = "documentArn"
      value = "arn:${local.partition}:ssm:${local.region}::document/AWS-RunShellScript"
    }
    parameter {
      key   = "documentParameters"
      value = jsonencode({ commands = [local.cr_hosts_blackhole], executionTimeout = ["600"] })
    }
    parameter {
      key   = "duration"
      value = "PT6M"
    }
    target {
      key   = "Instances"
      value = "app-instance"
    }
  }

  target {
    name           = "app-instance"
    resource_type  = "aws:ec2:instance"
    selection_mode = "COUNT(1)"
    resource_tag {
      key   = "chaos-target"
      value = var.chaos_targets.app
    }
    filter {
      path   = "State.Name"
      values = ["running"]
    }
  }

  log_configuration {
    log_schema_version = 2
    cloudwatch_logs_configuration {
      log_group_arn = "${aws_cloudwatch_log_group.fis.arn}:*"
    }
  }

  tags = { Name = "chaos-geocoding-dns", Function = "chaos-runner" }
}

# postgres-failover (quarterly): reboot the Multi-AZ primary with a forced failover.
resource "aws_fis_experiment_template" "postgres_failover" {
  description = "postgres-failover: primary crash, standby promoted (docs/db/disaster_recovery.md)"
  role_arn    = aws_iam_role.fis.arn

  stop_condition {
    source = "aws:cloudwatch:alarm"
    value  = local.cr_alarm_arn.api_availability
  }
  stop_condition {
    source = "aws:cloudwatch:alarm"
    value  = local.cr_alarm_arn.db_connections
  }

  action {
    name      = "failover-primary"
    action_id = "aws:rds:reboot-db-instances"
    parameter {
      key   = "forceFailover"
      value = "true"
    }
    target {
      key   = "DBInstances"
      value = "primary-db"
    }
  }

  target {
    name           = "primary-db"
    resource_type  = "aws:rds:db"
    selection_mode = "COUNT(1)"
    resource_tag {
      key   = "chaos-target"
      value = var.chaos_targets.primary_db
    }
  }

  log_configuration {
    log_schema_version = 2
    cloudwatch_logs_configuration {
      log_group_arn = "${aws_cloudwatch_log_group.fis.arn}:*"
    }
  }

  tags = { Name = "chaos-postgres-failover", Function = "chaos-runner" }
}

# ---- Function -------------------------------------------------------------------------

locals {
  cr_templates = [
    aws_fis_experiment_template.rq_queue,
    aws_fis_experiment_template.s3_storage,
    aws_fis_experiment_template.geocoding_dns,
    aws_fis_experiment_template.postgres_failover,
  ]
  cr_state_prefix   = "chaos-runner/state/"
  cr_report_objects = "arn:${local.partition}:s3:::${var.report_bucket}/${var.report_prefix}chaos/*"
  cr_state_objects  = "arn:${local.partition}:s3:::${var.report_bucket}/${local.cr_state_prefix}*"
  cr_registry       = var.chaos_experiments_uri == null ? null : regex("^s3://([^/]+)/(.+)$", var.chaos_experiments_uri)
}

data "aws_iam_policy_document" "chaos_runner" {
  #checkov:skip=CKV_AWS_356:fis:ListExperimentTemplates and cloudwatch:DescribeAlarms/GetMetricStatistics do not support resource-level permissions.
  statement {
    sid       = "ReadTemplates"
    actions   = ["fis:GetExperimentTemplate", "fis:ListExperimentTemplates"]
    resources = ["*"]
  }

  # Start only the four templates; the experiment resources are created by the start.
  # aws_fis_experiment_template exports no `arn` in provider 5.x (only id): the ARN is built
  # from the id (found by `make plan`; `terraform validate` does not see it).
  statement {
    sid       = "StartOwnTemplates"
    actions   = ["fis:StartExperiment"]
    resources = concat([for t in local.cr_templates : "arn:${local.partition}:fis:${local.region}:${local.account_id}:experiment-template/${t.id}"], ["arn:${local.partition}:fis:${local.region}:${local.account_id}:experiment/*"])
  }

  # StartExperiment with tags (chaos-run-id, chaos-experiment, owner) needs TagResource.
  statement {
    sid       = "FollowAndStop"
    actions   = ["fis:GetExperiment", "fis:StopExperiment", "fis:TagResource"]
    resources = ["arn:${local.partition}:fis:${local.region}:${local.account_id}:experiment/*"]
  }

  # StartExperiment passes the templates' role to FIS.
  statement {
    sid       = "PassFisRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.fis.arn]
  }

  statement {
    sid       = "AlarmsAndProbes"
    actions   = ["cloudwatch:DescribeAlarms", "cloudwatch:GetMetricStatistics"]
    resources = ["*"]
  }

  statement {
    sid       = "StateAndReports"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [local.cr_report_objects, local.cr_state_objects]
  }

  # Listing the active markers and the month's journals; reads of missing state keys must be
  # 404, not 403 (see manifest_diff.tf).
  statement {
    sid       = "ListOwnPrefixes"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.report_bucket}"]
  }

  dynamic "statement" {
    for_each = local.cr_registry == null ? [] : [1]
    content {
      sid       = "ReadRegistry"
      actions   = ["s3:GetObject"]
      resources = ["arn:${local.partition}:s3:::${local.cr_registry[0]}/${local.cr_registry[1]}"]
    }
  }
}

module "chaos_runner" {
  source = "./modules/lambda_function"

  function_name = local.cr_name
  description   = "FIS chaos experiments on the first Friday (${var.deployment})"
  zip_path      = local.cr_zip

  # Control-plane calls and a small JSON journal: memory only buys CPU for TLS here.
  memory_mb = 256
  # Follows an experiment for up to 15 minutes, then a later firing resumes it.
  timeout_s = 900

  # A retry resumes the saved run (same request id, same FIS client token).
  maximum_retry_attempts    = 2
  maximum_event_age_seconds = 3600

  log_retention_days = var.log_retention_days
  policy_json        = data.aws_iam_policy_document.chaos_runner.json

  # Exactly the variables the code reads (shared/src/config.rs, src/config.rs).
  environment = {
    ENVIRONMENT              = var.environment
    DEPLOYMENT               = var.deployment
    REPORT_BUCKET            = var.report_bucket
    REPORT_PREFIX            = var.report_prefix
    METRICS_NAMESPACE        = var.metrics_namespace
    LOG_MASK_FIELDS          = join(",", var.log_mask_fields)
    CHAOS_EXPERIMENTS        = var.chaos_experiments_uri == null ? "" : var.chaos_experiments_uri
    CHAOS_ALLOW_PRODUCTION   = tostring(var.chaos_allow_production)
    CHAOS_DRY_RUN            = tostring(var.chaos_dry_run)
    CHAOS_STATE_PREFIX       = local.cr_state_prefix
    CHAOS_POLL_MS            = tostring(var.chaos_poll_ms)
    CHAOS_DEADLINE_MARGIN_MS = "30000"
  }

  tags = { Function = "chaos-runner" }
}

# ---- Schedule: every 15 minutes on Fridays ----------------------------------------------

data "aws_iam_policy_document" "cr_scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "cr_scheduler" {
  name               = "${local.cr_name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.cr_scheduler_assume.json
}

data "aws_iam_policy_document" "cr_scheduler" {
  statement {
    sid       = "InvokeChaosRunnerOnly"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.chaos_runner.function_arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [module.chaos_runner.dlq_arn]
  }
}

resource "aws_iam_role_policy" "cr_scheduler" {
  name   = "invoke-chaos-runner"
  role   = aws_iam_role.cr_scheduler.id
  policy = data.aws_iam_policy_document.cr_scheduler.json
}

resource "aws_scheduler_schedule" "chaos_runner" {
  #checkov:skip=CKV_AWS_297:The input holds no secrets; Scheduler encrypts it with an AWS owned key.
  name                         = "${local.cr_name}-fridays"
  description                  = "chaos-runner: resume runs; start what is due (first Friday; database quarterly)"
  schedule_expression          = var.chaos_schedule_expression
  schedule_expression_timezone = "UTC"
  state                        = var.chaos_schedule_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = module.chaos_runner.function_arn
    role_arn = aws_iam_role.cr_scheduler.arn

    # Literal JSON so Scheduler substitutes its placeholder (jsonencode would escape < >).
    # scheduled_time, not the clock, decides which day is judged.
    input = chomp(<<-JSON
      {"source": "scheduler", "scheduled_time": "<aws.scheduler.scheduled-time>"}
    JSON
    )

    retry_policy {
      maximum_event_age_in_seconds = 900
      maximum_retry_attempts       = 2
    }

    dead_letter_config {
      arn = module.chaos_runner.dlq_arn
    }
  }

  depends_on = [aws_iam_role_policy.cr_scheduler]
}

output "chaos_runner_function_name" {
  value = module.chaos_runner.function_name
}

output "chaos_fis_template_ids" {
  value = {
    rq-queue          = aws_fis_experiment_template.rq_queue.id
    s3-storage        = aws_fis_experiment_template.s3_storage.id
    geocoding-dns     = aws_fis_experiment_template.geocoding_dns.id
    postgres-failover = aws_fis_experiment_template.postgres_failover.id
  }
}
