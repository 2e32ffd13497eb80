//! `make bench`: one shard's HTTP client side by side with oha and wrk, in one run.
//!
//! Full mode (`cargo bench -p loadtest-shard --bench loadgen [-- --secs 10 --rate 20000
//! --connections 50 --streams 500]`):
//!   - nginx (1 worker) pinned to core 0 serves `GET /` keep-alive; every client is pinned to
//!     core 1 (`taskset -c 1`), so throughput is per core;
//!   - closed loop, `--connections` connections for `--secs`: ours (`engine::closed_loop`,
//!     the shard's pool and request path, recording every latency in an HDR histogram), wrk
//!     (`-t1`), oha: requests/s and the ratio of ours to each;
//!   - open model at `--rate` req/s for `--secs`: ours (`run_shard_blocking`, the Lambda's
//!     code path) and `oha -q`: CPU seconds per 10,000 requests (getrusage of the child),
//!     achieved rate vs the target rate, our scheduler lag p50/p99;
//!   - SSE: `--streams` streams from one shard (a child process) to loadtest-target, peak RSS.
//!     Peers missing on the machine are reported as skipped.
//!
//! Under `cargo test --all-targets` (no `--bench`) a smoke mode runs each part for a moment
//! against loadtest-target in-process and checks the numbers are sane.

use std::process::Command;
use std::time::{Duration, Instant};

