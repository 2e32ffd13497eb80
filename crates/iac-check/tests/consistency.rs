//! infra/ against the code, the event samples and the docs (docs/iac.md). Each failure names
//! the function, what is missing or extra, and the file to fix.

use std::sync::OnceLock;

use iac_check::check::{self, Finding};
use iac_check::tf::{self, Infra};
use iac_check::{repo_root, source};

fn infra() -> &'static Infra {
    static INFRA: OnceLock<Infra> = OnceLock::new();
    INFRA.get_or_init(|| match Infra::load(&repo_root()) {
        Ok(i) => i,
        Err(e) => panic!("{e}"),
    })
}

fn fail_on(what: &str, findings: Vec<Finding>) {
    if !findings.is_empty() {
        let list: Vec<String> = findings.iter().map(|f| format!("  - {f}")).collect();
        panic!("{what}: {} problem(s)\n{}", findings.len(), list.join("\n"));
    }
}

#[test]
fn every_tf_file_parses() {
    // Infra::load fails naming each file python-hcl2 cannot parse.
    let i = infra();
    assert!(
        i.files.contains_key("infra/providers.tf"),
        "{:?}",
        i.files.keys()
    );
    assert!(i
        .files
        .keys()
        .any(|k| k.starts_with("infra/modules/lambda_function/")));
}

#[test]
fn functions_match_their_infrastructure() {
    let repo = repo_root();
    let infra = infra();
    let names = check::function_names(&repo);
    assert!(names.len() >= 3, "functions/ has {names:?}");
    let mut strict = vec![];
    let mut pending = vec![];
    for name in &names {
        let findings = check::check_function(&repo, infra, name);
        if check::is_strict(&repo, name) {
            strict.extend(findings);
        } else {
            pending.push((name.clone(), findings.len()));
        }
    }
    for (name, n) in &pending {
        // Not failing: infra/<fn>.tf is not written yet (IAC_CHECK_ALL=1 makes these fail).
        eprintln!(
            "iac-check: {name}: not checked strictly yet ({n} finding(s); infra/{}.tf missing)",
            check::snake(name)
        );
    }
    fail_on("functions against infra/", strict);
}

#[test]
fn landed_functions_are_checked_strictly() {
    let repo = repo_root();
    for name in check::LANDED {
        assert!(
            check::function_names(&repo).contains(&name.to_string()),
            "{name} is gone from functions/"
        );
        assert!(check::is_strict(&repo, name));
    }
}

#[test]
fn schedules_are_utc_with_role_input_retries_and_dead_letters() {
    fail_on("aws_scheduler_schedule", check::check_schedules(infra()));
}

#[test]
fn one_notification_per_bucket_each_after_its_permission() {
    fail_on(
        "aws_s3_bucket_notification",
        check::check_notifications(infra()),
    );
}

/// The module every function uses: the platform settings the issue asks of each function.
#[test]
fn lambda_module_sets_the_platform_defaults() {
    let i = infra();
    let res = i.all_resources();
    let get = |kind: &str| {
        res.iter()
            .find(|r| r.file.starts_with("infra/modules/lambda_function/") && r.kind == kind)
            .unwrap_or_else(|| panic!("infra/modules/lambda_function has no {kind}"))
    };
    let f = get("aws_lambda_function").body;
    assert_eq!(f["runtime"], "provided.al2023", "runtime");
    assert_eq!(
        f["architectures"],
        serde_json::json!(["arm64"]),
        "architectures"
    );
    assert_eq!(f["handler"], "bootstrap");
    assert!(
        f.get("filename").is_some(),
        "the zip is deployed from filename"
    );
    assert_eq!(
        tf::blocks(f, "logging_config")[0]["log_format"],
        "JSON",
        "log format"
    );
    assert_eq!(
        tf::blocks(f, "tracing_config")[0]["mode"],
        "Active",
        "X-Ray tracing"
    );
    let lg = get("aws_cloudwatch_log_group").body;
    assert_eq!(lg["retention_in_days"], "${var.log_retention_days}");
    let eic = get("aws_lambda_function_event_invoke_config").body;
    let dest = &tf::blocks(eic, "destination_config")[0];
    let on_failure = &tf::blocks(dest, "on_failure")[0];
    assert!(
        on_failure.get("destination").is_some(),
        "on-failure destination for async invokes"
    );
}

