//! `make bench`: manifest-diff's inventory mode against DuckDB on the same files, in one run.
//!
//! Generates two real-format S3 Inventory reports (gzipped CSV, every field quoted, keys
//! URL-encoded, rows unsorted across several files) with a known set of differences, then
//! times, each in its own process so that peak RSS is its own:
//!   ours   – the function's code path: read + MD5-check + external sort per side (two threads),
//!            merge-join, classify;
//!   duckdb – a FULL OUTER JOIN of the same files with DuckDB (2 threads).
//! Prints both, their ratios, and checks that both found exactly the planted differences.
//!
//!   cargo bench -p manifest-diff --bench inventory_join -- --objects 10000000

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use manifest_diff::diff::{classify, Policy, Tally};
use manifest_diff::inventory::Manifest;
use manifest_diff::inventory_load::LocalFile;
use manifest_diff::partition::{join_partitioned, partition_side, partitions_for};

const FILES: usize = 8;
const SCHEMA: &str =
    "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn key(i: u64) -> String {
    // Realistic shape: a date path, a hashed directory, a name that needs URL-encoding.
    format!(
        "attachments/2026/{:02}/{:08x}/scan {i}+final.pdf",
        i % 12 + 1,
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
    )
}

/// Which differences are planted, by index: 1 in 10,000 of each kind.
fn missing(i: u64) -> bool {
    i % 10_000 == 17
}
fn mismatched(i: u64) -> bool {
    i % 10_000 == 4711
}
fn extra(i: u64) -> bool {
    i % 10_000 == 9001
}

fn write_side(dir: &Path, bucket: &str, n: u64, replica: bool) -> std::io::Result<()> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let mut writers: Vec<_> = (0..FILES)
        .map(|f| {
            let file = std::fs::File::create(data.join(format!("part-{f}.csv.gz")))?;
            Ok(flate2::write::GzEncoder::new(
                std::io::BufWriter::with_capacity(1 << 20, file),
                flate2::Compression::fast(),
            ))
        })
        .collect::<std::io::Result<_>>()?;
    // A multiplicative permutation of 0..n scatters keys across files in no order.
    let step = (2_654_435_761u64 % n.max(2)) | 1;
    let step = if gcd(step, n) == 1 { step } else { 1 };
    let mut line = String::with_capacity(256);
    for j in 0..n {
        let i = (j * step) % n;
        if replica && missing(i) {
            continue;
        }
        if !replica && extra(i) {
            continue;
        }
        let size = 1000 + i % 50_000 + u64::from(replica && mismatched(i));
        let k: String = form_urlencoded::byte_serialize(key(i).as_bytes()).collect();
        line.clear();
        use std::fmt::Write as _;
        let _ = writeln!(
            line,
            "\"{bucket}\",\"{k}\",\"v{i}\",\"true\",\"false\",\"{size}\",\"2026-11-{:02}T10:00:00.000Z\",\"{:032x}\",\"STANDARD\"",
            i % 20 + 1,
            i.wrapping_mul(0x2545_F491_4F6C_DD1D)
        );
        writers[(j % FILES as u64) as usize].write_all(line.as_bytes())?;
    }
    let mut files = Vec::new();
    for (f, w) in writers.into_iter().enumerate() {
        w.finish()?.flush()?;
        let path = data.join(format!("part-{f}.csv.gz"));
        let bytes = std::fs::read(&path)?;
        files.push(serde_json::json!({
            "key": format!("{bucket}/data/part-{f}.csv.gz"),
            "size": bytes.len(),
            "MD5checksum": hex::encode(<md5::Md5 as md5::Digest>::digest(&bytes)),
        }));
    }
    let manifest = serde_json::json!({
        "sourceBucket": bucket, "destinationBucket": "arn:aws:s3:::inventory", "version": "2016-11-30",
        "creationTimestamp": "1795654800000", "fileFormat": "CSV", "fileSchema": SCHEMA, "files": files,
    });
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    Ok(())
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
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

fn side_files(dir: &Path) -> (Manifest, Vec<LocalFile>) {
    let m = Manifest::parse(
        &std::fs::read(dir.join("manifest.json")).expect("manifest"),
        None,
    )
    .expect("parse manifest");
    let files = m
        .files
        .iter()
        .enumerate()
        .map(|(f, e)| LocalFile {
            key: e.key.clone(),
            md5: e.md5.clone(),
            path: dir.join("data").join(format!("part-{f}.csv.gz")),
        })
        .collect();
    (m, files)
}