use loadtest_core::{decode_histogram, ShardRequest};
use loadtest_shard::engine::{closed_loop, run_shard_blocking, unix_ms_now};
use loadtest_shard::Settings;
use serde_json::{json, Value};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(name: &str, default: f64) -> f64 {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn settings() -> Settings {
    Settings {
        allowed_hosts: vec!["127.0.0.1".into()],
        ..Default::default()
    }
}

fn open_request(url: &str, rate: f64, secs: f64, in_flight: u32) -> ShardRequest {
    serde_json::from_value(json!({
        "run_id": "bench",
        "scenario": {
            "name": "bench-open",
            "target": {"base_url": url},
            "executor": {"type": "constant-arrival-rate", "rate": rate, "time_unit": "1s",
                         "duration": format!("{secs}s"), "max_in_flight": in_flight},
            "request": {"method": "GET", "path": "/"},
            "timeout": "10s"
        },
        "t0_unix_ms": unix_ms_now() + 300,
        "window": {"from_ms": 0, "to_ms": (secs * 1000.0) as u64},
        "shard_index": 0, "shard_count": 1
    }))
    .expect("bench request")
}

fn sse_request(url: &str, streams: u32, secs: f64) -> ShardRequest {
    serde_json::from_value(json!({
        "run_id": "bench",
        "scenario": {
            "name": "bench-sse",
            "target": {"base_url": url},
            "executor": {"type": "sse-clients", "clients": streams, "duration": format!("{secs}s"), "ramp_up": "1s"},
            "request": {"method": "GET", "path": "/api/v1/events/stream"},
            "timeout": "10s"
        },
        "t0_unix_ms": unix_ms_now() + 300,
        "window": {"from_ms": 0, "to_ms": (secs * 1000.0) as u64},
        "shard_index": 0, "shard_count": 1
    }))
    .expect("bench request")
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// One measured part in this process; prints one JSON line (the parent parses it).
fn child(mode: &str, url: &str, a: f64, secs: f64) -> Value {
    match mode {
        "closed" => {
            let r =
                closed_loop(url, a as usize, Duration::from_secs_f64(secs)).expect("closed loop");
            json!({"requests": r.requests, "errors": r.errors, "elapsed_s": r.elapsed.as_secs_f64(),
                   "rps": r.requests as f64 / r.elapsed.as_secs_f64(),
                   "p50_us": r.latency.value_at_quantile(0.5), "p99_us": r.latency.value_at_quantile(0.99),
                   "recorded": r.latency.len()})
        }
        "open" => {
            let r = run_shard_blocking(open_request(url, a, secs, 1000), &settings(), far())
                .expect("open model");
            let lag = decode_histogram(&r.result.scheduler_lag_us).expect("lag");
            json!({"scheduled": r.result.scheduled, "sent": r.result.sent, "ok": r.result.ok,
                   "dropped": r.result.dropped, "errors": r.result.errors.total(),
                   "achieved_rps": r.achieved_rate.unwrap_or(0.0),
                   "lag_p50_us": lag.value_at_quantile(0.5), "lag_p99_us": lag.value_at_quantile(0.99),
                   "lag_max_us": lag.max(), "precise_timer": r.precise_timer})
        }
        "sse" => {
            let r = run_shard_blocking(sse_request(url, a as u32, secs), &settings(), far())
                .expect("sse");
            let s = r.result.sse.clone().unwrap_or_default();
            json!({"opened": s.streams_opened, "failed": s.streams_failed, "events": s.events_received,
                   "peak_rss_mb": peak_rss_mb()})
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn children_cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Runs a command pinned to core 1; returns (stdout, CPU seconds it used).
fn pinned(cmd: &str, args: &[String]) -> Option<(String, f64)> {
    let before = children_cpu_s();
    let out = Command::new("taskset")
        .arg("-c")
        .arg("1")
        .arg(cmd)
        .args(args)
        .output()
        .ok()?;
    let cpu = children_cpu_s() - before;
    if !out.status.success() {
        eprintln!("{cmd} failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some((String::from_utf8_lossy(&out.stdout).to_string(), cpu))
}

fn ours(mode: &str, url: &str, a: f64, secs: f64) -> Option<(Value, f64)> {
    let me = std::env::current_exe().ok()?;
    let args: Vec<String> = ["--child", mode, url, &a.to_string(), &secs.to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (out, cpu) = pinned(me.to_str()?, &args)?;
    let line = out.lines().rev().find(|l| l.starts_with('{'))?;
    Some((serde_json::from_str(line).ok()?, cpu))
}

fn which(name: &str) -> Option<String> {
    if let Ok(p) = std::env::var(format!("{}_BIN", name.to_ascii_uppercase())) {
        return Some(p);
    }
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/work/.cache/oha/bin", "/root/.cargo/bin"])
    {
        let p = std::path::Path::new(dir).join(name);
        if p.is_file() {
            return Some(p.to_string_lossy().to_string());
        }
    }
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

struct Nginx {
    child: std::process::Child,
    /// Its config and logs; removed when nginx stops.
    _dir: tempfile::TempDir,
}
impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nginx(port: u16) -> Option<Nginx> {
    let nginx = which("nginx")
        .or_else(|| Some("/usr/sbin/nginx".into()).filter(|p| std::path::Path::new(p).exists()))?;
    let dir = tempfile::tempdir().ok()?;
    let d = dir.path().display();
    let conf = format!(
        "worker_processes 1;\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{ access_log off; keepalive_requests 10000000; keepalive_timeout 300s;\n\
           client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n\
           server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\"; }} }} }}\n"
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).ok()?;
    let child = Command::new("taskset")
        .args(["-c", "0", &nginx, "-e", &format!("{d}/error.log"), "-c"])
        .arg(&path)
        .spawn()
        .ok()?;
    let guard = Nginx { child, _dir: dir };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(guard);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn f(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0)
}

fn full() {
    let secs = num("--secs", 10.0);
    let rate = num("--rate", 20_000.0);
    let conns = num("--connections", 50.0);
    let streams = num("--streams", 500.0);
    let port = free_port();
    let Some(_nginx) = start_nginx(port) else {
        eprintln!("loadgen bench: nginx is needed (apt-get install -y nginx); skipping the peer comparison");
        return;
    };
    let url = format!("http://127.0.0.1:{port}");
    println!("loadgen bench: nginx 1 worker on core 0, clients on core 1, {secs} s per run, {} connections", conns);
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model()
    );

    // Warm nginx up (and the page cache) so the first contender is not penalised.
    let _ = ours("closed", &url, conns, 1.0);

    let mut rows: Vec<(String, f64, f64)> = vec![];
    if let Some((v, cpu)) = ours("closed", &url, conns, secs) {
        println!("  ours closed loop: {v}");
        assert_eq!(
            f(&v, "recorded"),
            f(&v, "requests"),
            "every latency recorded"
        );
        rows.push(("loadtest-shard".into(), f(&v, "rps"), cpu));
    }
    let wrk = which("wrk");
    match &wrk {
        Some(w) => {
            let args: Vec<String> = vec![
                "-t1".into(),
                format!("-c{}", conns),
                format!("-d{}s", secs),
                url.clone(),
            ];
            if let Some((out, cpu)) = pinned(w, &args) {
                let rps = out
                    .lines()
                    .find(|l| l.starts_with("Requests/sec:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0);
                rows.push(("wrk 4 (-t1)".into(), rps, cpu));
            }
        }
        None => println!("  wrk: skipped (apt-get install -y wrk)"),
    }
    let oha = which("oha");
    match &oha {
        Some(o) => {
            let args: Vec<String> = vec![
                "--no-tui".into(),
                "--output-format".into(),
                "json".into(),
                "-z".into(),
                format!("{secs}s"),
                "-c".into(),
                format!("{}", conns),
                url.clone(),
            ];
            if let Some((out, cpu)) = pinned(o, &args) {
                let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
                rows.push((
                    "oha".into(),
                    v["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
                    cpu,
                ));
            }
        }
        None => println!("  oha: skipped (cargo install oha --locked)"),
    }
    let our_rps = rows.first().map(|r| r.1).unwrap_or(0.0);
    println!(
        "\nclosed loop, {} connections, one core (req/s; ours ÷ peer):",
        conns
    );
    println!(
        "  {:<18} {:>12} {:>10} {:>10}",
        "client", "req/s", "CPU s", "ours ÷"
    );
    for (name, rps, cpu) in &rows {
        println!(
            "  {:<18} {:>12.0} {:>10.2} {:>9.2}×",
            name,
            rps,
            cpu,
            if *rps > 0.0 { our_rps / rps } else { 0.0 }
        );
    }

    println!("\nopen model at {rate} req/s for {secs} s, one core:");
    println!(
        "  {:<18} {:>10} {:>14} {:>12} {:>12} {:>12}",
        "client", "sent", "CPU s / 10k", "rate error", "lag p50 µs", "lag p99 µs"
    );
    if let Some((v, cpu)) = ours("open", &url, rate, secs) {
        let sent = f(&v, "sent").max(1.0);
        println!(
            "  {:<18} {:>10} {:>14.3} {:>11.3}% {:>12} {:>12}   (dropped {}, errors {}, timerfd {})",
            "loadtest-shard", sent, cpu / sent * 1e4, (f(&v, "achieved_rps") / rate - 1.0) * 100.0,
            f(&v, "lag_p50_us"), f(&v, "lag_p99_us"), f(&v, "dropped"), f(&v, "errors"), v["precise_timer"]
        );
    }
    if let Some(o) = &oha {
        let args: Vec<String> = vec![
            "--no-tui".into(),
            "--output-format".into(),
            "json".into(),
            "-z".into(),
            format!("{secs}s"),
            "-q".into(),
            format!("{rate}"),
            "-c".into(),
            format!("{}", conns),
            url.clone(),
        ];
        if let Some((out, cpu)) = pinned(o, &args) {
            let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
            let rps = v["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0);
            let sent = (rps * v["summary"]["total"].as_f64().unwrap_or(secs)).max(1.0);
            println!(
                "  {:<18} {:>10.0} {:>14.3} {:>11.3}% {:>12} {:>12}",
                "oha -q",
                sent,
                cpu / sent * 1e4,
                (rps / rate - 1.0) * 100.0,
                "-",
                "-"
            );
        }
    }
    drop(_nginx);

    // SSE: loadtest-target in this process, the shard in a child.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (addr, _h) = rt
        .block_on(loadtest_target::start(loadtest_target::TargetConfig {
            sse_interval: Duration::from_millis(1000),
            ..Default::default()
        }))
        .expect("target");
    if let Some((v, _)) = ours("sse", &format!("http://{addr}"), streams, secs.max(5.0)) {
        println!(
            "\nSSE: {} streams in one shard for {} s: opened {}, failed {}, events {}, peak RSS {:.1} MB (goal < 64 MB)",
            streams, secs.max(5.0), v["opened"], v["failed"], v["events"], f(&v, "peak_rss_mb")
        );
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default()
}

/// `cargo test --all-targets`: each part for a moment, in-process, against loadtest-target.
fn smoke() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (addr, handle) = rt
        .block_on(loadtest_target::start(loadtest_target::TargetConfig {
            sse_interval: Duration::from_millis(100),
            ..Default::default()
        }))
        .expect("target");
    let url = format!("http://{addr}");
    let c = closed_loop(&url, 4, Duration::from_millis(300)).expect("closed loop");
    assert!(c.requests > 100 && c.errors == 0, "{c:?}");
    assert_eq!(c.latency.len(), c.requests);
    let o = child("open", &url, 1000.0, 0.5);
    assert_eq!(o["sent"], 500, "{o}");
    assert_eq!(o["ok"], 500, "{o}");
    let rate = f(&o, "achieved_rps");
    assert!((rate / 1000.0 - 1.0).abs() < 0.01, "{o}");
    let s = child("sse", &url, 20.0, 1.5);
    assert_eq!(s["opened"], 20, "{s}");
    assert!(f(&s, "events") >= 20.0, "{s}");
    assert!(handle.served() >= 500);
    println!(
        "loadgen smoke: closed {} req in 0.3 s, open 500/500 at {rate:.1}/s, sse {s}",
        c.requests
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let get = |k: usize| args.get(i + k).cloned().unwrap_or_default();
        let v = child(
            &get(1),
            &get(2),
            get(3).parse().unwrap_or(0.0),
            get(4).parse().unwrap_or(1.0),
        );
        println!("{v}");
        return;
    }
    if args.iter().any(|a| a == "--bench") {
        full();
    } else {
        smoke();
    }
}
