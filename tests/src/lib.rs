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
pub fn spawn_supervised(
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
         kill -TERM -- -$child 2>/dev/null; sleep 1; kill -KILL -- -$child 2>/dev/null; exit 0",
        cmd = quoted.join(" "),
        log = log.display(),
        parent = std::process::id(),
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

/// A `cargo lambda watch` serving the workspace's functions on a free port, with the given
/// environment for the functions.
pub struct Watch {
    pub port: u16,
    pub url: String,
}

pub fn start_watch(function_env: &[(String, String)]) -> Watch {
    bootstrap();
    let root = workspace_root();
    // Build first so the emulator's `cargo run` finds fresh binaries.
    let status = Command::new("cargo")
        .args(["build", "--quiet", "--bins"])
        .current_dir(&root)
        .status()
        .expect("cargo build");
    assert!(status.success(), "cargo build --bins failed");
    let port = free_port();
    let env_file = log_dir().join(format!("watch-{port}.env"));
    let body: String = function_env
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    std::fs::write(&env_file, body).expect("write env file");
    let log = log_dir().join(format!("watch-{port}.log"));
    spawn_supervised(
        &venv_bin("cargo-lambda"),
        &[
            "lambda",
            "watch",
            "--quiet",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "--env-file",
            &env_file.display().to_string(),
        ],
        &[],
        &root,
        &log,
    );
    wait_for_port(port, Duration::from_secs(300), "cargo lambda watch", &log);
    Watch {
        port,
        url: format!("http://127.0.0.1:{port}"),
    }
}

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
