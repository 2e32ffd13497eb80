//! `loadtest-target`: the local load-test target (tests, `make demo`, `make bench`).
//!
//! ```text
//! loadtest-target [--addr 127.0.0.1:8080] [--latency fixed:20ms|uniform:10ms..50ms|
//!                 lognormal:100ms,0.5|quantiles:0=10ms,0.9=40ms,1=60ms]
//!                 [--error-rate 0.01] [--error-status 503] [--drop-rate 0.001]
//!                 [--sse-interval 1s] [--sse-drop-after 30] [--sse-retry 3s] [--stall-after 10s --stall-for 2s]
//!                 [--seed 7]   (random sampling instead of stratified)
//! ```
//! Prints `listening on ADDR` once bound; runs until killed.
use std::time::Duration;

use loadtest_target::{parse_duration, Latency, Sampling, TargetConfig};

fn main() {
    if let Err(e) = run() {
        eprintln!("loadtest-target: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut cfg = TargetConfig::default();
    let mut addr = "127.0.0.1:8080".to_string();
    let mut stall_after: Option<Duration> = None;
    let mut stall_for: Option<Duration> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!(
                "see the top of crates/loadtest-target/src/main.rs or docs/loadtest-scenarios.md"
            );
            return Ok(());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--addr" => addr = value,
            "--latency" => {
                cfg.latency = value
                    .parse::<Latency>()
                    .map_err(|e| format!("--latency: {e}"))?
            }
            "--error-rate" => cfg.error_rate = num(&value)?,
            "--error-status" => {
                cfg.error_status = value
                    .parse()
                    .map_err(|_| format!("--error-status: {value:?} is not a status code"))?
            }
            "--drop-rate" => cfg.drop_rate = num(&value)?,
            "--sse-interval" => cfg.sse_interval = parse_duration(&value)?,
            "--sse-drop-after" => cfg.sse_drop_after = Some(num(&value)? as u64),
            "--sse-retry" => cfg.sse_retry = Some(parse_duration(&value)?),
            "--stall-after" => stall_after = Some(parse_duration(&value)?),
            "--stall-for" => stall_for = Some(parse_duration(&value)?),
            "--seed" => cfg.sampling = Sampling::Random(num(&value)? as u64),
            other => return Err(format!("unknown flag {other}; see --help")),
        }
    }
    if let Some(len) = stall_for {
        cfg.stall = Some((stall_after.unwrap_or_default(), len));
    }
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| format!("--addr: {addr:?} is not HOST:PORT"))?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let (bound, _handle) = loadtest_target::start_on(addr, cfg)
            .await
            .map_err(|e| format!("cannot bind {addr}: {e}"))?;
        println!("listening on {bound}");
        std::future::pending::<()>().await;
        Ok(())
    })
}
