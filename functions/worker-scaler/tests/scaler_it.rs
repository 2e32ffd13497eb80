//! worker-scaler against the machine's real Redis (jobs enqueued the way RQ does) and moto
//! (ECS UpdateService, Auto Scaling SetDesiredCapacity), over a simulated clock.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use shared::config::Vars;
use worker_scaler::config::Settings;
use worker_scaler::policy::{Action, Reason};
use worker_scaler::run::{run_check, Check, Outcome, Status};
use worker_scaler::target::{AwsTarget, ScalingTarget};

const REDIS: &str = "redis://127.0.0.1:6379";

/// A prefix unique to this test run, so parallel tests never share queues or state.
fn unique(name: &str) -> String {
    format!(
        "it{}-{name}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the machine's Redis on 127.0.0.1:6379")
}

/// What `Queue.enqueue` does (rq/queue.py): the job hash, the id pushed on the queue list, the
/// queue registered in `rq:queues`, in one MULTI. `ran_before` adds the `started_at` a job
/// keeps when RQ re-enqueues it for a retry.
async fn rq_enqueue(
    con: &mut redis::aio::MultiplexedConnection,
    queue: &str,
    n: usize,
    ran_before: usize,
) -> Vec<String> {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let mut ids = vec![];
    let mut p = redis::pipe();
    p.atomic();
    for i in 0..n {
        let id = uuid::Uuid::new_v4().to_string();
        let key = format!("rq:job:{id}");
        let mut fields: Vec<(&str, String)> = vec![
            ("status", "queued".into()),
            ("origin", queue.into()),
            ("created_at", now.clone()),
            ("enqueued_at", now.clone()),
            ("description", format!("app.tasks.export(order_id={i})")),
            ("timeout", "180".into()),
            ("result_ttl", "500".into()),
            ("data", "x\u{9c}compressed-pickle".into()),
        ];
        if i < ran_before {
            fields.push(("started_at", now.clone()));
            fields.push(("retries_left", "2".into()));
        }
        p.cmd("HSET").arg(&key).arg(fields);
        p.cmd("RPUSH").arg(format!("rq:queue:{queue}")).arg(&id);
        p.cmd("SADD")
            .arg("rq:queues")
            .arg(format!("rq:queue:{queue}"));
        ids.push(id);
    }
    let _: () = p.query_async(con).await.unwrap();
    ids
}

/// A worker as `Worker.register_birth` leaves it: the hash with a TTL, the global set and the
/// per-queue set.
async fn rq_worker(
    con: &mut redis::aio::MultiplexedConnection,
    queue: &str,
    name: &str,
    alive: bool,
) {
    let key = format!("rq:worker:{name}");
    let mut p = redis::pipe();
    if alive {
        p.cmd("HSET").arg(&key).arg(&[
            ("birth", "2026-11-27T20:00:00Z"),
            ("last_heartbeat", "2026-11-27T20:00:00Z"),
            ("queues", queue),
            ("state", "busy"),
        ]);
        p.cmd("EXPIRE").arg(&key).arg(420);
    }
    p.cmd("SADD").arg("rq:workers").arg(&key);
    p.cmd("SADD").arg(format!("rq:workers:{queue}")).arg(&key);
    let _: () = p.query_async(con).await.unwrap();
}

async fn set_backlog(con: &mut redis::aio::MultiplexedConnection, queue: &str, n: usize) {
    let _: () = redis::cmd("DEL")
        .arg(format!("rq:queue:{queue}"))
        .query_async(con)
        .await
        .unwrap();
    if n > 0 {
        rq_enqueue(con, queue, n, 0).await;
    }
}

fn settings(queue: &str, target: &str, extra: &[(&str, &str)]) -> Settings {
    let prefix = format!("{}:", unique("scaler"));
    let mut pairs: Vec<(String, String)> = vec![
        ("SCALER_QUEUES".into(), queue.into()),
        ("SCALER_TARGET".into(), target.into()),
        ("SCALER_REDIS_URL".into(), REDIS.into()),
        ("SCALER_STATE_PREFIX".into(), prefix),
    ];
    for (k, v) in extra {
        pairs.push((k.to_string(), v.to_string()));
    }
    Settings::from_vars(&Vars::from_pairs(pairs)).expect("settings")
}

fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, h, m, 0).unwrap()
}

async fn check<T: ScalingTarget>(s: &Settings, t: &T, now: DateTime<Utc>) -> Outcome {
    let client = redis::Client::open(s.redis_url.as_str()).unwrap();
    run_check(
        s,
        &client,
        t,
        &Check {
            check_id: Some(now.to_rfc3339()),
            dry_run: false,
            now,
            token: uuid::Uuid::new_v4().to_string(),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("check at {now}: {e}"))
}

async fn ecs_service(
    clients: &shared::aws::AwsClients,
    cluster: &str,
    service: &str,
    desired: i32,
) -> aws_sdk_ecs::Client {
    use aws_sdk_ecs::types::ContainerDefinition;
    let ecs = aws_sdk_ecs::Client::new(&clients.sdk);
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .expect("create cluster");
    ecs.register_task_definition()
        .family("rq-worker")
        .container_definitions(
            ContainerDefinition::builder()
                .name("worker")
                .image("registry.example.com/app:latest")
                .memory(512)
                .command("rq")
                .command("worker")
                .build(),
        )
        .send()
        .await
        .expect("task definition");
    ecs.create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition("rq-worker")
        .desired_count(desired)
        .send()
        .await
        .expect("create service");
    ecs
}

async fn ecs_desired(ecs: &aws_sdk_ecs::Client, cluster: &str, service: &str) -> i32 {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .unwrap();
    out.services()[0].desired_count()
}

/// A night of checks every 5 minutes against an ECS service: building, doubling, cool-down,
/// doubling again to the cap, holding in the hysteresis band, the drain after midnight, and
/// the return to base when the window closes at 02:00. Every change is checked in moto.
#[tokio::test]
async fn ecs_service_over_a_night_crossing_midnight() {
    let (_guard, moto) = suite_tests::exclusive_moto().await;
    let clients = moto.clients().await;
    let ecs = ecs_service(&clients, "workers", "rq-worker", 2).await;
    let queue = unique("default");
    let mut con = redis().await;
    rq_enqueue(&mut con, &queue, 150, 0).await;
    let s = settings(
        &queue,
        "ecs:workers/rq-worker",
        &[
            ("SCALER_CONSECUTIVE_CHECKS", "2"),
            ("SCALER_COOLDOWN_SECONDS", "900"),
        ],
    );
    let target = AwsTarget::new(&s.target, &clients.sdk);

    let expect = |o: &Outcome, status: Status, reason: Reason, to: u32| {
        let d = o.decision.as_ref().expect("a decision");
        assert_eq!((&o.status, d.reason, d.to), (&status, reason, to), "{o:?}");
    };
    // 19:55: high backlog, but outside the window.
    let o = check(&s, &target, at(27, 19, 55)).await;
    expect(&o, Status::Held, Reason::Steady, 2);
    assert_eq!(o.snapshot.as_ref().unwrap().backlog(), 150);
    let o = check(&s, &target, at(27, 20, 0)).await;
    expect(&o, Status::Held, Reason::BacklogBuilding, 2);
    let o = check(&s, &target, at(27, 20, 5)).await;
    expect(&o, Status::Scaled, Reason::BacklogHigh, 4);
    assert_eq!(ecs_desired(&ecs, "workers", "rq-worker").await, 4);
    // The scheduler delivers 20:05 again: not counted twice, nothing changes.
    let o = check(&s, &target, at(27, 20, 5)).await;
    assert_eq!(o.status, Status::Duplicate);
    let o = check(&s, &target, at(27, 20, 10)).await;
    expect(&o, Status::Held, Reason::BacklogBuilding, 4);
    // N reached again at 20:15, but the last change was 10 minutes ago.
    let o = check(&s, &target, at(27, 20, 15)).await;
    expect(&o, Status::Held, Reason::Cooldown, 4);
    assert_eq!(o.decision.as_ref().unwrap().cooldown_left_seconds, 300);
    let o = check(&s, &target, at(27, 20, 20)).await;
    expect(&o, Status::Scaled, Reason::BacklogHigh, 8);
    assert_eq!(ecs_desired(&ecs, "workers", "rq-worker").await, 8);
    let o = check(&s, &target, at(27, 20, 25)).await;
    expect(&o, Status::Held, Reason::BacklogBuilding, 8);
    let o = check(&s, &target, at(27, 20, 30)).await;
    expect(&o, Status::Held, Reason::AtCap, 8);
    // 50 jobs: between the marks, hold (hysteresis).
    set_backlog(&mut con, &queue, 50).await;
    let o = check(&s, &target, at(27, 23, 55)).await;
    expect(&o, Status::Held, Reason::WithinBand, 8);
    // After midnight, drained: back to base.
    set_backlog(&mut con, &queue, 3).await;
    let o = check(&s, &target, at(28, 0, 5)).await;
    expect(&o, Status::Scaled, Reason::Drained, 2);
    assert_eq!(ecs_desired(&ecs, "workers", "rq-worker").await, 2);
    // A new burst after midnight doubles again...
    set_backlog(&mut con, &queue, 400).await;
    check(&s, &target, at(28, 0, 30)).await;
    let o = check(&s, &target, at(28, 0, 35)).await;
    expect(&o, Status::Scaled, Reason::BacklogHigh, 4);
    // ...and the window's end at 02:00 brings it back, backlog or not.
    let o = check(&s, &target, at(28, 1, 55)).await;
    assert!(o.decision.unwrap().in_window);
    let o = check(&s, &target, at(28, 2, 0)).await;
    expect(&o, Status::Scaled, Reason::OutsideWindow, 2);
    assert_eq!(ecs_desired(&ecs, "workers", "rq-worker").await, 2);
}

/// The Auto Scaling target: SetDesiredCapacity, capped by the group's MaxSize.
#[tokio::test]
async fn auto_scaling_group_capped_by_its_max_size() {
    let (_guard, moto) = suite_tests::exclusive_moto().await;
    let clients = moto.clients().await;
    let asg = aws_sdk_autoscaling::Client::new(&clients.sdk);
    asg.create_launch_configuration()
        .launch_configuration_name("rq-worker")
        .image_id("ami-12c6146b")
        .instance_type("t3.small")
        .send()
        .await
        .expect("launch configuration");
    asg.create_auto_scaling_group()
        .auto_scaling_group_name("rq-workers")
        .launch_configuration_name("rq-worker")
        .min_size(1)
        .max_size(3)
        .desired_capacity(2)
        .availability_zones("us-east-1a")
        .send()
        .await
        .expect("group");
    let queue = unique("exports");
    let mut con = redis().await;
    rq_enqueue(&mut con, &queue, 120, 0).await;
    let s = settings(
        &queue,
        "asg:rq-workers",
        &[("SCALER_CONSECUTIVE_CHECKS", "1")],
    );
    let target = AwsTarget::new(&s.target, &clients.sdk);
    let o = check(&s, &target, at(27, 21, 0)).await;
    let d = o.decision.clone().unwrap();
    assert_eq!(
        (o.status, d.action, d.from, d.to),
        (Status::Scaled, Action::ScaleUp, 2, 3),
        "doubling 2 stops at MaxSize 3"
    );
    let g = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("rq-workers")
        .send()
        .await
        .unwrap();
    assert_eq!(g.auto_scaling_groups()[0].desired_capacity(), Some(3));
    let o = check(&s, &target, at(27, 21, 5)).await;
    assert_eq!(o.decision.unwrap().reason, Reason::AtCap);
    // Outside the window (after the cool-down): back to base.
    let o = check(&s, &target, at(28, 9, 0)).await;
    assert_eq!((o.status, o.decision.unwrap().to), (Status::Scaled, 2));
    let g = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("rq-workers")
        .send()
        .await
        .unwrap();
    assert_eq!(g.auto_scaling_groups()[0].desired_capacity(), Some(2));
}

/// Six invocations at once for the same check time: exactly one changes the service.
#[tokio::test]
async fn concurrent_invocations_apply_one_change() {
    let (_guard, moto) = suite_tests::exclusive_moto().await;
    let clients = moto.clients().await;
    let ecs = ecs_service(&clients, "c2", "svc", 2).await;
    let queue = unique("burst");
    let mut con = redis().await;
    rq_enqueue(&mut con, &queue, 300, 0).await;
    let s = settings(&queue, "ecs:c2/svc", &[("SCALER_CONSECUTIVE_CHECKS", "1")]);
    let target = AwsTarget::new(&s.target, &clients.sdk);
    let client = redis::Client::open(REDIS).unwrap();
    let now = at(27, 22, 0);
    let runs = (0..6).map(|i| {
        let (s, target, client) = (&s, &target, &client);
        async move {
            run_check(
                s,
                client,
                target,
                &Check {
                    // Manual invocations: no check id, so only the lock and the cool-down
                    // keep them from stacking changes.
                    check_id: None,
                    dry_run: false,
                    now,
                    token: format!("inv-{i}"),
                },
            )
            .await
            .expect("check")
        }
    });
    let outs = futures::future::join_all(runs).await;
    let scaled = outs.iter().filter(|o| o.status == Status::Scaled).count();
    assert_eq!(scaled, 1, "{outs:#?}");
    for o in &outs {
        assert!(
            matches!(o.status, Status::Scaled | Status::Busy | Status::Held),
            "{o:?}"
        );
        if o.status == Status::Held {
            assert_eq!(o.decision.as_ref().unwrap().reason, Reason::Cooldown);
        }
    }
    assert_eq!(ecs_desired(&ecs, "c2", "svc").await, 4);
}

/// The counts come from RQ's real keys: queue + intermediate backlog, started registry, dead
/// letters, retries (jobs that ran before), live workers only (a stale member is ignored).
#[tokio::test]
async fn rq_keys_are_counted() {
    let queue = unique("reports");
    let mut con = redis().await;
    rq_enqueue(&mut con, &queue, 7, 2).await;
    // A worker popped one job into the intermediate list (BLMOVE) and started another.
    let _: () = redis::cmd("LMOVE")
        .arg(format!("rq:queue:{queue}"))
        .arg(format!("rq:queue:{queue}:intermediate"))
        .arg("LEFT")
        .arg("RIGHT")
        .query_async(&mut con)
        .await
        .unwrap();
    let started = rq_enqueue(&mut con, &format!("{queue}-tmp"), 1, 1).await;
    let _: () = redis::cmd("ZADD")
        .arg(format!("rq:wip:{queue}"))
        .arg(1_900_000_000)
        .arg(&started[0])
        .query_async(&mut con)
        .await
        .unwrap();
    for i in 0..4 {
        let _: () = redis::cmd("ZADD")
            .arg(format!("rq:failed:{queue}"))
            .arg(1_800_000_000 + i)
            .arg(format!("dead-{i}"))
            .query_async(&mut con)
            .await
            .unwrap();
    }
    // A retry with an interval waits in the scheduled registry.
    let sched = rq_enqueue(&mut con, &format!("{queue}-sched"), 1, 1).await;
    let _: () = redis::cmd("ZADD")
        .arg(format!("rq:scheduled:{queue}"))
        .arg(1_800_000_100)
        .arg(&sched[0])
        .query_async(&mut con)
        .await
        .unwrap();
    rq_worker(&mut con, &queue, &unique("w1"), true).await;
    rq_worker(&mut con, &queue, &unique("w2"), true).await;
    rq_worker(&mut con, &queue, &unique("gone"), false).await;

    let client = redis::Client::open(REDIS).unwrap();
    let mut r = worker_scaler::rq::Redis::connect(&client, REDIS, Duration::from_secs(2))
        .await
        .unwrap();
    let snap = r
        .snapshot(std::slice::from_ref(&queue), 1000)
        .await
        .unwrap();
    let q = &snap.queues[0];
    assert_eq!((q.queued, q.intermediate, q.backlog()), (6, 1, 7), "{q:?}");
    assert_eq!(q.started, 1);
    assert_eq!(q.dead_letter, 4);
    // The first enqueued job (ran before) sits in the intermediate list now; the second in the
    // queue; plus the scheduled retry.
    assert_eq!(q.retries, 3, "{q:?}");
    assert_eq!((q.workers, snap.live_workers), (2, 2));
    // A queue nobody created reads as empty, not as an error.
    let snap = r.snapshot(&[unique("nothing")], 1000).await.unwrap();
    assert_eq!(snap.backlog(), 0);
}

/// A TCP proxy in front of Redis: `pass` forwards, `hang` accepts and swallows the bytes (a
/// black-holed or stalled Redis), `cut` closes every connection at once.
async fn fault_proxy(mode: Arc<AtomicU8>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let m = mode.load(Ordering::SeqCst);
            tokio::spawn(async move {
                match m {
                    PASS => {
                        if let Ok(mut up) = tokio::net::TcpStream::connect("127.0.0.1:6379").await {
                            let _ = tokio::io::copy_bidirectional(&mut sock, &mut up).await;
                        }
                    }
                    HANG => {
                        use tokio::io::AsyncReadExt;
                        let mut buf = [0u8; 1024];
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                        while let Ok(Ok(n)) =
                            tokio::time::timeout_at(deadline, sock.read(&mut buf)).await
                        {
                            if n == 0 {
                                break;
                            }
                        }
                    }
                    _ => drop(sock),
                }
            });
        }
    });
    port
}

