//! The harness for tests against real local services: moto (AWS APIs over their real wire
//! protocols), `cargo lambda watch` (the real Lambda Invoke API) and the AWS CLI. It installs
//! what it needs (tools/bootstrap.sh) and starts each service on a free loopback port; a
//! watchdog shell stops the service when the test process exits.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod ce;
pub mod fis;
pub mod inventory;
pub mod moto_api;
pub mod rds;

pub use moto_api::moto_post;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs tools/bootstrap.sh once per process (moto, awscli, cargo-lambda into .venv).
pub fn bootstrap() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let status = Command::new("bash")
            .arg(workspace_root().join("tools/bootstrap.sh"))
            .status()
            .expect("run tools/bootstrap.sh");
        assert!(status.success(), "tools/bootstrap.sh failed");
    });
}

pub fn venv_bin(name: &str) -> PathBuf {
    bootstrap();
    workspace_root().join(".venv/bin").join(name)
}

/// PATH with the project's .venv first (for `cargo lambda`, `aws`, `moto_server`).
pub fn venv_path() -> String {
    format!(
        "{}:{}",
        workspace_root().join(".venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn wait_for_port(port: u16, timeout: Duration, what: &str, log: &Path) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let tail = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{what} did not listen on port {port} within {timeout:?}; log:\n{tail}");
}

/// Starts `program args…` in its own process group under a watchdog shell that kills the
/// group when this test process (or the program) exits. Output goes to `log`.
/// The shell is dash on Debian: its `kill` takes `-PGID` but not `--` (`kill -TERM -- -PGID`
/// failed with "Illegal number", so every server outlived its test run).
pub fn spawn_supervised(
    program: &Path,
    args: &[&str],
    envs: &[(String, String)],
    cwd: &Path,
    log: &Path,
) {
    spawn_supervised_by(std::process::id(), program, args, envs, cwd, log);
}

/// [`spawn_supervised`], watched on behalf of the process `parent`.
fn spawn_supervised_by(
    parent: u32,
    program: &Path,
    args: &[&str],
    envs: &[(String, String)],
    cwd: &Path,
    log: &Path,
) {
    let quoted: Vec<String> = std::iter::once(program.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let script = format!(
        "setsid {cmd} >'{log}' 2>&1 & child=$!\n\
         while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done\n\
         kill -TERM -$child 2>/dev/null; sleep 1; kill -KILL -$child 2>/dev/null; exit 0",
        cmd = quoted.join(" "),
        log = log.display(),
    );
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PATH", venv_path())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn watchdog shell");
    // Reap the watchdog when it exits, so it never lingers as a zombie.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
}

pub fn log_dir() -> PathBuf {
    let d = workspace_root().join("target/test-logs");
    let _ = std::fs::create_dir_all(&d);
    d
}

/// A moto server shared by the tests of one test binary.
pub struct Moto {
    pub port: u16,
    pub url: String,
}

pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let port = free_port();
        let log = log_dir().join(format!("moto-{port}.log"));
        spawn_supervised(
            &venv_bin("moto_server"),
            &["-H", "127.0.0.1", "-p", &port.to_string()],
            &[],
            &workspace_root(),
            &log,
        );
        wait_for_port(port, Duration::from_secs(60), "moto_server", &log);
        Moto {
            port,
            url: format!("http://127.0.0.1:{port}"),
        }
    })
}

/// Tests that share moto take this lock and reset moto's state first.
pub async fn exclusive_moto() -> (tokio::sync::MutexGuard<'static, ()>, &'static Moto) {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    let guard = LOCK
        .get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await;
    let m = moto();
    m.reset().await;
    (guard, m)
}

