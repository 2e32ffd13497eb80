//! `make bench`: export-compressor's codecs side by side with their peers, in one run.
//!
//! On a generated CSV export (orders-like rows, `--mb` megabytes, default 1024):
//!   gzip    – ours (`codec::gzip_file`, level 6, one core) against `gzip -6`;
//!   parquet – ours (`codec::to_parquet`, ZSTD, one core) against DuckDB's
//!             `COPY … TO 'x.parquet'` (2 threads, its default snappy).
//! Each runs in its own process so its peak RSS is its own. Prints throughput, output size
//! and peak RSS with ratios; checks our outputs round-trip (digest / row count).
//! Under `cargo test` (no `--bench`) it only checks itself on a small file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use export_compressor::codec::{
    csv_shape, file_digest, gunzip_digest, gzip_file, parquet_shape, to_parquet, ParquetOptions,
};
use export_compressor::plan::SourceFormat;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn generate(path: &Path, mb: u64) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(
        w,
        "order_id,customer_id,email,sku,quantity,unit_price,currency,status,created_at,note"
    )?;
    let statuses = ["paid", "shipped", "refunded", "pending", "cancelled"];
    let currencies = ["EUR", "USD", "GBP"];
    let mut written = 0u64;
    let mut i = 0u64;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    while written < mb << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line = format!(
            "{},{},customer{}@example.com,SKU-{:05},{},{}.{:02},{},{},2026-11-{:02}T{:02}:{:02}:{:02}Z,{}\n",
            100_000_000 + i,
            x % 250_000,
            x % 250_000,
            x % 20_000,
            1 + x % 9,
            x % 900,
            x % 100,
            currencies[(x % 3) as usize],
            statuses[(x >> 8) as usize % 5],
            1 + x % 28,
            x % 24,
            x % 60,
            (x >> 16) % 60,
            if x.is_multiple_of(7) { "gift wrap" } else { "" }
        );
        w.write_all(line.as_bytes())?;
        written += line.len() as u64;
        i += 1;
    }
    w.flush()
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
        .unwrap_or(f64::NAN)
}

/// Child mode: one of our codecs on `src`, timed, with its own peak RSS.
fn child(what: &str, src: &Path, dst: &Path) {
    let t = Instant::now();
    let out_bytes = match what {
        "gzip" => gzip_file(src, dst, 6).expect("gzip").1,
        _ => {
            to_parquet(src, dst, SourceFormat::Csv, &ParquetOptions::default()).expect("parquet");
            std::fs::metadata(dst).expect("out").len()
        }
    };
    let seconds = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"seconds": seconds, "bytes": out_bytes, "rss_mb": peak_rss_mb()})
    );
}

fn run_child(exe: &Path, what: &str, src: &Path, dst: &Path) -> serde_json::Value {
    let out = Command::new(exe)
        .args([
            "--child",
            what,
            &src.display().to_string(),
            &dst.display().to_string(),
        ])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("{}"),
    )
    .expect("json")
}

/// `/usr/bin/time -f %M` gives a command's peak RSS in KiB.
fn timed(cmd: &str, args: &[&str], stdout: Option<&Path>) -> (f64, f64) {
    let t = Instant::now();
    let mut c = Command::new("/usr/bin/time");
    c.args(["-f", "%M", cmd]).args(args);
    if let Some(p) = stdout {
        c.stdout(std::fs::File::create(p).expect("out"));
    }
    let out = c.output().expect("spawn peer");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs = t.elapsed().as_secs_f64();
    let kb = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    (secs, kb / 1024.0)
}

fn smoke() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("orders.csv");
    generate(&src, 2).expect("generate");
    let exe = std::env::current_exe().expect("exe");
    let gz = dir.path().join("orders.csv.gz");
    let g = run_child(&exe, "gzip", &src, &gz);
    assert_eq!(
        gunzip_digest(&gz).expect("gunzip"),
        file_digest(&src).expect("digest")
    );
    assert!(
        g["bytes"].as_u64().unwrap_or(u64::MAX) < (2 << 20) / 2,
        "{g}"
    );
    let pq = dir.path().join("orders.parquet");
    run_child(&exe, "parquet", &src, &pq);
    assert_eq!(
        parquet_shape(&pq).expect("parquet").rows,
        csv_shape(&src).expect("csv").rows
    );
    println!("compression smoke: ok");
}