/// The scan itself, on the real code: it must find what a reader finds.
#[test]
fn scan_finds_the_known_calls_of_the_landed_functions() {
    let repo = repo_root();
    let code = check::scan(&repo, "export-compressor");
    let ops: Vec<String> = code
        .calls
        .iter()
        .map(|c| format!("{}:{}", c.service, source::pascal(&c.method)))
        .collect();
    for op in [
        "s3:PutObject",
        "s3:UploadPartCopy",
        "s3:GetObjectTagging",
        "s3:ListObjectsV2",
    ] {
        assert!(ops.contains(&op.to_string()), "{op} not found in {ops:?}");
    }
    assert!(code.env.iter().any(|e| e.name == "GZIP_LEVEL"));
    assert!(code
        .env
        .iter()
        .any(|e| e.name == "REPORT_BUCKET" && e.how == source::EnvUse::Required));
    let md = check::scan(&repo, "manifest-diff");
    let ops: Vec<String> = md
        .calls
        .iter()
        .map(|c| format!("{}:{}", c.service, c.method))
        .collect();
    // Through shared::store::S3Store and the self-continuation.
    assert!(ops.contains(&"s3:list_objects_v2".to_string()), "{ops:?}");
    assert!(ops.contains(&"lambda:invoke".to_string()), "{ops:?}");
}

/// The checks fail, and say where, when infra and code disagree.
#[test]
fn a_missing_action_an_extra_action_and_an_unset_variable_are_named() {
    let repo = repo_root();
    let mut files = infra().files.clone();
    let ec = files
        .get_mut("infra/export_compressor.tf")
        .expect("export_compressor.tf");
    // Drop s3:DeleteObject, add sqs:DeleteQueue, drop GZIP_LEVEL and REPORT_BUCKET.
    let s = serde_json::to_string(ec).unwrap();
    let s = s
        .replace("\"s3:DeleteObject\"", "\"sqs:DeleteQueue\"")
        .replace("\"REPORT_BUCKET\":", "\"REPORT_BUCKT\":");
    *ec = serde_json::from_str(&s).unwrap();
    let broken = Infra::from_files(&repo, files);
    let findings: Vec<String> = check::check_function(&repo, &broken, "export-compressor")
        .iter()
        .map(|f| f.to_string())
        .collect();
    let has = |needle: &str| findings.iter().any(|f| f.contains(needle));
    assert!(
        has("export-compressor: missing action s3:DeleteObject"),
        "{findings:#?}"
    );
    assert!(has("extra action sqs:DeleteQueue"), "{findings:#?}");
    assert!(has("[infra/export_compressor.tf"), "{findings:#?}");
    assert!(
        has("reads required variable REPORT_BUCKET (shared/src/config.rs:"),
        "{findings:#?}"
    );
    assert!(
        has("sets environment variable REPORT_BUCKT, which the code never reads"),
        "{findings:#?}"
    );
}

#[test]
fn a_function_without_infra_is_reported() {
    let repo = repo_root();
    let mut files = infra().files.clone();
    files.remove("infra/lifecycle_enforcer.tf");
    let broken = Infra::from_files(&repo, files);
    let findings = check::check_function(&repo, &broken, "lifecycle-enforcer");
    assert!(
        findings
            .iter()
            .any(|f| f.file == "infra/lifecycle_enforcer.tf"
                && f.message.contains("no module block")),
        "{findings:#?}"
    );
}