impl Moto {
    /// `POST /moto-api/reset`: clears every service's state.
    pub async fn reset(&self) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to moto");
        let req = format!("POST /moto-api/reset HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", self.port);
        sock.write_all(req.as_bytes()).await.expect("send reset");
        let mut resp = String::new();
        sock.read_to_string(&mut resp)
            .await
            .expect("read reset response");
        assert!(
            resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"),
            "moto reset failed: {resp}"
        );
    }

    /// The real AWS CLI against this moto (`--output json`); panics with its stderr when it
    /// fails. Answers the parsed JSON (Null for commands that print nothing).
    pub fn cli(&self, args: &[&str]) -> serde_json::Value {
        let out = Command::new(venv_bin("aws"))
            .args(args)
            .args(["--endpoint-url", &self.url, "--output", "json"])
            .envs(self.env())
            .output()
            .expect("aws cli");
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// An SQS queue subscribed to an SNS topic (what stands in for a Lambda subscription or
    /// a mailbox), with subscription attributes (`RawMessageDelivery`, `FilterPolicy`, ...).
    /// Answers the queue URL.
    pub fn subscribe_queue(
        &self,
        topic_arn: &str,
        queue: &str,
        attributes: &[(&str, &str)],
    ) -> String {
        let url = self.cli(&["sqs", "create-queue", "--queue-name", queue])["QueueUrl"]
            .as_str()
            .expect("QueueUrl")
            .to_string();
        let endpoint = format!("arn:aws:sqs:us-east-1:123456789012:{queue}");
        let sub = self.cli(&[
            "sns",
            "subscribe",
            "--topic-arn",
            topic_arn,
            "--protocol",
            "sqs",
            "--notification-endpoint",
            &endpoint,
            "--return-subscription-arn",
        ])["SubscriptionArn"]
            .as_str()
            .expect("SubscriptionArn")
            .to_string();
        for (name, value) in attributes {
            self.cli(&[
                "sns",
                "set-subscription-attributes",
                "--subscription-arn",
                &sub,
                "--attribute-name",
                name,
                "--attribute-value",
                value,
            ]);
        }
        url
    }

    /// The variables a function (or the AWS CLI) needs to talk to this moto.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.url.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required"),
            ("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Clients built the way the functions build them (shared::aws).
    pub async fn clients(&self) -> shared::aws::AwsClients {
        let vars = shared::config::Vars::from_pairs(self.env());
        // The SDK's default credential chain reads the process environment.
        for (k, v) in self.env() {
            if k.starts_with("AWS_ACCESS") || k.starts_with("AWS_SECRET") {
                std::env::set_var(k, v);
            }
        }
        let settings = shared::aws::AwsSettings::from_vars(&vars).expect("settings");
        shared::aws::AwsClients::load(settings).await
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        self.clients().await.s3()
    }
}

/// Creates buckets (ignoring "already exists").
pub async fn create_buckets(s3: &aws_sdk_s3::Client, names: &[&str]) {
    for b in names {
        let _ = s3.create_bucket().bucket(*b).send().await;
    }
}

pub async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: impl Into<bytes::Bytes>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(body.into()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e:?}"));
}

pub async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let out = s3.get_object().bucket(bucket).key(key).send().await.ok()?;
    Some(out.body.collect().await.ok()?.into_bytes().to_vec())
}

/// Every key under `prefix` (all pages).
pub async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = vec![];
    let mut token = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("list s3://{bucket}/{prefix}: {e:?}"));
        keys.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(String::from)),
        );
        match out.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => return keys,
        }
    }
}

/// The directory cargo builds into (`CARGO_TARGET_DIR`, or the workspace's `target/`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => workspace_root().join(d),
        None => workspace_root().join("target"),
    }
}

/// Whether cargo sets `name` for the test (or bench) process itself, per package.
pub fn is_cargo_package_env(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_MANIFEST_")
        || matches!(
            name,
            "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

/// A nested `cargo` (or `make`, which runs one) started from a test, without the variables
/// cargo set for this test process (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, …). ring's build
/// script declares `rerun-if-env-changed` on those, so a nested build that inherits them finds
/// ring dirty and rebuilds everything above it (rustls, the AWS SDKs, every function): minutes
/// per test binary, and a different package name in the next binary's tests did it again.
pub fn cargo_command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            if is_cargo_package_env(k) {
                cmd.env_remove(k);
            }
        }
    }
    cmd
}

/// Builds every workspace binary once per test process with the tests' own feature set
/// (`cargo build --workspace --all-targets`, what `make test` builds before it runs the tests),
/// so this is a no-op under `make test`. A narrower build (`--bins`, `-p one-function`)
/// resolves other features for the shared dependencies and recompiled the AWS SDKs: that
/// nested build was the largest part of the old CI run.
pub fn build_binaries() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let status = cargo_command("cargo")
            .args(["build", "--quiet", "--workspace", "--all-targets"])
            .current_dir(workspace_root())
            .status()
            .expect("cargo build");
        assert!(
            status.success(),
            "cargo build --workspace --all-targets failed"
        );
    });
}

/// A workspace binary (a function, `loadtest-target`, `fault-proxy`), built by
/// [`build_binaries`].
pub fn binary(name: &str) -> PathBuf {
    build_binaries();
    let path = target_dir().join("debug").join(name);
    assert!(path.exists(), "no binary {}", path.display());
    path
}

/// `cargo lambda watch` serving the real Invoke API on a free port, and the named functions'
/// binaries as its runtimes.
pub struct Watch {
    pub port: u16,
    pub url: String,
}

/// Starts `cargo lambda watch --only-lambda-apis` (the real Invoke and Runtime APIs) and, for
/// each `(function, instances)`, that many processes of the function's prebuilt binary polling
/// the emulator's Runtime API (`/.rt/<function>`), with `function_env` and the variables the
/// Lambda service sets. cargo-lambda would otherwise `cargo run --bin <function>` each one,
/// a build with that one package's features. Every process is supervised: it stops when the
/// test process exits.
pub fn start_watch_for(functions: &[(&str, usize)], function_env: &[(String, String)]) -> Watch {
    start_watch_on(free_port(), functions, function_env)
}

