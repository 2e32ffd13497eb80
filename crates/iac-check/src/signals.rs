//! The signal catalogue (docs/signals.json) against its consumers: every metric an alarm, a
//! composite alarm, a dashboard widget, a chaos stop condition or steady-state probe, the chaos
//! error-budget gate or an SLO's SLI reads must be a (namespace, name, dimension set) some
//! producer emits. CloudWatch matches the full dimension set exactly: a consumer that names one
//! dimension fewer or more than the producer sees no data at all, and an alarm on it sits in
//! OK (notBreaching) or INSUFFICIENT_DATA forever.
//!
//! Consumers are read from `terraform plan` JSON (tools/tf-plan.sh), not the .tf text, so every
//! for_each, local and jsonencode is evaluated as Terraform would deploy it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde_json::Value;

/// One catalogue entry (docs/signals.json).
#[derive(Debug, Clone)]
pub struct Signal {
    pub namespace: String,
    pub name: String,
    pub unit: String,
    /// Every dimension set it is emitted with, names sorted.
    pub dimensions: Vec<BTreeSet<String>>,
    /// A function of functions/, `aws`, or `outside:<who>`.
    pub producer: String,
    /// `continuous` (every period while healthy) or `event`.
    pub cadence: String,
    /// For `aws`: the resource type without which AWS publishes nothing.
    pub requires: Option<String>,
    pub doc: String,
}

pub struct Catalogue {
    pub signals: Vec<Signal>,
}

impl Catalogue {
    pub fn load(repo: &Path) -> Result<Catalogue, String> {
        let path = repo.join("docs/signals.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Catalogue::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Catalogue, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("docs/signals.json: {e}"))?;
        let list = v["metrics"]
            .as_array()
            .ok_or("docs/signals.json: no `metrics` array")?;
        let mut signals = vec![];
        for (i, m) in list.iter().enumerate() {
            let s = |k: &str| -> Result<String, String> {
                m[k].as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("docs/signals.json: metrics[{i}].{k} missing"))
            };
            let dims = m["dimensions"]
                .as_array()
                .ok_or_else(|| format!("docs/signals.json: metrics[{i}].dimensions missing"))?
                .iter()
                .map(|set| {
                    set.as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|d| d.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect();
            let cadence = s("cadence")?;
            if cadence != "continuous" && cadence != "event" {
                return Err(format!(
                    "docs/signals.json: metrics[{i}].cadence is {cadence:?}: use continuous or event"
                ));
            }
            signals.push(Signal {
                namespace: s("namespace")?,
                name: s("name")?,
                unit: s("unit")?,
                dimensions: dims,
                producer: s("producer")?,
                cadence,
                requires: m["requires"].as_str().map(str::to_string),
                doc: s("doc")?,
            });
        }
        Ok(Catalogue { signals })
    }

    /// Entries of this metric (one per producer: `function_errors` has ten).
    pub fn find(&self, namespace: &str, name: &str) -> Vec<&Signal> {
        self.signals
            .iter()
            .filter(|s| s.namespace == namespace && s.name == name)
            .collect()
    }
}

/// Something that reads a metric.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// `prod: aws_cloudwatch_metric_alarm.chaos_stop["rq_backlog"]`, `events/chaos-runner/experiments.json: ...`.
    pub source: String,
    pub namespace: String,
    pub name: String,
    /// Dimension name -> value ("" when a SEARCH schema names it without a value).
    pub dimensions: BTreeMap<String, String>,
    /// For alarms: treat_missing_data.
    pub treat_missing_data: Option<String>,
    /// For alarms: the alarm's name.
    pub alarm_name: Option<String>,
    /// Read from a shipped registry (deployment data: bucket names and the like are the
    /// deployer's to set), not from the plan.
    pub from_registry: bool,
}

impl Consumer {
    /// A consumer that is not an alarm and not from a registry (the fields set after).
    pub fn reading(
        source: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
        dimensions: BTreeMap<String, String>,
    ) -> Consumer {
        Consumer {
            source: source.into(),
            namespace: namespace.into(),
            name: name.into(),
            dimensions,
            treat_missing_data: None,
            alarm_name: None,
            from_registry: false,
        }
    }
}

impl fmt::Display for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self
            .dimensions
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        write!(
            f,
            "{}: {} {} {{{}}}",
            self.source,
            self.namespace,
            self.name,
            dims.join(", ")
        )
    }
}

