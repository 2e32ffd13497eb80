//! What the coordinator's integration tests need beyond suite_tests: a real Prometheus, the
//! local target, and `cargo lambda watch` with concurrency (parallel shards and the
//! overlapping continuation need more than watch's default single instance).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use suite_tests::{
    free_port, log_dir, spawn_supervised, venv_bin, wait_for_port, workspace_root, Watch,
};

pub struct Prometheus {
    pub url: String,
    _dir: tempfile::TempDir,
}

/// Starts `prometheus --web.enable-remote-write-receiver` on a free port with its own TSDB.
pub fn prometheus() -> Prometheus {
    let bin = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "the prometheus binary is missing: install the Debian package with \
                 `apt-get install -y prometheus` (it provides /usr/bin/prometheus; the test runs \
                 the binary itself, the systemd service is not needed)"
            )
        });
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 1m\nscrape_configs: []\n").expect("config");
    let port = free_port();
    let log = log_dir().join(format!("prometheus-{port}.log"));
    spawn_supervised(
        &bin,
        &[
            "--web.enable-remote-write-receiver",
            &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
            &format!("--config.file={}", cfg.display()),
        ],
        &[],
        dir.path(),
        &log,
    );
    wait_for_port(port, Duration::from_secs(60), "prometheus", &log);
    Prometheus {
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// The local target (crates/loadtest-target) on a free port.
pub fn target(args: &[&str]) -> (u16, String) {
    let port = free_port();
    let log = log_dir().join(format!("loadtest-target-{port}.log"));
    let addr = format!("127.0.0.1:{port}");
    let mut all = vec!["--addr", addr.as_str()];
    all.extend_from_slice(args);
    spawn_supervised(
        &suite_tests::binary("loadtest-target"),
        &all,
        &[],
        &workspace_root(),
        &log,
    );
    wait_for_port(port, Duration::from_secs(60), "loadtest-target", &log);
    (port, format!("http://{addr}"))
}

/// The emulator with four instances each of the coordinator and the shard (their prebuilt
/// binaries: see `suite_tests::start_watch_on`), so a run's shards go side by side.
pub fn watch(function_env: &[(String, String)], port: u16) -> Watch {
    suite_tests::start_watch_on(
        port,
        &[("loadtest-coordinator", 4), ("loadtest-shard", 4)],
        function_env,
    )
}

/// The AWS CLI from the project's venv with moto's environment.
pub fn aws(env: &[(String, String)], args: &[&str]) -> serde_json::Value {
    let out = Command::new(venv_bin("aws"))
        .args(args)
        .args(["--output", "json"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("aws cli");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

pub fn write_json(dir: &Path, name: &str, v: &serde_json::Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec(v).expect("json")).expect("write");
    p
}