/// [`start_watch_for`] on a given port (for functions that must know the emulator's address
/// before they start, e.g. the coordinator invoking its shards).
pub fn start_watch_on(
    port: u16,
    functions: &[(&str, usize)],
    function_env: &[(String, String)],
) -> Watch {
    bootstrap();
    let root = workspace_root();
    let binaries: Vec<(String, PathBuf, usize)> = functions
        .iter()
        .map(|(f, n)| (f.to_string(), binary(f), *n))
        .collect();
    let log = log_dir().join(format!("watch-{port}.log"));
    spawn_supervised(
        &venv_bin("cargo-lambda"),
        &[
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--ignore-changes",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
        ],
        &[],
        &root,
        &log,
    );
    wait_for_port(port, Duration::from_secs(120), "cargo lambda watch", &log);
    for (function, bin, instances) in binaries {
        for i in 0..instances {
            let mut env = function_env.to_vec();
            env.extend(
                [
                    (
                        "AWS_LAMBDA_RUNTIME_API",
                        format!("http://127.0.0.1:{port}/.rt/{function}"),
                    ),
                    ("AWS_LAMBDA_FUNCTION_NAME", function.clone()),
                    ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
                    ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096".into()),
                ]
                .map(|(k, v)| (k.to_string(), v)),
            );
            let flog = log_dir().join(format!("watch-{port}-{function}-{i}.log"));
            spawn_supervised(&bin, &[], &env, &root, &flog);
        }
    }
    Watch {
        port,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// The emulator with every function of the suite, one instance each.
pub fn start_watch(function_env: &[(String, String)]) -> Watch {
    start_watch_for(
        &FUNCTIONS.iter().map(|f| (*f, 1)).collect::<Vec<_>>(),
        function_env,
    )
}

/// The suite's Lambda functions (the packages under functions/).
pub const FUNCTIONS: [&str; 11] = [
    "manifest-diff",
    "lifecycle-enforcer",
    "export-compressor",
    "loadtest-shard",
    "loadtest-coordinator",
    "dr-restore",
    "cost-anomaly",
    "chaos-runner",
    "worker-scaler",
    "uptime-probe",
    "alert-router",
];

/// `aws lambda invoke` (the real AWS CLI) against the emulator; returns the CLI's exit
/// status, its stdout/stderr and the function's response document.
pub fn aws_cli_invoke(
    watch: &Watch,
    function: &str,
    payload_file: &Path,
    env: &[(String, String)],
) -> (bool, String, serde_json::Value) {
    let out_file = tempfile::NamedTempFile::new().expect("tmp");
    let out = Command::new(venv_bin("aws"))
        .args([
            "lambda",
            "invoke",
            "--endpoint-url",
            &watch.url,
            "--cli-read-timeout",
            "600",
            "--function-name",
            function,
            "--payload",
            &format!("fileb://{}", payload_file.display()),
            &out_file.path().display().to_string(),
        ])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .expect("aws cli");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let body = std::fs::read(out_file.path()).unwrap_or_default();
    let doc = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (out.status.success(), text, doc)
}

#[cfg(test)]
mod supervision_tests {
    use super::*;

    /// Running (a zombie waiting for its reaper counts as gone).
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
            .is_some_and(|rest| !rest.starts_with('Z'))
    }

    /// What `make test` relies on to leave nothing running: when the supervising process
    /// exits, the supervised program and everything in its process group are stopped.
    #[test]
    fn a_supervised_group_stops_when_its_parent_exits() {
        let mut parent = Command::new("sleep").arg("1").spawn().expect("sleep");
        let dir = tempfile::tempdir().expect("tmp");
        let pidfile = dir.path().join("pids");
        // A program with a child of its own (as cargo-lambda has function processes).
        let script = format!(
            "sleep 300 & echo $! > '{p}.child'; echo $$ > '{p}'; wait",
            p = pidfile.display()
        );
        spawn_supervised_by(
            parent.id(),
            Path::new("/bin/sh"),
            &["-c", &script],
            &[],
            dir.path(),
            &dir.path().join("log"),
        );
        let start = Instant::now();
        let read = |p: &Path| std::fs::read_to_string(p).ok()?.trim().parse::<u32>().ok();
        let (program, grandchild) = loop {
            if let (Some(a), Some(b)) = (read(&pidfile), read(&pidfile.with_extension("child"))) {
                break (a, b);
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "program did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(alive(program) && alive(grandchild));
        let _ = parent.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while (alive(program) || alive(grandchild)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            !alive(program),
            "the supervised program outlived its parent"
        );
        assert!(
            !alive(grandchild),
            "the program's own child outlived the parent"
        );
    }
}