/// A planned deployment: `terraform show -json` of one environment's plan.
pub struct Plan {
    pub environment: String,
    pub json: Value,
}

impl Plan {
    fn afters<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.json["resource_changes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(move |rc| rc["type"] == kind)
            .map(|rc| {
                (
                    rc["address"].as_str().unwrap_or("?"),
                    &rc["change"]["after"],
                )
            })
    }

    /// The values of attribute `attr` of every planned resource of `kind`.
    pub fn values(&self, kind: &str, attr: &str) -> BTreeSet<String> {
        self.afters(kind)
            .filter_map(|(_, a)| a[attr].as_str().map(str::to_string))
            .collect()
    }

    pub fn alarm_names(&self) -> BTreeSet<String> {
        let mut names = self.values("aws_cloudwatch_metric_alarm", "alarm_name");
        names.extend(self.values("aws_cloudwatch_composite_alarm", "alarm_name"));
        names
    }

    /// Every metric the planned alarms and dashboards read.
    pub fn consumers(&self) -> Vec<Consumer> {
        let env = &self.environment;
        let mut out = vec![];
        for (addr, a) in self.afters("aws_cloudwatch_metric_alarm") {
            // (namespace, metric, dimensions) of the plain metric, each metric query and each
            // Metrics Insights expression.
            let mut read = vec![];
            if let Some(name) = a["metric_name"].as_str().filter(|n| !n.is_empty()) {
                read.push((a["namespace"].as_str(), name, string_map(&a["dimensions"])));
            }
            for q in a["metric_query"].as_array().into_iter().flatten() {
                if let Some((ns, name, dims)) = q["expression"].as_str().and_then(insights_query) {
                    out.push(Consumer {
                        treat_missing_data: a["treat_missing_data"].as_str().map(str::to_string),
                        alarm_name: a["alarm_name"].as_str().map(str::to_string),
                        ..Consumer::reading(format!("{env}: {addr}"), ns, name, dims)
                    });
                }
                for m in q["metric"].as_array().into_iter().flatten() {
                    let name = m["metric_name"].as_str().unwrap_or_default();
                    read.push((m["namespace"].as_str(), name, string_map(&m["dimensions"])));
                }
            }
            for (ns, name, dims) in read {
                out.push(Consumer {
                    treat_missing_data: a["treat_missing_data"].as_str().map(str::to_string),
                    alarm_name: a["alarm_name"].as_str().map(str::to_string),
                    ..Consumer::reading(
                        format!("{env}: {addr}"),
                        ns.unwrap_or_default(),
                        name,
                        dims,
                    )
                });
            }
        }
        for (addr, a) in self.afters("aws_cloudwatch_dashboard") {
            let board = a["dashboard_name"].as_str().unwrap_or(addr);
            let body: Value = a["dashboard_body"]
                .as_str()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or(Value::Null);
            for (wi, w) in body["widgets"].as_array().into_iter().flatten().enumerate() {
                let title = w["properties"]["title"].as_str().unwrap_or("");
                let source = format!("{env}: dashboard {board}, widget {wi} \"{title}\"");
                for row in w["properties"]["metrics"].as_array().into_iter().flatten() {
                    out.extend(dashboard_row(&source, row));
                }
            }
        }
        out
    }

