//! `make bench`: each function's cold-start init, measured the way Lambda counts it: from
//! process start to the runtime's first `GET /2018-06-01/runtime/invocation/next` on the
//! Runtime API. A small HTTP listener here plays the Runtime API; the function runs with the
//! configuration of `tools/local.env` (what `make demo` gives it), so its config parsing, AWS
//! SDK set-up and client construction are all inside the figure. Sizes: the binary, and the
//! deployment zip when `make package` has built it (`target/lambda/<fn>/bootstrap.zip`).
//!
//! `cargo bench -p suite-tests --bench cold_start` builds the release binaries first (x86_64
//! here; Lambda runs the arm64 build, see docs/benchmarks.md). Under `cargo test --all-targets`
//! it runs a smoke pass on whatever debug binaries exist and checks each reaches its first poll.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const GOAL_MS: f64 = 30.0;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn functions() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("functions"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().join("src/main.rs").exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// tools/local.env as KEY=VALUE pairs (quotes stripped), the demo's configuration.
fn local_env() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("tools/local.env")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// One cold start: milliseconds from spawn to the first poll, or why it never came.
fn one(bin: &Path, name: &str, env: &[(String, String)]) -> Result<f64, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let at = Instant::now();
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap_or(0);
            let line = String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            let _ = tx.send((at, line));
            // Keep the poll pending (as the Runtime API does with no event) until killed.
            std::thread::sleep(Duration::from_secs(2));
            let _ = s.write_all(b"");
        }
    });
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        // tools/local.env's paths are relative to the workspace (as under `make watch`).
        .current_dir(root())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        // No endpoint answers at init: a function that calls out before its first poll shows.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let got = rx.recv_timeout(Duration::from_secs(10));
    let _ = child.kill();
    let out = child.wait_with_output().ok();
    match got {
        Ok((at, line)) if line.starts_with("GET /2018-06-01/runtime/invocation/next") => {
            Ok((at - t0).as_secs_f64() * 1000.0)
        }
        Ok((_, line)) => Err(format!("first request was {line:?}")),
        Err(_) => {
            let err = out
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_default();
            Err(format!(
                "no poll within 10 s: {}",
                err.lines().last().unwrap_or("")
            ))
        }
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn mb(path: &Path) -> Option<f64> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.len() as f64 / 1_048_576.0)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let profile = if full { "release" } else { "debug" };
    if full {
        let ok = suite_tests::cargo_command("cargo")
            .args(["build", "--release", "--bins", "--quiet"])
            .current_dir(root())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "cargo build --release --bins failed");
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    let env = local_env();
    let runs = if full { 20 } else { 2 };
    println!(
        "cold start ({profile} binaries, {runs} runs each, process start -> first Runtime API poll; goal < {GOAL_MS} ms)"
    );
    println!("| function | median ms | p90 ms | max ms | binary MB | zip MB | goal |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    let mut failures = vec![];
    for f in functions() {
        let bin = target.join(profile).join(&f);
        if !bin.exists() {
            println!("| {f} | not built | | | | | |");
            continue;
        }
        let mut ms = vec![];
        for _ in 0..runs {
            match one(&bin, &f, &env) {
                Ok(v) => ms.push(v),
                Err(e) => {
                    failures.push(format!("{f}: {e}"));
                    break;
                }
            }
        }
        if ms.is_empty() {
            println!("| {f} | failed | | | | | |");
            continue;
        }
        ms.sort_by(f64::total_cmp);
        let med = pct(&ms, 0.5);
        let zip = mb(&target.join("lambda").join(&f).join("bootstrap.zip"))
            .map(|z| format!("{z:.2}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "| {f} | {med:.1} | {:.1} | {:.1} | {:.1} | {zip} | {} |",
            pct(&ms, 0.9),
            ms[ms.len() - 1],
            mb(&bin).unwrap_or(0.0),
            if !full {
                "(debug)"
            } else if med < GOAL_MS {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    assert!(
        failures.is_empty(),
        "functions that never reached their first poll:\n{}",
        failures.join("\n")
    );
}
