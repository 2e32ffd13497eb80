//! Chaos experiments against moto's FIS and CloudWatch: moto's FIS state manager, the
//! experiment registry's `rq-queue` experiment, the stop alarm and a FIS experiment template
//! like infra/chaos_runner.tf's, and a local health endpoint for the steady-state HTTP probes.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use aws_sdk_fis::types::{
    CreateExperimentTemplateActionInput, CreateExperimentTemplateStopConditionInput,
    CreateExperimentTemplateTargetInput,
};
use serde_json::{json, Value};

use crate::{moto_post, Moto};

const ACCOUNT: &str = "123456789012";

/// Sets how moto's state manager advances FIS experiments: `{"progression": "immediate"}`
/// (the default) reports the final state at once; `{"progression": "manual", "times": n}`
/// moves one state every n GetExperiment calls.
pub async fn set_progression(m: &Moto, transition: Value) {
    let status = moto_post(
        m,
        "/moto-api/state-manager/set-transition",
        &json!({"model_name": "fis::experiment", "transition": transition}),
    )
    .await;
    assert!((200..300).contains(&status), "set-transition: {status}");
}

/// A registry document (rotation `sre`: amara, bruno, chen from 2026-01) with these
/// experiments.
pub fn registry(experiments: Vec<Value>) -> Value {
    json!({
        "version": 1,
        "rotations": {"sre": {"anchor_month": "2026-01", "members": ["amara", "bruno", "chen"]}},
        "experiments": experiments
    })
}

/// The monthly `rq-queue` experiment (template `chaos-rq-queue`, stop alarm `chaos-stop-api`,
/// one task) whose steady state is one HTTP probe named `health` of `url`.
pub fn rq_queue(url: &str) -> Value {
    json!({
        "name": "rq-queue",
        "title": "RQ latency and worker crash",
        "hypothesis": "The backlog drains and the API stays up",
        "cadence": "monthly",
        "runbook": "docs/realtime/rq_recovery.md",
        "owner_rotation": "sre",
        "blast_radius": {"selector": "tag chaos-target=rq-workers", "count": 1},
        "stop_conditions": [{"alarm": "chaos-stop-api"}],
        "steady_state": [
            {"name": "health", "http": {"url": url, "timeout_ms": 1000, "attempts": 3},
             "tolerance": {"status": [200], "max_latency_ms": 900, "max_failures": 1}}
        ],
        "fis_template": {"name": "chaos-rq-queue"}
    })
}

/// A stop-condition alarm: API availability (PlatformPlaybook/api_availability) below 99.5.
pub async fn put_stop_alarm(cw: &aws_sdk_cloudwatch::Client, name: &str) {
    cw.put_metric_alarm()
        .alarm_name(name)
        .namespace("PlatformPlaybook")
        .metric_name("api_availability")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(99.5)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::LessThanThreshold)
        .send()
        .await
        .expect("alarm");
}

/// A FIS experiment template like infra/chaos_runner.tf's: stop the selected ECS worker
/// tasks, tagged `Name` = `name`.
pub struct Template<'a> {
    pub name: &'a str,
    /// The stop condition's CloudWatch alarm; `None` is the `none` source.
    pub stop_alarm: Option<&'a str>,
    /// The target's selection mode (`COUNT(1)`, `ALL`, …).
    pub selection: &'a str,
    pub client_token: &'a str,
    pub description: &'a str,
}

impl Template<'_> {
    /// Creates the template through the FIS API; returns its id.
    pub async fn create(&self, fis: &aws_sdk_fis::Client) -> String {
        let stop = match self.stop_alarm {
            Some(a) => CreateExperimentTemplateStopConditionInput::builder()
                .source("aws:cloudwatch:alarm")
                .value(format!("arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:{a}"))
                .build()
                .expect("stop"),
            None => CreateExperimentTemplateStopConditionInput::builder()
                .source("none")
                .build()
                .expect("stop"),
        };
        let target = CreateExperimentTemplateTargetInput::builder()
            .resource_type("aws:ecs:task")
            .selection_mode(self.selection)
            .resource_arns(format!(
                "arn:aws:ecs:us-east-1:{ACCOUNT}:task/workers/0123456789abcdef"
            ))
            .build()
            .expect("target");
        let action = CreateExperimentTemplateActionInput::builder()
            .action_id("aws:ecs:stop-task")
            .targets("Tasks", "workers")
            .build()
            .expect("action");
        let out = fis
            .create_experiment_template()
            .client_token(self.client_token)
            .description(self.description)
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/chaos-fis"))
            .stop_conditions(stop)
            .targets("workers", target)
            .actions("crash-worker", action)
            .tags("Name", self.name)
            .send()
            .await
            .expect("template");
        out.experiment_template()
            .and_then(|t| t.id())
            .expect("template id")
            .to_string()
    }
}

/// A tiny HTTP server answering every request with the status held in the returned cell
/// (200 to begin with); returns its `/healthz` URL and the cell.
pub async fn health_server() -> (String, Arc<AtomicU16>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let status = Arc::new(AtomicU16::new(200));
    let s = status.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let code = s.load(Ordering::SeqCst);
                let body = if code == 200 { "ok" } else { "unavailable" };
                let resp = format!(
                    "HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (format!("http://127.0.0.1:{port}/healthz"), status)
}