    /// Composite alarms' rules name alarms by name: each must be planned.
    pub fn composite_references(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        for (addr, a) in self.afters("aws_cloudwatch_composite_alarm") {
            let rule = a["alarm_rule"].as_str().unwrap_or_default();
            for state in ["ALARM(", "OK(", "INSUFFICIENT_DATA("] {
                for part in rule.split(state).skip(1) {
                    let name = part
                        .trim_start()
                        .trim_start_matches(['"', '\''])
                        .split(['"', '\'', ')'])
                        .next()
                        .unwrap_or_default();
                    // An ARN names the alarm after its last `:alarm:`.
                    let name = name.rsplit(":alarm:").next().unwrap_or(name);
                    out.push((format!("{}: {addr}", self.environment), name.to_string()));
                }
            }
        }
        out
    }
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A dashboard metrics row: `[namespace, metric, dim, value, ..., {options}]`, or
/// `[{"expression": "SEARCH('{ns,dim,...} MetricName=\"m\" dim=\"v\"', ...)"}]` whose schema in
/// braces is the exact dimension set.
fn dashboard_row(source: &str, row: &Value) -> Vec<Consumer> {
    let items = row.as_array().cloned().unwrap_or_default();
    let mut out = vec![];
    for item in &items {
        if let Some(expr) = item["expression"].as_str() {
            out.extend(search_expression(source, expr));
        }
    }
    let names: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
    if names.len() >= 2 && names[0] != "..." {
        let dimensions = names[2..]
            .chunks(2)
            .map(|kv| (kv[0].to_string(), kv.get(1).unwrap_or(&"").to_string()))
            .collect();
        out.push(Consumer::reading(source, names[0], names[1], dimensions));
    }
    out
}

fn search_expression(source: &str, expr: &str) -> Option<Consumer> {
    let open = expr.find("'{")? + 2;
    let close = open + expr[open..].find('}')?;
    let mut schema = expr[open..close]
        .split(',')
        .map(|s| s.trim().trim_matches('"'));
    let namespace = schema.next()?.to_string();
    let mut dimensions: BTreeMap<String, String> =
        schema.map(|d| (d.to_string(), String::new())).collect();
    let rest = &expr[close + 1..];
    let mut name = String::new();
    // key="value" terms after the schema: MetricName and dimension values.
    for term in rest.split_whitespace() {
        let Some((k, v)) = term.split_once("=\"") else {
            continue;
        };
        let v = v.split('"').next().unwrap_or_default().to_string();
        if k == "MetricName" {
            name = v;
        } else if let Some(slot) = dimensions.get_mut(k) {
            *slot = v;
        }
    }
    Some(Consumer::reading(source, namespace, name, dimensions))
}

/// A Metrics Insights query, `SELECT FUNC(metric) FROM SCHEMA("ns", dim, ...) WHERE dim = 'v'
/// AND ...`: the schema is the exact dimension set (only documents with exactly these
/// dimensions are read); equality filters give values.
fn insights_query(expr: &str) -> Option<(String, String, BTreeMap<String, String>)> {
    let upper = expr.to_ascii_uppercase();
    if !upper.trim_start().starts_with("SELECT") {
        return None;
    }
    let open = expr.find('(')? + 1;
    let name = expr[open..open + expr[open..].find(')')?]
        .trim()
        .trim_matches('"');
    let schema_at = upper.find("SCHEMA(")? + "SCHEMA(".len();
    let schema_end = schema_at + expr[schema_at..].find(')')?;
    let mut parts = expr[schema_at..schema_end]
        .split(',')
        .map(|p| p.trim().trim_matches('"'));
    let namespace = parts.next()?.to_string();
    let mut dimensions: BTreeMap<String, String> =
        parts.map(|d| (d.to_string(), String::new())).collect();
    if let Some(w) = upper.find(" WHERE ") {
        for cond in expr[w + 7..].split(" AND ") {
            if let Some((k, v)) = cond.split_once('=') {
                let (k, v) = (k.trim().trim_matches('"'), v.trim().trim_matches('\''));
                if let Some(slot) = dimensions.get_mut(k) {
                    *slot = v.to_string();
                }
            }
        }
    }
    Some((namespace, name.to_string(), dimensions))
}

/// Metrics a shipped registry reads: the chaos registry's steady-state probes and error-budget
/// source, with `${environment}` as the runner substitutes it; the SLO file's SLIs.
pub fn registry_consumers(repo: &Path, environment: &str) -> Vec<Consumer> {
    let mut out = vec![];
    let read = |rel: &str| -> Value {
        std::fs::read_to_string(repo.join(rel))
            .ok()
            .and_then(|t| serde_json::from_str(&t.replace("${environment}", environment)).ok())
            .unwrap_or(Value::Null)
    };
    let metric = |source: String, m: &Value, namespace: Option<&str>| Consumer {
        from_registry: true,
        ..Consumer::reading(
            source,
            namespace.or(m["namespace"].as_str()).unwrap_or_default(),
            m["name"]
                .as_str()
                .or(m["metric"].as_str())
                .unwrap_or_default(),
            string_map(&m["dimensions"]),
        )
    };
    let chaos = "events/chaos-runner/experiments.json";
    let reg = read(chaos);
    if let Some(m) = reg["error_budget"]["source"].get("metric") {
        out.push(metric(
            format!("{environment}: {chaos} error_budget.source"),
            m,
            None,
        ));
    }
    for e in reg["experiments"].as_array().into_iter().flatten() {
        let ename = e["name"].as_str().unwrap_or("?");
        for (i, p) in e["steady_state"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(m) = p.get("metric") {
                out.push(metric(
                    format!("{environment}: {chaos} {ename}.steady_state[{i}]"),
                    m,
                    None,
                ));
            }
        }
    }
    let slos_path = "infra/slo/slos.json";
    let slos = read(slos_path);
    let ns = slos["namespace"].as_str().unwrap_or_default().to_string();
    for s in slos["slos"].as_array().into_iter().flatten() {
        let sname = s["name"].as_str().unwrap_or("?");
        for part in ["errors", "total"] {
            out.push(metric(
                format!("{environment}: {slos_path} {sname}.sli.{part}"),
                &s["sli"][part],
                Some(&ns),
            ));
        }
    }
    out
}

/// The stop-condition alarm names of the chaos registry.
pub fn registry_stop_alarms(repo: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo.join("events/chaos-runner/experiments.json"))
        .unwrap_or_default();
    let reg: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    reg["experiments"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["stop_conditions"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["alarm"].as_str().map(str::to_string))
        .collect()
}

/// What is wrong with one consumer, or None when a producer emits exactly what it reads.
pub fn check_consumer(cat: &Catalogue, plan: &Plan, c: &Consumer) -> Option<String> {
    let entries = cat.find(&c.namespace, &c.name);
    if entries.is_empty() {
        return Some(format!(
            "{c}: no producer: {} {} is not in docs/signals.json",
            c.namespace, c.name
        ));
    }
    let names: BTreeSet<String> = c.dimensions.keys().cloned().collect();
    let with_set: Vec<&&Signal> = entries
        .iter()
        .filter(|s| s.dimensions.contains(&names))
        .collect();
    if with_set.is_empty() {
        let sets: Vec<String> = entries
            .iter()
            .flat_map(|s| s.dimensions.iter())
            .map(|d| format!("{{{}}}", d.iter().cloned().collect::<Vec<_>>().join(", ")))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        return Some(format!(
            "{c}: dimension set {{{}}} is never emitted: {} {} is emitted with {} (CloudWatch matches the set exactly)",
            names.iter().cloned().collect::<Vec<_>>().join(", "),
            c.namespace,
            c.name,
            sets.join(" or ")
        ));
    }
    // A fixed `function` value names the producer's deployed function.
    if let Some(f) = c.dimensions.get("function").filter(|f| !f.is_empty()) {
        let expected: Vec<String> = with_set
            .iter()
            .map(|s| format!("{}-{}", s.producer, plan.environment))
            .collect();
        if !expected.contains(f) {
            return Some(format!(
                "{c}: function={f}, but {} is emitted by {}",
                c.name,
                expected.join(" or ")
            ));
        }
        if !plan
            .values("aws_lambda_function", "function_name")
            .contains(f)
        {
            return Some(format!(
                "{c}: its producer {f} is not deployed in {}",
                plan.environment
            ));
        }
    }
    if let Some(e) = c.dimensions.get("environment").filter(|e| !e.is_empty()) {
        if e != &plan.environment {
            return Some(format!(
                "{c}: environment={e} in the {} deployment",
                plan.environment
            ));
        }
    }
    // AWS publishes some metrics only for a declared resource.
    for s in &with_set {
        let Some(kind) = &s.requires else { continue };
        let (attr, dim) = match kind.as_str() {
            "aws_s3_bucket_metric" => ("name", "FilterId"),
            "aws_lambda_function" => ("function_name", "FunctionName"),
            "aws_sqs_queue" => ("name", "QueueName"),
            "aws_db_instance" => ("identifier", "DBInstanceIdentifier"),
            other => return Some(format!("docs/signals.json: unknown `requires` {other}")),
        };
        let Some(value) = c.dimensions.get(dim).filter(|v| !v.is_empty()) else {
            continue;
        };
        let declared = plan.values(kind, attr);
        if c.from_registry {
            // A registry is one file for every environment, and names the deployer's
            // resources: it is checked where the environment has a resource of the kind
            // (without one the experiment's probe finds no datapoint and the runner refuses),
            // for the resource's name but not the bucket's.
            let planned = plan.afters(kind).count() > 0;
            if planned
                && !plan
                    .afters(kind)
                    .any(|(_, a)| a[attr].as_str() == Some(value))
            {
                return Some(format!(
                    "{c}: AWS publishes {} only for a declared {kind} ({attr} = {value:?}); none is planned",
                    c.name
                ));
            }
            continue;
        }
        let bucket_ok = kind != "aws_s3_bucket_metric"
            || c.dimensions.get("BucketName").is_some_and(|b| {
                plan.afters(kind).any(|(_, a)| {
                    a["bucket"].as_str() == Some(b) && a["name"].as_str() == Some(value)
                })
            });
        if !declared.contains(value) || !bucket_ok {
            return Some(format!(
                "{c}: AWS publishes {} only for a declared {kind} ({attr} = {value:?}{}); none is planned",
                c.name,
                c.dimensions
                    .get("BucketName")
                    .map(|b| format!(", bucket = {b:?}"))
                    .unwrap_or_default()
            ));
        }
    }
    None
}

/// Stop-condition alarms on a continuous signal must treat missing data as breaching: the
/// signal going silent during an experiment (its producer or its target down) stops it, and
/// a silent signal before one keeps the alarm out of OK, so the runner does not start.
pub fn check_stop_alarm_missing_data(
    cat: &Catalogue,
    consumers: &[Consumer],
    stop_alarms: &BTreeSet<String>,
) -> Vec<String> {
    let mut out = vec![];
    for c in consumers {
        let Some(name) = &c.alarm_name else { continue };
        if !stop_alarms.contains(name) {
            continue;
        }
        let continuous = cat
            .find(&c.namespace, &c.name)
            .iter()
            .any(|s| s.cadence == "continuous");
        let missing = c.treat_missing_data.as_deref().unwrap_or("missing");
        if continuous && missing != "breaching" {
            out.push(format!(
                "{c}: stop-condition alarm {name} reads a continuous signal with treat_missing_data = {missing}: use breaching (docs/observability.md, \"Missing data\")"
            ));
        }
    }
    out
}

/// The plan JSON of `env` from `make plan`, made again when it is missing or older than any
/// file under infra/ (so `cargo test` never checks a stale plan).
pub fn load_plans(repo: &Path, envs: &[&str]) -> Result<Vec<Plan>, String> {
    let newest = newest_mtime(&repo.join("infra"));
    let path = |e: &str| repo.join(format!(".local/plan/{e}.json"));
    let stale: Vec<&str> = envs
        .iter()
        .copied()
        .filter(|e| {
            std::fs::metadata(path(e))
                .and_then(|m| m.modified())
                .map_or(true, |t| t < newest)
        })
        .collect();
    if !stale.is_empty() {
        let out = Command::new("bash")
            .arg(repo.join("tools/tf-plan.sh"))
            .args(&stale)
            .current_dir(repo)
            .output()
            .map_err(|e| format!("cannot run tools/tf-plan.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "tools/tf-plan.sh {} failed:\n{}{}",
                stale.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    envs.iter()
        .map(|e| {
            let text = std::fs::read_to_string(path(e))
                .map_err(|err| format!("{}: {err}", path(e).display()))?;
            let json = serde_json::from_str(&text)
                .map_err(|err| format!("{}: {err}", path(e).display()))?;
            Ok(Plan {
                environment: e.to_string(),
                json,
            })
        })
        .collect()
}

fn newest_mtime(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = entry.metadata().and_then(|m| m.modified()) {
                newest = newest.max(t);
            }
        }
    }
    newest
}

/// A short, environment-neutral name for where a consumer sits: an alarm's name, a dashboard's
/// name, a registry file.
fn consumer_label(c: &Consumer, environment: &str) -> String {
    let neutral = |s: &str| s.replace(&format!("-{environment}"), "-<env>");
    if let Some(a) = &c.alarm_name {
        // The SLO burn-rate alarms come eight per SLO (infra/slo_alarms.tf): one label each.
        if let Some((slo, _)) = a.split_once("-burn-") {
            return format!("alarms `{slo}-burn-*`");
        }
        return format!("alarm `{}`", neutral(a));
    }
    if let Some(rest) = c.source.strip_prefix(&format!("{environment}: dashboard ")) {
        let board = rest.split(',').next().unwrap_or(rest);
        return format!("dashboard `{}`", neutral(board));
    }
    let rest = c
        .source
        .strip_prefix(&format!("{environment}: "))
        .unwrap_or(&c.source);
    let file = rest.split(' ').next().unwrap_or(rest);
    format!("`{file}`")
}

/// The catalogue as a Markdown table for docs/observability.md, with what reads each metric
/// in `plan` (prod: the fullest deployment) and the registries.
pub fn render_markdown(cat: &Catalogue, plan: &Plan, consumers: &[Consumer]) -> String {
    let mut rows = vec![
        "| namespace | metric | unit | dimension sets | producer | cadence | read by (prod) |"
            .to_string(),
        "| --- | --- | --- | --- | --- | --- | --- |".to_string(),
    ];
    let mut seen = BTreeSet::new();
    for s in &cat.signals {
        if !seen.insert((s.namespace.clone(), s.name.clone())) {
            continue;
        }
        let entries = cat.find(&s.namespace, &s.name);
        let producers: BTreeSet<String> = entries.iter().map(|e| e.producer.clone()).collect();
        let producer = if producers.len() > 3 {
            format!("every function ({})", producers.len())
        } else {
            producers.into_iter().collect::<Vec<_>>().join(", ")
        };
        let sets: BTreeSet<String> = entries
            .iter()
            .flat_map(|e| e.dimensions.iter())
            .map(|d| d.iter().cloned().collect::<Vec<_>>().join(", "))
            .collect();
        let readers: BTreeSet<String> = consumers
            .iter()
            .filter(|c| c.namespace == s.namespace && c.name == s.name)
            .map(|c| consumer_label(c, &plan.environment))
            .collect();
        let readers = if readers.is_empty() {
            "—".to_string()
        } else {
            readers.into_iter().collect::<Vec<_>>().join(", ")
        };
        rows.push(format!(
            "| {} | `{}` | {} | {} | {} | {} | {} |",
            s.namespace,
            s.name,
            s.unit,
            sets.into_iter()
                .map(|d| format!("{{{d}}}"))
                .collect::<Vec<_>>()
                .join(" "),
            producer,
            s.cadence,
            readers
        ));
    }
    rows.join("\n") + "\n"
}

/// One metric of one EMF document a function printed: its namespace, name and dimensions
/// (name -> value), as CloudWatch would extract it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Emitted {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

/// Every metric of every EMF document in a log (JSON lines; other lines are skipped).
pub fn emitted_documents(log: &str) -> BTreeSet<Emitted> {
    let mut out = BTreeSet::new();
    for line in log.lines() {
        let line = line.trim_start_matches('\0').trim();
        if !line.starts_with('{') || !line.contains("\"_aws\"") {
            continue;
        }
        let Ok(doc) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        for directive in doc["_aws"]["CloudWatchMetrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let namespace = directive["Namespace"].as_str().unwrap_or_default();
            for set in directive["Dimensions"].as_array().into_iter().flatten() {
                let dimensions: BTreeMap<String, String> = set
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|d| {
                        let v = &doc[d];
                        (
                            d.to_string(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
                    .collect();
                for m in directive["Metrics"].as_array().into_iter().flatten() {
                    if let Some(name) = m["Name"].as_str() {
                        out.insert(Emitted {
                            namespace: namespace.to_string(),
                            name: name.to_string(),
                            dimensions: dimensions.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Dimensions whose value is a run's outcome, not configuration: a consumer filtering on one
/// (`outcome = 'stopped'`) is matched by a document of the same shape with another value, since
/// a demo that stopped every experiment to prove the alarm would be a strange demo.
pub const OUTCOME_DIMENSIONS: [&str; 3] = ["outcome", "reason", "mode"];

/// The dynamic check: each consumer of a function's metric must match at least one document
/// the functions printed in a local run: same namespace, metric and exact dimension set; the
/// same `function` (deployed `<fn>-<env>` is `<fn>` locally) and the same value of every other
/// fixed dimension but `environment` and the outcome dimensions. AWS and outside producers are
/// not ours to run. Returns the consumers no document matched.
pub fn check_emitted(
    cat: &Catalogue,
    environment: &str,
    consumers: &[Consumer],
    emitted: &BTreeSet<Emitted>,
) -> Vec<String> {
    let mut out = vec![];
    for c in consumers {
        let ours = cat
            .find(&c.namespace, &c.name)
            .iter()
            .any(|s| !(s.producer == "aws" || s.producer.starts_with("outside:")));
        if !ours {
            continue;
        }
        let names: BTreeSet<&String> = c.dimensions.keys().collect();
        let shaped: Vec<&Emitted> = emitted
            .iter()
            .filter(|e| {
                e.namespace == c.namespace
                    && e.name == c.name
                    && e.dimensions.keys().collect::<BTreeSet<_>>() == names
            })
            .collect();
        let matched = shaped.iter().any(|e| {
            c.dimensions.iter().all(|(k, v)| {
                let got = e.dimensions.get(k).map(String::as_str).unwrap_or_default();
                v.is_empty()
                    || k == "environment"
                    || OUTCOME_DIMENSIONS.contains(&k.as_str())
                    || got == v
                    || (k == "function" && v.strip_suffix(&format!("-{environment}")) == Some(got))
            })
        });
        if !matched {
            let seen: Vec<String> = shaped
                .iter()
                .map(|e| format!("{:?}", e.dimensions))
                .take(3)
                .collect();
            out.push(if seen.is_empty() {
                format!("{c}: no document with this namespace, name and dimension set was printed")
            } else {
                format!("{c}: printed only with other values: {}", seen.join("; "))
            });
        }
    }
    out.sort();
    out.dedup();
    out
}