/// Where phase 1's time goes, one side on one thread (for profiling by hand).
fn probe(root: &Path) {
    use std::io::Read;
    let (pm, pf) = side_files(&root.join("primary"));
    let t = Instant::now();
    let mut n = 0u64;
    for f in &pf {
        let mut gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(
            1 << 17,
            std::fs::File::open(&f.path).expect("open"),
        ));
        let mut buf = vec![0u8; 1 << 17];
        loop {
            let k = gz.read(&mut buf).expect("read");
            if k == 0 {
                break;
            }
            n += k as u64;
        }
    }
    eprintln!("gunzip {:.2} s {n} bytes", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut rows = 0u64;
    for f in &pf {
        let gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(
            1 << 17,
            std::fs::File::open(&f.path).expect("open"),
        ));
        let mut csv = manifest_diff::inventory_csv::FieldReader::new(gz);
        while csv.next_row().expect("csv").is_some() {
            rows += 1;
        }
    }
    eprintln!(
        "gunzip+split (inventory_csv) {:.2} s {rows} rows",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut rows = 0u64;
    for f in &pf {
        manifest_diff::inventory_load::open_rows(&pm, f, |_e| {
            rows += 1;
            Ok(())
        })
        .expect("rows");
    }
    eprintln!(
        "open_rows (gunzip+md5+csv+entry) {:.2} s {rows} rows",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let dir = tempfile::tempdir_in(root).expect("tmp");
    partition_side(&pm, &pf, &["attachments/".to_string()], dir.path(), 12).expect("part");
    eprintln!("partition_side {:.2} s", t.elapsed().as_secs_f64());
}

/// The child process: our code path, timed, with its own peak RSS.
fn run_ours(root: &Path, budget_mb: usize) {
    let t = Instant::now();
    let prefixes = vec!["attachments/".to_string()];
    let scratch = tempfile::tempdir_in(root).expect("scratch");
    let (pm, pf) = side_files(&root.join("primary"));
    let (rm, rf) = side_files(&root.join("replica"));
    let (pdir, rdir) = (scratch.path().join("p"), scratch.path().join("r"));
    let budget = budget_mb << 20;
    let compressed = |m: &Manifest| m.files.iter().map(|f| f.size).sum::<u64>();
    let parts = partitions_for(compressed(&pm).max(compressed(&rm)), budget);
    let (ps, rs) = std::thread::scope(|s| {
        let h = s.spawn(|| partition_side(&pm, &pf, &prefixes, &pdir, parts));
        let r = partition_side(&rm, &rf, &prefixes, &rdir, parts);
        (h.join().expect("thread"), r)
    });
    let (ps, rs) = (ps.expect("primary"), rs.expect("replica"));
    let t_partition = t.elapsed().as_secs_f64();
    let policy = Policy {
        now: 1_795_654_800,
        lag_secs: 86_400,
    };
    let mut tally = Tally::default();
    join_partitioned(&ps, &rs, 2, |p, r| {
        let c = classify(p, r, &policy);
        tally.add("attachments/", c, p, r);
        Ok(())
    })
    .expect("join");
    let t_all = tally.total();
    println!(
        "{}",
        serde_json::json!({
            "seconds": t.elapsed().as_secs_f64(), "partition_seconds": t_partition, "rss_mb": peak_rss_mb(),
            "missing": t_all.missing, "extra": t_all.extra, "mismatched": t_all.mismatched(), "eligible": t_all.eligible_primary,
        })
    );
}

const DUCKDB: &str = r#"
import duckdb, json, resource, sys, time
root = sys.argv[1]
cols = "{'bucket':'VARCHAR','key':'VARCHAR','version':'VARCHAR','is_latest':'BOOLEAN','is_dm':'BOOLEAN','size':'BIGINT','lm':'VARCHAR','etag':'VARCHAR','sc':'VARCHAR'}"
t = time.time()
con = duckdb.connect()
con.execute("SET threads=2")
con.execute("SET enable_progress_bar=false")
con.execute(f"SET temp_directory='{root}/duckdb-tmp'")
q = f"""
WITH p AS (SELECT key, size, etag FROM read_csv('{root}/primary/data/*.csv.gz', header=false, columns={cols}) WHERE is_latest AND NOT is_dm),
     r AS (SELECT key, size, etag FROM read_csv('{root}/replica/data/*.csv.gz', header=false, columns={cols}) WHERE is_latest AND NOT is_dm)
SELECT count(*) FILTER (WHERE r.key IS NULL), count(*) FILTER (WHERE p.key IS NULL),
       count(*) FILTER (WHERE p.key IS NOT NULL AND r.key IS NOT NULL AND (p.size <> r.size OR p.etag <> r.etag)),
       count(p.key)
FROM p FULL OUTER JOIN r ON p.key = r.key
"""
missing, extra, mismatched, eligible = con.execute(q).fetchone()
print(json.dumps({"seconds": time.time() - t, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "missing": missing, "extra": extra, "mismatched": mismatched, "eligible": eligible, "version": duckdb.__version__}))
"#;

fn run_child(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // The child's result is its last line that is a JSON object (libraries may print first).
    // A progress bar may share the line (carriage returns, no newline): start at its `{"`.
    let line = text
        .lines()
        .rev()
        .find_map(|l| l.find("{\"").map(|i| &l[i..]))
        .unwrap_or("{}");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("child JSON {e}: {text}"))
}