const PASS: u8 = 0;
const HANG: u8 = 1;
const CUT: u8 = 2;

/// Redis slow or unreachable: a clear error, no decision, no state, the service untouched;
/// the next run, with Redis back, decides and scales.
#[tokio::test]
async fn redis_hang_or_cut_means_no_decision_and_the_next_run_recovers() {
    let (_guard, moto) = suite_tests::exclusive_moto().await;
    let clients = moto.clients().await;
    let ecs = ecs_service(&clients, "c3", "svc", 2).await;
    let queue = unique("fault");
    let mut con = redis().await;
    rq_enqueue(&mut con, &queue, 200, 0).await;
    let mode = Arc::new(AtomicU8::new(HANG));
    let port = fault_proxy(mode.clone()).await;
    let url = format!("redis://127.0.0.1:{port}");
    let s = settings(
        &queue,
        "ecs:c3/svc",
        &[
            ("SCALER_CONSECUTIVE_CHECKS", "1"),
            ("SCALER_REDIS_URL", &url),
            ("SCALER_REDIS_TIMEOUT_MS", "300"),
        ],
    );
    let target = AwsTarget::new(&s.target, &clients.sdk);
    let client = redis::Client::open(url.as_str()).unwrap();
    let run = |token: &str| Check {
        check_id: Some(format!("2026-11-27T21:00:00Z/{token}")),
        dry_run: false,
        now: at(27, 21, 0),
        token: token.into(),
    };

    let started = std::time::Instant::now();
    let e = run_check(&s, &client, &target, &run("a"))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the timeout: {:?}",
        started.elapsed()
    );
    assert!(
        msg.contains(&format!("Redis redis://127.0.0.1:{port}")) && msg.contains("timed out"),
        "{msg}"
    );
    assert!(msg.contains("no scaling decision"), "{msg}");
    assert_eq!(e.class(), "IoError");
    assert!(e.retryable());

    mode.store(CUT, Ordering::SeqCst);
    let e = run_check(&s, &client, &target, &run("b"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no scaling decision"), "{e}");

    // Nothing happened: the service is at 2 and no state or lock was written.
    assert_eq!(ecs_desired(&ecs, "c3", "svc").await, 2);
    let state: Option<String> = redis::cmd("GET")
        .arg(s.state_key())
        .query_async(&mut con)
        .await
        .unwrap();
    let lock: Option<String> = redis::cmd("GET")
        .arg(s.lock_key())
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((state, lock), (None, None));

    // Redis is back: the same client, the next run decides and scales.
    mode.store(PASS, Ordering::SeqCst);
    let o = run_check(&s, &client, &target, &run("c"))
        .await
        .expect("recovered");
    assert_eq!((o.status, o.decision.unwrap().to), (Status::Scaled, 4));
    assert_eq!(ecs_desired(&ecs, "c3", "svc").await, 4);
}