const DUCKDB: &str = r#"
import duckdb, json, resource, sys, time
src, dst = sys.argv[1], sys.argv[2]
t = time.time()
con = duckdb.connect()
con.execute("SET threads=2")
con.execute(f"COPY (SELECT * FROM read_csv('{src}', header=true)) TO '{dst}' (FORMAT parquet)")
import os
print(json.dumps({"seconds": time.time() - t, "bytes": os.path.getsize(dst), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let (what, src, dst) = (&args[i + 1], &args[i + 2], &args[i + 3]);
        child(what, Path::new(src), Path::new(dst));
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        smoke();
        return;
    }
    let mb: u64 = arg("--mb").and_then(|s| s.parse().ok()).unwrap_or(1024);
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data");
    std::fs::create_dir_all(&dir).expect("dir");
    let src = dir.join(format!("export-{mb}MB.csv"));
    if !src.exists() {
        eprintln!("generating {} …", src.display());
        generate(&src, mb).expect("generate");
    }
    let size = std::fs::metadata(&src).expect("src").len() as f64;
    let exe = std::env::current_exe().expect("exe");

    let ours_gz = run_child(&exe, "gzip", &src, &dir.join("ours.csv.gz"));
    let peer_gz_path = dir.join("peer.csv.gz");
    let (gz_secs, gz_rss) = timed(
        "gzip",
        &["-6", "-c", &src.display().to_string()],
        Some(&peer_gz_path),
    );
    let peer_gz_bytes = std::fs::metadata(&peer_gz_path).expect("gz").len() as f64;
    assert_eq!(
        gunzip_digest(&dir.join("ours.csv.gz")).expect("gunzip"),
        file_digest(&src).expect("digest")
    );

    let ours_pq = run_child(&exe, "parquet", &src, &dir.join("ours.parquet"));
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let out = Command::new(python)
        .args([
            "-c",
            DUCKDB,
            &src.display().to_string(),
            &dir.join("duckdb.parquet").display().to_string(),
        ])
        .output()
        .expect("duckdb");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let duck: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("{}"),
    )
    .expect("json");
    assert_eq!(
        parquet_shape(&dir.join("ours.parquet")).expect("pq").rows,
        csv_shape(&src).expect("csv").rows
    );

    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let mbps = |secs: f64| size / 1e6 / secs;
    println!("\nexport compression, {:.0} MB CSV", size / 1e6);
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>12}",
        "", "seconds", "MB/s", "output %", "peak RSS MB"
    );
    let row = |name: &str, secs: f64, bytes: f64, rss: f64| {
        println!(
            "{name:<22} {secs:>9.2} {:>9.1} {:>9.1} {rss:>12.0}",
            mbps(secs),
            bytes / size * 100.0
        )
    };
    row(
        "ours gzip -6 (1 core)",
        f(&ours_gz, "seconds"),
        f(&ours_gz, "bytes"),
        f(&ours_gz, "rss_mb"),
    );
    row("gzip -6", gz_secs, peer_gz_bytes, gz_rss);
    row(
        "ours parquet zstd (1)",
        f(&ours_pq, "seconds"),
        f(&ours_pq, "bytes"),
        f(&ours_pq, "rss_mb"),
    );
    row(
        "duckdb parquet (2 thr)",
        f(&duck, "seconds"),
        f(&duck, "bytes"),
        f(&duck, "rss_mb"),
    );
    println!(
        "ratios: gzip throughput ours/gzip {:.2}x, size ours/gzip {:.3}; parquet time duckdb/ours {:.2}x, size ours/duckdb {:.2}",
        gz_secs / f(&ours_gz, "seconds"),
        f(&ours_gz, "bytes") / peer_gz_bytes,
        f(&duck, "seconds") / f(&ours_pq, "seconds"),
        f(&ours_pq, "bytes") / f(&duck, "bytes"),
    );
}
