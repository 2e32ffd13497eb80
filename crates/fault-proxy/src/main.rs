//! `fault-proxy --upstream 127.0.0.1:5000 [--listen 127.0.0.1:0] [fault flags]`: runs the proxy
//! standalone; faults can be changed while it runs through `http://LISTEN/__fault?...`.

use std::time::Duration;

const USAGE: &str = "usage: fault-proxy --upstream HOST:PORT [--listen ADDR:PORT]
  [--latency-ms N] [--error-rate F --error-kind slowdown|internal|mixed]
  [--reset-rate F --reset-point before|after|mixed] [--window-s N (default 10)]
  [--only 'METHOD-or-path-substring'] [--seed N]
Control while running: curl 'http://LISTEN/__fault' (state), or e.g.
  curl -X POST 'http://LISTEN/__fault?error_rate=0.3&error_kind=slowdown&window_ms=10000'
  curl -X POST 'http://LISTEN/__fault?down=1'   curl -X POST 'http://LISTEN/__fault?clear=1'";

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "fault_proxy=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(std::env::args().skip(1).collect()).await {
        eprintln!("fault-proxy: {e}\n{USAGE}");
        std::process::exit(2);
    }
}

async fn run(args: Vec<String>) -> Result<(), String> {
    let mut listen = "127.0.0.1:0".to_string();
    let mut upstream = None;
    let mut window_ms = 10_000u64;
    let mut query: Vec<String> = vec![];
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = value,
            "--upstream" => upstream = Some(value),
            "--window-s" => {
                let s: f64 = value
                    .parse()
                    .map_err(|_| format!("--window-s: not a number: {value:?}"))?;
                window_ms = Duration::from_secs_f64(s.max(0.0)).as_millis() as u64;
            }
            "--latency-ms" | "--error-rate" | "--error-kind" | "--reset-rate" | "--reset-point"
            | "--only" | "--seed" => {
                let key = flag.trim_start_matches("--").replace('-', "_");
                let enc: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
                query.push(format!("{key}={enc}"));
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let upstream = upstream.ok_or("--upstream is required")?;
    let addr = listen
        .parse()
        .map_err(|_| format!("--listen: not ADDR:PORT: {listen:?}"))?;
    let proxy = fault_proxy::FaultProxy::start_on(addr, upstream)
        .await
        .map_err(|e| format!("listen on {listen}: {e}"))?;
    query.insert(0, format!("window_ms={window_ms}"));
    proxy.apply_query(&query.join("&"))?;
    println!("{}", proxy.url());
    std::future::pending::<()>().await;
    Ok(())
}