/// Under `cargo test` (no `--bench` argument) the bench checks itself on a small data set:
/// our path alone must find exactly the planted differences. No peer, no timing.
fn smoke() {
    let dir = tempfile::tempdir().expect("tmp");
    let n = 30_000;
    write_side(&dir.path().join("primary"), "prod-files", n, false).expect("primary");
    write_side(&dir.path().join("replica"), "dr-files", n, true).expect("replica");
    let exe = std::env::current_exe().expect("exe");
    let ours = run_child(Command::new(&exe).args([
        "--ours",
        &dir.path().display().to_string(),
        "--sort-memory-mb",
        "1",
    ]));
    assert_eq!(ours["missing"], 3, "{ours}");
    assert_eq!(ours["extra"], 3, "{ours}");
    assert_eq!(ours["mismatched"], 3, "{ours}");
    assert_eq!(ours["eligible"], n - 3, "{ours}");
    println!("inventory_join smoke: ok ({ours})");
}

fn main() {
    let child = std::env::args().any(|a| a == "--ours");
    if !child && !std::env::args().any(|a| a == "--bench") {
        smoke();
        return;
    }
    let n: u64 = arg("--objects")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let budget_mb: usize = arg("--sort-memory-mb")
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let root: PathBuf = arg("--dir").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/bench-data")
            .join(format!("inventory-{n}"))
    });
    if let Some(dir) = arg("--probe") {
        probe(Path::new(&dir));
        return;
    }
    if let Some(dir) = arg("--ours") {
        run_ours(Path::new(&dir), budget_mb);
        return;
    }
    if !root.join("replica/manifest.json").exists() {
        eprintln!("generating {n} objects per side in {} …", root.display());
        let t = Instant::now();
        std::thread::scope(|s| {
            let p = s.spawn(|| write_side(&root.join("primary"), "prod-files", n, false));
            write_side(&root.join("replica"), "dr-files", n, true).expect("replica");
            p.join().expect("thread").expect("primary");
        });
        eprintln!("generated in {:.1} s", t.elapsed().as_secs_f64());
    }
    let size: u64 = ["primary", "replica"]
        .iter()
        .flat_map(|s| {
            std::fs::read_dir(root.join(s).join("data"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .sum();
    let expect_missing = (0..n).filter(|&i| missing(i)).count() as u64;
    let expect_extra = (0..n).filter(|&i| extra(i)).count() as u64;
    let expect_mismatched = (0..n).filter(|&i| mismatched(i)).count() as u64;

    let exe = std::env::current_exe().expect("exe");
    let ours = run_child(Command::new(&exe).args([
        "--ours",
        &root.display().to_string(),
        "--sort-memory-mb",
        &budget_mb.to_string(),
    ]));
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let duck = run_child(Command::new(python).args(["-c", DUCKDB, &root.display().to_string()]));

    println!(
        "\ninventory join, {n} objects per side, {} files per side, {:.0} MB of CSV.gz in all",
        FILES,
        size as f64 / 1e6
    );
    println!(
        "{:<10} {:>10} {:>12} {:>9} {:>9} {:>11}",
        "", "seconds", "peak RSS MB", "missing", "extra", "mismatched"
    );
    for (name, v) in [("ours", &ours), ("duckdb", &duck)] {
        println!(
            "{:<10} {:>10.2} {:>12.0} {:>9} {:>9} {:>11}",
            name,
            v["seconds"].as_f64().unwrap_or(f64::NAN),
            v["rss_mb"].as_f64().unwrap_or(f64::NAN),
            v["missing"],
            v["extra"],
            v["mismatched"]
        );
    }
    let r = |k: &str| duck[k].as_f64().unwrap_or(f64::NAN) / ours[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "ratios (duckdb / ours): time {:.2}x, memory {:.2}x   (duckdb {})",
        r("seconds"),
        r("rss_mb"),
        duck["version"]
    );
    for (name, v) in [("ours", &ours), ("duckdb", &duck)] {
        assert_eq!(v["missing"], expect_missing, "{name} missing");
        assert_eq!(v["extra"], expect_extra, "{name} extra");
        assert_eq!(v["mismatched"], expect_mismatched, "{name} mismatched");
    }
    println!(
        "both found exactly the {} planted differences",
        expect_missing + expect_extra + expect_mismatched
    );
}
