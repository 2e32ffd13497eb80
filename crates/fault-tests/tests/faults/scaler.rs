//! worker-scaler through faults on its scaling target: the ECS calls (DescribeServices,
//! UpdateService) go through the fault proxy, with answers lost after ECS acted and a burst of
//! 503/500; Redis is the machine's, direct (its hangs and cuts have their own test in
//! functions/worker-scaler/tests).
//!
//! Invariant, checked after every delivery through a client that talks to moto directly: the
//! service's desired count is only ever the base or one doubling of it; a lost UpdateService
//! answer and the scheduler's redelivery of the same check never double twice. At the end the
//! count is the one a clean night gives.

use chrono::{DateTime, TimeZone, Utc};
use fault_proxy::{ErrorKind, ResetPoint};
use fault_tests::{deliver_until_ok, Faulted, BURST};
use shared::config::Vars;
use worker_scaler::config::Settings;
use worker_scaler::run::{run_check, Check, Status};
use worker_scaler::target::AwsTarget;

const REDIS: &str = "redis://127.0.0.1:6379";

async fn ecs_service(sdk: &aws_config::SdkConfig, cluster: &str, service: &str) {
    use aws_sdk_ecs::types::ContainerDefinition;
    let ecs = aws_sdk_ecs::Client::new(sdk);
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .expect("cluster");
    ecs.register_task_definition()
        .family("rq-worker")
        .container_definitions(
            ContainerDefinition::builder()
                .name("worker")
                .image("registry.example.com/app:latest")
                .memory(512)
                .build(),
        )
        .send()
        .await
        .expect("task definition");
    ecs.create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition("rq-worker")
        .desired_count(2)
        .send()
        .await
        .expect("service");
}

async fn desired(ecs: &aws_sdk_ecs::Client, cluster: &str, service: &str) -> i32 {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .expect("describe (direct to moto)");
    out.services()[0].desired_count()
}

/// RQ's queue list with `n` job ids (the scaler counts `LLEN rq:queue:NAME`).
async fn backlog(queue: &str, n: usize) {
    let mut con = redis::Client::open(REDIS)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("the machine's Redis on 127.0.0.1:6379");
    let key = format!("rq:queue:{queue}");
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut con)
        .await
        .expect("del");
    let ids: Vec<String> = (0..n).map(|i| format!("job-{i}")).collect();
    let _: () = redis::cmd("RPUSH")
        .arg(&key)
        .arg(ids)
        .query_async(&mut con)
        .await
        .expect("rpush");
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, h, m, 0)
        .single()
        .expect("time")
}

#[tokio::test]
async fn lost_update_answers_and_redeliveries_never_double_twice() {
    let (_g, m) = suite_tests::exclusive_moto().await;
    let direct = m.clients().await;
    let tag = format!("fault{}", std::process::id());
    let (cluster, service) = (format!("{tag}-c"), "rq-worker".to_string());
    ecs_service(&direct.sdk, &cluster, &service).await;
    let queue = format!("{tag}-default");
    backlog(&queue, 300).await;
    let settings = Settings::from_vars(&Vars::from_pairs([
        ("SCALER_QUEUES", queue.as_str()),
        ("SCALER_TARGET", &format!("ecs:{cluster}/{service}")),
        ("SCALER_REDIS_URL", REDIS),
        ("SCALER_STATE_PREFIX", &format!("{tag}:scaler:")),
        ("SCALER_CONSECUTIVE_CHECKS", "1"),
        ("SCALER_COOLDOWN_SECONDS", "900"),
    ]))
    .expect("settings");
    let f = Faulted::new(m).await;
    let target = AwsTarget::new(&settings.target, &f.clients.sdk);
    let client = redis::Client::open(REDIS).expect("redis url");
    let ecs = aws_sdk_ecs::Client::new(&direct.sdk);
    let check = |now: DateTime<Utc>, token: String| {
        let (settings, client, target) = (&settings, &client, &target);
        async move {
            let o = run_check(
                settings,
                client,
                target,
                &Check {
                    check_id: Some(now.to_rfc3339()),
                    dry_run: false,
                    now,
                    token,
                },
            )
            .await?;
            Ok(serde_json::json!({"status": format!("{:?}", o.status)}))
        }
    };
    let allowed = |n: i32| assert!(n == 2 || n == 4, "desired count {n}: doubled twice");

    // 22:00, backlog 300, one check needed: the doubling's answer lost half of the time, and
    // a burst on every ECS call.
    f.proxy.seed(51);
    f.proxy
        .connection_resets(0.5, BURST, ResetPoint::AfterUpstream);
    let mut n = 0;
    deliver_until_ok(
        10,
        || {
            n += 1;
            check(at(22, 0), format!("inv-{n}"))
        },
        || async { allowed(desired(&ecs, &cluster, &service).await) },
    )
    .await;
    let lost = f.proxy.stats();
    assert!(lost.resets > 0, "answers were lost: {lost:?}");
    f.proxy.clear();
    assert_eq!(desired(&ecs, &cluster, &service).await, 4);

    // The scheduler delivers 22:00 again, and 22:05 comes inside the cool-down, both through
    // a burst: nothing more changes.
    f.proxy.seed(52);
    f.proxy.error_burst(0.3, BURST, ErrorKind::Mixed);
    for (i, t) in [at(22, 0), at(22, 5)].into_iter().enumerate() {
        let out = deliver_until_ok(
            10,
            || check(t, format!("again-{i}")),
            || async { allowed(desired(&ecs, &cluster, &service).await) },
        )
        .await;
        assert_ne!(
            out.result["status"],
            format!("{:?}", Status::Scaled),
            "{t}: {}",
            out.result
        );
    }
    f.proxy.clear();
    assert_eq!(desired(&ecs, &cluster, &service).await, 4);
}