/// The dashboards show only metrics some function documents (and so emits: each function's
/// test holds its code to its doc's table).
#[test]
fn dashboards_use_only_documented_metrics() {
    let repo = repo_root();
    let raw =
        std::fs::read_to_string(repo.join("infra/dashboards.tf")).expect("infra/dashboards.tf");
    let docs: String = std::fs::read_dir(repo.join("docs"))
        .expect("docs/")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "md"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    let mut used = vec![];
    for part in raw.split("local.db_ns, \"").skip(1) {
        if let Some(name) = part.split('"').next() {
            used.push(name.to_string());
        }
    }
    // SEARCH rows (`local.db_q.NAME`) name metrics with a dimension beyond function and
    // environment, listed in `db_extra` as `NAME = ["function", "dim,dim"]`: each must be the
    // documented dimension set, or the SEARCH schema matches no document and the row is empty.
    let mut mismatched = vec![];
    for line in raw.lines() {
        let line = line.trim();
        let Some((name, rest)) = line.split_once(" = [\"") else {
            continue;
        };
        let name = name.trim();
        if !raw.contains(&format!("local.db_q.{name}}}")) {
            continue;
        }
        let dims: Vec<&str> = rest
            .rsplit('"')
            .nth(1)
            .unwrap_or_default()
            .split(',')
            .collect();
        let row = docs
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_default();
        let cells: Vec<&str> = row.split('|').collect();
        let documented = cells.get(3).copied().unwrap_or_default();
        let documented_dims: Vec<&str> = documented.split('`').skip(1).step_by(2).collect();
        if documented_dims != dims {
            mismatched.push(format!(
                "{name}: dashboards {dims:?}, documented {documented_dims:?}"
            ));
        }
        used.push(name.to_string());
    }
    assert!(
        mismatched.is_empty(),
        "infra/dashboards.tf db_extra disagrees with the metric tables: {mismatched:#?}"
    );
    assert!(used.len() >= 25, "found only {used:?}");
    let missing: Vec<&String> = used
        .iter()
        .filter(|m| !docs.contains(&format!("| `{m}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "infra/dashboards.tf shows metrics no docs/*.md metric table lists: {missing:?}"
    );
}

// ---- The signal catalogue (docs/signals.json) against every consumer ---------------------

mod signals {
    use std::collections::BTreeSet;
    use std::sync::OnceLock;

    use iac_check::check;
    use iac_check::repo_root;
    use iac_check::signals::{self, Catalogue, Consumer, Plan};

    const ENVS: [&str; 3] = ["dev", "staging", "prod"];

    fn plans() -> &'static [Plan] {
        static PLANS: OnceLock<Vec<Plan>> = OnceLock::new();
        PLANS.get_or_init(|| match signals::load_plans(&repo_root(), &ENVS) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        })
    }

    fn catalogue() -> Catalogue {
        Catalogue::load(&repo_root()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Everything wrong with one planned environment's consumers.
    fn problems(cat: &Catalogue, plan: &Plan) -> Vec<String> {
        let repo = repo_root();
        let mut consumers: Vec<Consumer> = plan.consumers();
        consumers.extend(signals::registry_consumers(&repo, &plan.environment));
        let mut out: Vec<String> = consumers
            .iter()
            .filter_map(|c| signals::check_consumer(cat, plan, c))
            .collect();
        let alarms = plan.alarm_names();
        for (source, name) in plan.composite_references() {
            if !alarms.contains(&name) {
                out.push(format!(
                    "{source}: composite rule names alarm {name}, which is not planned"
                ));
            }
        }
        // The chaos registry's stop conditions exist wherever chaos-runner is deployed.
        let stop = signals::registry_stop_alarms(&repo);
        let deployed = plan
            .values("aws_lambda_function", "function_name")
            .contains(&format!("chaos-runner-{}", plan.environment));
        if deployed {
            for a in &stop {
                if !alarms.contains(a) {
                    out.push(format!(
                        "{}: events/chaos-runner/experiments.json names stop-condition alarm {a}, which is not planned",
                        plan.environment
                    ));
                }
            }
        }
        out.extend(signals::check_stop_alarm_missing_data(
            cat, &consumers, &stop,
        ));
        out
    }

    #[test]
    fn every_consumer_reads_what_a_producer_emits() {
        let cat = catalogue();
        let mut all = vec![];
        let mut read = 0;
        for plan in plans() {
            read += plan.consumers().len();
            all.extend(problems(&cat, plan));
        }
        assert!(read > 100, "only {read} consumers found in the plans");
        assert!(
            all.is_empty(),
            "{} consumer(s) read what no producer emits (docs/signals.json, docs/observability.md):\n  - {}",
            all.len(),
            all.join("\n  - ")
        );
    }

    /// The catalogue itself: producers exist, each function's entries are on its docs page.
    #[test]
    fn the_catalogue_names_real_producers_and_documented_metrics() {
        let repo = repo_root();
        let functions = check::function_names(&repo);
        let mut wrong = vec![];
        for s in catalogue().signals {
            let known = functions.contains(&s.producer)
                || s.producer == "aws"
                || s.producer.starts_with("outside:");
            if !known {
                wrong.push(format!(
                    "{}: producer {} is no function, `aws` or `outside:<who>`",
                    s.name, s.producer
                ));
            }
            if s.producer == "aws" && s.requires.is_none() && !s.namespace.starts_with("AWS/") {
                wrong.push(format!("{}: an aws producer outside AWS/*", s.name));
            }
            if functions.contains(&s.producer) {
                let page = std::fs::read_to_string(repo.join(&s.doc)).unwrap_or_default();
                if !page.contains(&format!("| `{}` |", s.name)) {
                    wrong.push(format!("{} ({}): no row in {}", s.name, s.producer, s.doc));
                }
                if s.dimensions
                    .iter()
                    .any(|d| !d.contains("function") || !d.contains("environment"))
                {
                    wrong.push(format!(
                        "{}: every EMF document carries function and environment",
                        s.name
                    ));
                }
            }
        }
        for f in &functions {
            if !catalogue()
                .signals
                .iter()
                .any(|s| &s.producer == f && s.name == "function_errors")
            {
                wrong.push(format!(
                    "{f}: function_errors (emitted by the shared Lambda adapter) is not catalogued"
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "docs/signals.json:\n  - {}",
            wrong.join("\n  - ")
        );
    }

    /// The mismatches issue 16 found, put back into a copy of the prod plan and the registry:
    /// each must be caught, naming what is wrong.
    #[test]
    fn the_check_catches_each_known_mismatch() {
        let cat = catalogue();
        let prod = plans()
            .iter()
            .find(|p| p.environment == "prod")
            .expect("prod plan");
        let mut json = prod.json.clone();
        // No S3 metrics configuration: 5xxErrors FilterId=EntireBucket is never published.
        if let Some(rcs) = json["resource_changes"].as_array_mut() {
            rcs.retain(|rc| rc["type"] != "aws_s3_bucket_metric");
        }
        let broken = Plan {
            environment: "prod".into(),
            json,
        };
        let consumer = |name: &str, ns: &str, dims: &[(&str, &str)]| Consumer {
            treat_missing_data: Some("notBreaching".into()),
            alarm_name: Some("chaos-stop-api-availability".into()),
            ..Consumer::reading(
                "test",
                ns,
                name,
                dims.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let cases = [
            (
                consumer("rq_backlog", "PlatformPlaybook", &[("queue", "default")]),
                "no producer",
            ),
            (
                consumer(
                    "quote_latency_good_ratio_percent",
                    "PlatformPlaybook/SLO",
                    &[],
                ),
                "no producer",
            ),
            (
                consumer(
                    "api_availability",
                    "PlatformPlaybook",
                    &[("environment", "prod")],
                ),
                "dimension set {environment} is never emitted",
            ),
            (
                consumer(
                    "worker_backlog",
                    "PlatformPlaybook",
                    &[("environment", "prod"), ("function", "worker-scaler-prod")],
                ),
                "dimension set {environment, function} is never emitted",
            ),
            (
                consumer(
                    "error_budget_remaining_percent",
                    "PlatformPlaybook/SLO",
                    &[("slo", "api_availability")],
                ),
                "dimension set {slo} is never emitted",
            ),
            (
                consumer(
                    "api_availability",
                    "PlatformPlaybook",
                    &[
                        ("environment", "prod"),
                        ("function", "uptime-probe"),
                        ("target", "api"),
                    ],
                ),
                "function=uptime-probe, but api_availability is emitted by uptime-probe-prod",
            ),
            (
                consumer(
                    "s3_cost_estimate_dollars",
                    "PlatformPlaybook",
                    &[
                        ("environment", "prod"),
                        ("function", "export-compressor-prod"),
                    ],
                ),
                "is never emitted",
            ),
        ];
        for (c, expected) in &cases {
            let found = signals::check_consumer(&cat, prod, c);
            assert!(
                found.as_deref().is_some_and(|f| f.contains(expected)),
                "{c}: expected a finding with {expected:?}, got {found:?}"
            );
        }
        let s3 = consumer(
            "5xxErrors",
            "AWS/S3",
            &[("BucketName", "REPLACE"), ("FilterId", "EntireBucket")],
        );
        let bucket = prod
            .values("aws_s3_bucket_metric", "bucket")
            .into_iter()
            .next()
            .expect("prod plans an aws_s3_bucket_metric");
        let s3 = Consumer {
            dimensions: [
                ("BucketName".to_string(), bucket),
                ("FilterId".to_string(), "EntireBucket".to_string()),
            ]
            .into(),
            ..s3
        };
        assert_eq!(signals::check_consumer(&cat, prod, &s3), None);
        let found = signals::check_consumer(&cat, &broken, &s3).unwrap_or_default();
        assert!(
            found.contains("only for a declared aws_s3_bucket_metric"),
            "{found}"
        );
        // A stop alarm on a continuous signal that treats missing data as fine.
        let stop: BTreeSet<String> = ["chaos-stop-api-availability".to_string()].into();
        let c = consumer(
            "api_availability",
            "PlatformPlaybook",
            &[
                ("environment", "prod"),
                ("function", "uptime-probe-prod"),
                ("target", "api"),
            ],
        );
        let found = signals::check_stop_alarm_missing_data(&cat, &[c], &stop);
        assert!(
            found.iter().any(|f| f.contains("use breaching")),
            "{found:?}"
        );
    }
    /// docs/observability.md's catalogue table is docs/signals.json with the prod plan's readers.
    /// `SIGNALS_WRITE=1 cargo test -p iac-check --test consistency catalogue_table` rewrites it.
    #[test]
    fn the_catalogue_table_in_the_docs_is_current() {
        let repo = repo_root();
        let cat = catalogue();
        let prod = plans()
            .iter()
            .find(|p| p.environment == "prod")
            .expect("prod plan");
        let mut consumers = prod.consumers();
        consumers.extend(signals::registry_consumers(&repo, "prod"));
        let table = signals::render_markdown(&cat, prod, &consumers);
        let path = repo.join("docs/observability.md");
        let doc = std::fs::read_to_string(&path).expect("docs/observability.md");
        let (begin, end) = ("<!-- signals:begin -->\n", "<!-- signals:end -->");
        let (Some(a), Some(b)) = (doc.find(begin), doc.find(end)) else {
            panic!("docs/observability.md has no {begin:?} ... {end:?} section");
        };
        let current = &doc[a + begin.len()..b];
        if current != table {
            if std::env::var("SIGNALS_WRITE").is_ok_and(|v| v == "1") {
                let new = format!("{}{table}{}", &doc[..a + begin.len()], &doc[b..]);
                std::fs::write(&path, new).expect("write docs/observability.md");
            } else {
                panic!("docs/observability.md's signal catalogue is stale: run SIGNALS_WRITE=1 cargo test -p iac-check --test consistency the_catalogue_table");
            }
        }
    }

    /// The dynamic check: `make demo` runs every function through the Lambda emulator against
    /// moto; every EMF document the functions print is collected from their logs, and each
    /// consumer of a function's metric in the prod plan and the registries must match one
    /// (signals::check_emitted says how exactly). The demo runs on its own ports with its logs
    /// cleared first, so nothing from an earlier run can match. Then the stack is started again
    /// and the logs must still hold the demo's output, without NUL bytes (a restart used to
    /// empty a log in place while the old process still wrote to it).
    #[test]
    fn the_demo_prints_what_every_consumer_reads() {
        let repo = repo_root();
        let (moto, watch) = ("5587", "9587");
        let state = repo.join(format!(".local/{moto}-{watch}"));
        // A bound on each make: a demo step that hangs (an invoke that never answers) fails
        // this test with what the demo printed so far, instead of running CI out of time.
        // `make demo` takes ~10 min on the CI machine (docs/benchmarks.md).
        let make = |target: &str| {
            let limit = if target == "demo" { "1800" } else { "900" };
            let mut cmd = std::process::Command::new("timeout");
            // Without the variables cargo set for this test process: the demo's nested
            // `cargo build` would find ring dirty (its build script tracks CARGO_PKG_NAME and
            // CARGO_MANIFEST_DIR) and rebuild the workspace (suite_tests::cargo_command says
            // more; this crate does not link it).
            for (k, _) in std::env::vars() {
                if k.starts_with("CARGO_PKG_")
                    || k.starts_with("CARGO_MANIFEST_")
                    || matches!(
                        k.as_str(),
                        "CARGO_CRATE_NAME"
                            | "CARGO_BIN_NAME"
                            | "CARGO_PRIMARY_PACKAGE"
                            | "CARGO_TARGET_TMPDIR"
                            | "CARGO_RUSTC_CURRENT_DIR"
                            | "OUT_DIR"
                    )
                {
                    cmd.env_remove(k);
                }
            }
            let out = cmd
                .args([
                    "--kill-after=30",
                    limit,
                    "make",
                    "--no-print-directory",
                    target,
                ])
                .env("MOTO_PORT", moto)
                .env("WATCH_PORT", watch)
                .current_dir(&repo)
                .output()
                .expect("make");
            let timed_out = if out.status.code() == Some(124) {
                format!("\n(make {target} ran past its {limit} s limit and was stopped)")
            } else {
                String::new()
            };
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).to_string()
                    + &String::from_utf8_lossy(&out.stderr)
                    + &timed_out,
            )
        };
        // SIGNALS_REUSE_DEMO=1: check the logs of the last run instead (a developer iterating
        // on the check; never set in CI).
        let reuse = std::env::var("SIGNALS_REUSE_DEMO").is_ok_and(|v| v == "1");
        let (ok, output) = if reuse {
            (true, String::new())
        } else {
            make("down");
            for entry in std::fs::read_dir(&state).into_iter().flatten().flatten() {
                if entry.path().extension().is_some_and(|x| x == "log") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            make("demo")
        };
        let logs = || -> String {
            std::fs::read_dir(&state)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let before = logs();
        if !ok {
            make("down");
            panic!("make demo failed:\n{output}");
        }
        // Restart: the logs keep what the demo printed.
        let (restarted, restart_out) = make("up");
        let after = logs();
        make("down");
        assert!(restarted, "make up (restart) failed: {restart_out}");
        assert!(
            !after.contains('\0'),
            "a restart left NUL bytes in the function logs"
        );
        let emitted = signals::emitted_documents(&before);
        let kept = signals::emitted_documents(&after);
        assert!(
            emitted.is_subset(&kept),
            "a restart lost {} of the demo's metric documents",
            emitted.difference(&kept).count()
        );
        let functions: BTreeSet<&str> = emitted
            .iter()
            .filter_map(|e| e.dimensions.get("function").map(String::as_str))
            .collect();
        let all = check::function_names(&repo);
        let silent: Vec<&String> = all
            .iter()
            .filter(|f| !functions.contains(f.as_str()))
            .collect();
        assert!(
            silent.is_empty(),
            "the demo printed no metric of {silent:?}"
        );
        let cat = catalogue();
        let prod = plans()
            .iter()
            .find(|p| p.environment == "prod")
            .expect("prod plan");
        let mut consumers = prod.consumers();
        consumers.extend(signals::registry_consumers(&repo, "prod"));
        let unmatched = signals::check_emitted(&cat, "prod", &consumers, &emitted);
        assert!(
            unmatched.is_empty(),
            "{} consumer(s) match no document the demo printed ({} distinct metric documents from {} functions):\n  - {}",
            unmatched.len(),
            emitted.len(),
            functions.len(),
            unmatched.join("\n  - ")
        );
    }

    /// Every alarm for a quiet failure (infra/quiet_failures.tf) reaches a person when it fires
    /// and again when it resolves: alarm_actions and ok_actions both name the warn topic.
    #[test]
    fn quiet_failure_alarms_notify_and_resolve() {
        for plan in plans() {
            let mut found = 0;
            for rc in plan.json["resource_changes"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let addr = rc["address"].as_str().unwrap_or_default();
                if !addr.starts_with("aws_cloudwatch_metric_alarm.quiet_") {
                    continue;
                }
                found += 1;
                let a = &rc["change"]["after"];
                let unknown = &rc["change"]["after_unknown"];
                for key in ["alarm_actions", "ok_actions"] {
                    // The topic ARN is known only after apply: the list is planned as unknown.
                    let planned = a[key].as_array().is_some_and(|l| !l.is_empty())
                        || unknown[key] == serde_json::Value::Bool(true)
                        || unknown[key].as_array().is_some_and(|l| !l.is_empty());
                    assert!(planned, "{}: {addr} has no {key}", plan.environment);
                }
            }
            let expected = if plan
                .values("aws_lambda_function", "function_name")
                .contains(&format!("dr-restore-{}", plan.environment))
            {
                7
            } else {
                6
            };
            assert_eq!(
                found, expected,
                "{}: quiet-failure alarms",
                plan.environment
            );
        }
    }

    /// Every alarm that notifies anyone resolves on the same route: its ok_actions name exactly
    /// the topics its alarm_actions name (a page on the critical topic opens a PagerDuty
    /// incident that only an OK on the same topic resolves). Read from the plan's configuration
    /// (the references as written), since the topic ARNs are known only after apply.
    #[test]
    fn every_alarm_resolves_on_its_own_route() {
        fn walk(module: &serde_json::Value, path: &str, out: &mut Vec<String>, seen: &mut usize) {
            for r in module["resources"].as_array().into_iter().flatten() {
                let kind = r["type"].as_str().unwrap_or_default();
                if kind != "aws_cloudwatch_metric_alarm" && kind != "aws_cloudwatch_composite_alarm"
                {
                    continue;
                }
                let refs = |key: &str| -> Vec<String> {
                    let mut v: Vec<String> = r["expressions"][key]["references"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect();
                    v.sort();
                    v
                };
                let (alarm, ok) = (refs("alarm_actions"), refs("ok_actions"));
                if alarm.is_empty() {
                    continue;
                }
                *seen += 1;
                if alarm != ok {
                    out.push(format!(
                        "{path}{}: ALARM goes to {alarm:?}, OK to {ok:?}",
                        r["address"].as_str().unwrap_or("?")
                    ));
                }
            }
            for (name, call) in module["module_calls"].as_object().into_iter().flatten() {
                walk(&call["module"], &format!("{path}module.{name}."), out, seen);
            }
        }
        let prod = plans()
            .iter()
            .find(|p| p.environment == "prod")
            .expect("prod plan");
        let (mut wrong, mut seen) = (vec![], 0);
        walk(
            &prod.json["configuration"]["root_module"],
            "",
            &mut wrong,
            &mut seen,
        );
        assert!(seen >= 10, "only {seen} notifying alarms found");
        assert!(
            wrong.is_empty(),
            "alarms that resolve elsewhere than they fire:\n  - {}",
            wrong.join("\n  - ")
        );
    }
}

// ---- Alert delivery (infra/alert_routing.tf, infra/cost_anomaly.tf, docs/alert-router.md) --

mod alert_delivery {
    use iac_check::repo_root;
    use iac_check::signals::{self, Plan};
    use serde_json::Value;

    fn plans() -> Vec<Plan> {
        signals::load_plans(&repo_root(), &["dev", "staging", "prod"])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn after<'a>(plan: &'a Plan, address: &str) -> &'a Value {
        plan.json["resource_changes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|rc| rc["address"] == address)
            .map(|rc| &rc["change"]["after"])
            .unwrap_or_else(|| panic!("{}: {address} is not planned", plan.environment))
    }

    fn config<'a>(module: &'a Value, address: &str) -> &'a Value {
        module["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["address"] == address)
            .map(|r| &r["expressions"])
            .unwrap_or_else(|| panic!("{address} is not in the configuration"))
    }

    fn refs(v: &Value) -> Vec<&str> {
        v["references"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    }

    /// Every alert topic reaches alert-router; what it cannot deliver after its retries lands
    /// in its failure queue, whose alarm fires and resolves on the warn route; cost-anomaly
    /// hears AWS's FinOps notifications and never its own (the filter the integration test
    /// applies in moto); AWS Cost Anomaly Detection publishes to the FinOps topic.
    #[test]
    fn every_alert_reaches_the_router_and_what_it_cannot_deliver_is_alarmed() {
        let filter_file = std::fs::read_to_string(
            repo_root().join("infra/sns/finops-aws-notifications-only.json"),
        )
        .unwrap();
        let filter: Value = serde_json::from_str(&filter_file).unwrap();
        assert!(
            filter
                .get(shared::notifications::PRODUCER_ATTRIBUTE)
                .is_some(),
            "the filter names the attribute every suite publication carries: {filter}"
        );
        for plan in plans() {
            let env = plan.environment.as_str();
            for channel in ["critical", "info", "finops", "release"] {
                let sub = after(
                    &plan,
                    &format!("aws_sns_topic_subscription.alert_router[\"{channel}\"]"),
                );
                assert_eq!(sub["protocol"], "lambda", "{env}: {channel}");
            }
            let own = after(&plan, "aws_sns_topic_subscription.finops_lambda");
            let planned: Value =
                serde_json::from_str(own["filter_policy"].as_str().unwrap_or("null")).unwrap();
            assert_eq!(
                planned, filter,
                "{env}: cost-anomaly's FinOps subscription filter"
            );
            assert_eq!(own["filter_policy_scope"], "MessageAttributes", "{env}");

            let invoke = after(
                &plan,
                "module.alert_router.aws_lambda_function_event_invoke_config.this",
            );
            assert_eq!(invoke["maximum_retry_attempts"], 2, "{env}");
            let queue = after(&plan, "module.alert_router.aws_sqs_queue.failures")["name"]
                .as_str()
                .unwrap()
                .to_string();
            let alarm = after(
                &plan,
                "aws_cloudwatch_metric_alarm.alert_router_undelivered",
            );
            assert_eq!(
                (
                    alarm["namespace"].as_str(),
                    alarm["metric_name"].as_str(),
                    alarm["dimensions"]["QueueName"].as_str()
                ),
                (
                    Some("AWS/SQS"),
                    Some("ApproximateNumberOfMessagesVisible"),
                    Some(queue.as_str())
                ),
                "{env}: the undelivered alarm watches the router's failure queue"
            );

            let cad = after(&plan, "aws_ce_anomaly_subscription.finops[0]");
            assert_eq!(
                cad["frequency"], "IMMEDIATE",
                "{env}: SNS subscribers need IMMEDIATE"
            );
            assert_eq!(cad["subscriber"][0]["type"], "SNS", "{env}");
            let monitor = after(&plan, "aws_ce_anomaly_monitor.finops[0]");
            let spec: Value =
                serde_json::from_str(monitor["monitor_specification"].as_str().unwrap()).unwrap();
            assert_eq!(
                spec["Tags"]["Values"][0], env,
                "{env}: the monitor watches its own environment"
            );
        }
        // The references, as written (the ARNs are known only after apply).
        let prod = plans()
            .into_iter()
            .find(|p| p.environment == "prod")
            .unwrap();
        let root = &prod.json["configuration"]["root_module"];
        let router = root["module_calls"]["alert_router"]["module"].clone();
        let dest = &config(&router, "aws_lambda_function_event_invoke_config.this")
            ["destination_config"][0]["on_failure"][0]["destination"];
        assert!(refs(dest).contains(&"aws_sqs_queue.failures"), "{dest}");
        let alarm = config(root, "aws_cloudwatch_metric_alarm.alert_router_undelivered");
        for key in ["alarm_actions", "ok_actions"] {
            assert!(
                refs(&alarm[key]).contains(&"aws_sns_topic.slo_warn"),
                "{key}: {alarm}"
            );
        }
        assert!(
            refs(&config(root, "aws_sns_topic_subscription.alert_router")["endpoint"])
                .contains(&"module.alert_router")
        );
        let cad = config(root, "aws_ce_anomaly_subscription.finops");
        assert!(
            refs(&cad["subscriber"][0]["address"]).contains(&"aws_sns_topic.finops"),
            "{cad}"
        );
        let topic_policy =
            std::fs::read_to_string(repo_root().join("infra/cost_anomaly.tf")).unwrap();
        assert!(topic_policy.contains("\"costalerts.amazonaws.com\""));
    }
}

// ---- The Grafana dashboards (infra/grafana/, docs/dashboards.md) ------------------------

mod grafana {
    use std::collections::BTreeMap;

    use iac_check::grafana::{self, Query, CLOUDWATCH_UID, PROMETHEUS_UID};
    use iac_check::repo_root;
    use iac_check::signals::{self, Catalogue, Consumer, Plan};

    fn plans() -> Vec<Plan> {
        signals::load_plans(&repo_root(), &["dev", "staging", "prod"])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn dashboards() -> Vec<grafana::Dashboard> {
        grafana::load(&repo_root()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The four dashboards parse, name only the provisioned datasources (by the uids the
    /// provisioning file gives them), carry the environment variable, a unit per panel, and
    /// read CloudWatch with an exact dimension set and a simple statistic.
    #[test]
    fn dashboards_are_well_formed_and_provisioned() {
        let repo = repo_root();
        let ds = std::fs::read_to_string(
            repo.join("infra/grafana/provisioning/datasources/datasources.yaml"),
        )
        .expect("datasources.yaml");
        for uid in [PROMETHEUS_UID, CLOUDWATCH_UID] {
            assert!(
                ds.lines().any(|l| l.trim() == format!("uid: {uid}")),
                "datasources.yaml provisions no datasource with uid {uid}"
            );
        }
        let provider = std::fs::read_to_string(
            repo.join("infra/grafana/provisioning/dashboards/dashboards.yaml"),
        )
        .expect("dashboards.yaml");
        assert!(provider.contains("type: file"), "{provider}");
        let boards = dashboards();
        let mut problems = vec![];
        let mut uids = std::collections::BTreeSet::new();
        for d in &boards {
            problems.extend(d.problems());
            assert!(
                uids.insert(d.json["uid"].to_string()),
                "uid twice: {}",
                d.json["uid"]
            );
        }
        assert!(
            problems.is_empty(),
            "{} problem(s) in the Grafana dashboards:\n  - {}",
            problems.len(),
            problems.join("\n  - ")
        );
        let titles: Vec<&str> = boards
            .iter()
            .filter_map(|d| d.json["title"].as_str())
            .collect();
        assert_eq!(
            titles,
            ["Unified API health", "Frontend UX", "Async jobs", "FinOps"],
            "the playbook's four dashboards"
        );
    }

    /// Every CloudWatch target, with `$environment` as Grafana substitutes it in dev, staging and
    /// prod, is a consumer of the signal catalogue: a catalogued (namespace, metric, exact
    /// dimension set) whose producer `<fn>-<env>` is deployed in that environment.
    #[test]
    fn every_cloudwatch_target_reads_a_catalogued_signal() {
        let cat = Catalogue::load(&repo_root()).unwrap_or_else(|e| panic!("{e}"));
        let mut problems = vec![];
        let mut checked = 0;
        for plan in plans() {
            for d in dashboards() {
                for t in d.targets() {
                    if let Some(c) = t.consumer(&plan.environment) {
                        checked += 1;
                        problems.extend(signals::check_consumer(&cat, &plan, &c));
                    }
                }
            }
        }
        assert!(
            checked >= 3 * 30,
            "only {checked} CloudWatch targets checked"
        );
        assert!(
            problems.is_empty(),
            "{} Grafana target(s) read what no producer emits (docs/signals.json):\n  - {}",
            problems.len(),
            problems.join("\n  - ")
        );
    }

    /// The check above catches a target with a dimension too few, a `function` without the
    /// environment suffix, and a metric nobody emits.
    #[test]
    fn the_grafana_check_catches_wrong_targets() {
        let cat = Catalogue::load(&repo_root()).unwrap_or_else(|e| panic!("{e}"));
        let prod = plans()
            .into_iter()
            .find(|p| p.environment == "prod")
            .expect("prod plan");
        let board = dashboards()
            .into_iter()
            .find(|d| d.file == "unified-api-health")
            .expect("unified-api-health");
        let probe = board
            .targets()
            .into_iter()
            .find(|t| {
                matches!(&t.query, Query::CloudWatch { metric, .. } if metric == "api_availability")
            })
            .expect("an api_availability target");
        assert_eq!(
            signals::check_consumer(&cat, &prod, &probe.consumer("prod").unwrap()),
            None
        );
        type Edit<'a> = &'a dyn Fn(&mut BTreeMap<String, String>, &mut String);
        let with = |edit: Edit| {
            let mut t = probe.clone();
            if let Query::CloudWatch {
                dimensions, metric, ..
            } = &mut t.query
            {
                edit(dimensions, metric);
            }
            let c: Consumer = t.consumer("prod").unwrap();
            signals::check_consumer(&cat, &prod, &c).unwrap_or_default()
        };
        let cases: [(Edit, &str); 3] = [
            (
                &|d, _| {
                    d.remove("target");
                },
                "is never emitted",
            ),
            (
                &|d, _| {
                    d.insert("function".into(), "uptime-probe".into());
                },
                "is emitted by uptime-probe-prod",
            ),
            (&|_, m| *m = "api_uptime".into(), "no producer"),
        ];
        for (i, (edit, expected)) in cases.iter().enumerate() {
            let found = with(*edit);
            assert!(
                found.contains(expected),
                "case {i}: expected {expected:?}, got {found:?}"
            );
        }
    }
}
