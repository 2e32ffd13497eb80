//! A/B mode: one scenario against two deployments of the same service (the playbook's
//! "evaluate Graviton-based instances; run load test comparisons and switch if ≥ 15 % cost
//! reduction at equal p95"). The scenario's time line is cut into blocks of `block_seconds`
//! that go to the arms in the order A B B A A B B A … (each arm gets the same mean position in
//! time, so a drift in the target's neighbourhood, a ramp or a noisy hour hits both alike);
//! each arm's shard results merge into its own histograms; the verdict weighs cost per
//! 1,000 successful requests from a price table against a bootstrap interval of the p95 ratio.
//!
//! This module is the pure part (spec, blocks, prices, bootstrap, verdict, report); the
//! engine's slice and finalize steps for an A/B run are at the bottom.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::future::join_all;
use hdrhistogram::Histogram;
use loadtest_core::{Scenario, Window};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shared::{SuiteError, SuiteResult};

use crate::aggregate::{Aggregate, Numbers};
use crate::plan::SlicePlan;
use crate::port::{Invoker, Notifier, Store};
use crate::run::{internal, iso, now_ms, percentile_fn, to_bytes, Engine, RunDoc};
use crate::threshold::{judge, parse_thresholds, Judged};

/// The price table arms read by instance type (documented in the file itself and in
/// docs/loadtest-coordinator.md).
pub const PRICE_TABLE: &str = include_str!("../prices/ec2-on-demand-us-east-1.json");

/// Fewer requests than this on an arm and its p95 stands on fewer than 10 samples above it:
/// no verdict.
pub const MIN_SAMPLES: u64 = 200;
/// Bootstrap replicates; the seed is fixed so a report is reproducible from its histograms.
pub const BOOTSTRAP_REPS: u32 = 4000;
pub const BOOTSTRAP_SEED: u64 = 0x5eed_ab01;
/// Two-sided confidence of the p95-ratio interval.
pub const CONFIDENCE: f64 = 0.95;

const FIX: &str = "send {\"scenario\": \"quote-generation\", \"ab\": {\"current\": {\"name\": \"x86\", \"base_url\": \"https://…\", \"instance_type\": \"m6i.large\", \"instances\": 4}, \"candidate\": {\"name\": \"arm64\", \"base_url\": \"https://…\", \"instance_type\": \"m7g.large\", \"instances\": 4}}} (docs/loadtest-coordinator.md, \"A/B comparison\")";

/// The `ab` part of a start payload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbSpec {
    /// What runs today.
    pub current: ArmSpec,
    /// What a SWITCH would move to.
    pub candidate: ArmSpec,
    /// Length of one interleaving block.
    #[serde(default = "default_block_seconds")]
    pub block_seconds: u64,
    /// "Equal p95": the candidate's p95 is at most this much above the current's, with 95 %
    /// confidence (0.05 = 5 %).
    #[serde(default = "default_p95_margin")]
    pub p95_margin: f64,
    /// The cost reduction that justifies a switch (the playbook's 15 %).
    #[serde(default = "default_min_saving")]
    pub min_saving: f64,
}

fn default_block_seconds() -> u64 {
    60
}
fn default_p95_margin() -> f64 {
    0.05
}
fn default_min_saving() -> f64 {
    0.15
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmSpec {
    pub name: String,
    pub base_url: String,
    pub instance_type: String,
    #[serde(default = "one")]
    pub instances: u32,
    /// Overrides the table (another region, a Savings Plan, Fargate): USD per instance-hour.
    pub price_per_hour: Option<f64>,
}

fn one() -> u32 {
    1
}

/// An arm as the run records it: the spec with its price resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    pub name: String,
    pub role: String,
    pub base_url: String,
    pub instance_type: String,
    pub instances: u32,
    pub price_per_hour: f64,
    /// "price table us-east-1 2026-11" or "payload".
    pub price_source: String,
}

impl Arm {
    pub fn fleet_per_hour(&self) -> f64 {
        self.price_per_hour * f64::from(self.instances)
    }
}

/// What `run.json` holds for an A/B run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbPlan {
    /// `[current, candidate]`.
    pub arms: [Arm; 2],
    pub block_ms: u64,
    pub p95_margin: f64,
    pub min_saving: f64,
}

#[derive(Debug, Deserialize)]
struct PriceFile {
    region: String,
    as_of: String,
    prices: BTreeMap<String, f64>,
}

/// The compiled-in price table: `(region, as_of, prices)`.
pub fn price_table() -> SuiteResult<(String, String, BTreeMap<String, f64>)> {
    let f: PriceFile = serde_json::from_str(PRICE_TABLE)
        .map_err(|e| SuiteError::Internal(format!("price table: {e}")))?;
    Ok((f.region, f.as_of, f.prices))
}

fn bad(field: &str, message: impl Into<String>) -> SuiteError {
    SuiteError::invalid(format!("ab.{field}"), message, FIX)
}

/// Reads the `ab` payload, naming the field at fault.
pub fn parse_spec(v: &Value) -> SuiteResult<AbSpec> {
    serde_path_to_error::deserialize(v.clone()).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "ab".to_string()
        } else {
            format!("ab.{path}")
        };
        SuiteError::invalid(field, e.inner().to_string(), FIX)
    })
}

fn http_url(u: &str) -> bool {
    (u.starts_with("http://") || u.starts_with("https://")) && u.len() > "https://".len()
}

/// Checks the spec and prices its arms.
pub fn resolve(spec: &AbSpec) -> SuiteResult<AbPlan> {
    let (region, as_of, prices) = price_table()?;
    let arm = |role: &str, a: &ArmSpec| -> SuiteResult<Arm> {
        if a.name.trim().is_empty() {
            return Err(bad(&format!("{role}.name"), "is empty"));
        }
        if !http_url(&a.base_url) {
            return Err(bad(
                &format!("{role}.base_url"),
                format!("{:?} is not an http(s) URL", a.base_url),
            ));
        }
        if a.instances == 0 {
            return Err(bad(&format!("{role}.instances"), "must be at least 1"));
        }
        let (price, source) = match a.price_per_hour {
            Some(p) if p.is_finite() && p > 0.0 => (p, "payload".to_string()),
            Some(p) => {
                return Err(bad(
                    &format!("{role}.price_per_hour"),
                    format!("{p} is not a price (USD per instance-hour > 0)"),
                ))
            }
            None => match prices.get(&a.instance_type) {
                Some(p) => (*p, format!("price table {region} {as_of}")),
                None => {
                    return Err(bad(
                        &format!("{role}.instance_type"),
                        format!(
                            "{:?} is not in the price table ({}); send price_per_hour for it",
                            a.instance_type,
                            prices.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ))
                }
            },
        };
        Ok(Arm {
            name: a.name.trim().to_string(),
            role: role.to_string(),
            base_url: a.base_url.trim_end_matches('/').to_string(),
            instance_type: a.instance_type.clone(),
            instances: a.instances,
            price_per_hour: price,
            price_source: source,
        })
    };
    let current = arm("current", &spec.current)?;
    let candidate = arm("candidate", &spec.candidate)?;
    if current.name == candidate.name {
        return Err(bad("candidate.name", "is the current arm's name too"));
    }
    if current.base_url == candidate.base_url {
        return Err(bad(
            "candidate.base_url",
            "is the current arm's target too: an A/B run compares two deployments",
        ));
    }
    if spec.block_seconds == 0 || spec.block_seconds > 3600 {
        return Err(bad("block_seconds", "must be 1 to 3600"));
    }
    if !(spec.p95_margin.is_finite() && (0.0..1.0).contains(&spec.p95_margin)) {
        return Err(bad("p95_margin", "must be a fraction in [0, 1), e.g. 0.05"));
    }
    if !(spec.min_saving.is_finite() && (0.0..1.0).contains(&spec.min_saving)) {
        return Err(bad("min_saving", "must be a fraction in [0, 1), e.g. 0.15"));
    }
    Ok(AbPlan {
        arms: [current, candidate],
        block_ms: spec.block_seconds * 1000,
        p95_margin: spec.p95_margin,
        min_saving: spec.min_saving,
    })
}

/// Which arm block `g` (0-based, counted from t0) goes to: A B B A, repeated. Over any four
/// consecutive blocks each arm's mean block position is the same, so a linear drift cancels.
pub fn arm_of_block(g: u64) -> usize {
    [0, 1, 1, 0][(g % 4) as usize]
}

/// The blocks inside `window`: `(global block number, the part of the block in the window)`.
/// A block cut by a slice boundary keeps its arm on both sides.
pub fn blocks(window: Window, block_ms: u64) -> Vec<(u64, Window)> {
    let block_ms = block_ms.max(1);
    let mut out = vec![];
    let mut g = window.from_ms / block_ms;
    while g * block_ms < window.to_ms {
        let w = Window {
            from_ms: (g * block_ms).max(window.from_ms),
            to_ms: ((g + 1) * block_ms).min(window.to_ms),
        };
        if w.from_ms < w.to_ms {
            out.push((g, w));
        }
        g += 1;
    }
    out
}

/// Seconds of load each arm got over `windows`.
pub fn arm_seconds(windows: &[Window], block_ms: u64) -> [f64; 2] {
    let mut s = [0.0; 2];
    for w in windows {
        for (g, b) in blocks(*w, block_ms) {
            s[arm_of_block(g)] += (b.to_ms - b.from_ms) as f64 / 1000.0;
        }
    }
    s
}

/// A two-sided interval with its point estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub point: f64,
    pub lo: f64,
    pub hi: f64,
}

/// The p95 of a bootstrap resample of `h`, drawn directly: the resample's 95th-percentile
/// order statistic (rank k = ⌈0.95 n⌉ of n draws) is the empirical quantile at the k-th of n
/// uniform order statistics, which is Beta(k, n − k + 1). One Beta draw per replicate instead
/// of n draws and a sort: the same distribution as resampling the requests one by one
/// (checked against that in the tests), at a cost independent of the request count.
fn resampled_p95(h: &Histogram<u64>, beta: &Beta<f64>, rng: &mut StdRng) -> f64 {
    let u: f64 = beta.sample(rng);
    h.value_at_quantile(u.clamp(0.0, 1.0)) as f64
}

fn p95_beta(n: u64) -> Option<Beta<f64>> {
    let k = (0.95 * n as f64).ceil().max(1.0);
    Beta::new(k, n as f64 - k + 1.0).ok()
}

/// The ratio candidate p95 ÷ current p95 and its percentile-bootstrap interval (the two arms
/// resampled independently). `None` when an arm has no sample.
pub fn p95_ratio_interval(
    current: &Histogram<u64>,
    candidate: &Histogram<u64>,
    reps: u32,
    seed: u64,
) -> Option<Interval> {
    if current.is_empty() || candidate.is_empty() {
        return None;
    }
    let (bc, bk) = (p95_beta(current.len())?, p95_beta(candidate.len())?);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ratios: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let c = resampled_p95(current, &bc, &mut rng).max(1.0);
            resampled_p95(candidate, &bk, &mut rng) / c
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let at =
        |q: f64| ratios[((q * (ratios.len() - 1) as f64).round() as usize).min(ratios.len() - 1)];
    let tail = (1.0 - CONFIDENCE) / 2.0;
    Some(Interval {
        point: candidate.value_at_quantile(0.95) as f64
            / (current.value_at_quantile(0.95) as f64).max(1.0),
        lo: at(tail),
        hi: at(1.0 - tail),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AbVerdict {
    Switch,
    Stay,
    Inconclusive,
}

/// What the verdict reads of one arm.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmOutcome {
    pub name: String,
    pub samples: u64,
    pub no_verdict: Option<String>,
    /// Thresholds of the scenario this arm failed (`metric expr`).
    pub failed_thresholds: Vec<String>,
    pub cost_per_1k: Option<f64>,
}

/// USD per 1,000 successful requests at the rate the arm served: the fleet's hourly price ÷
/// the thousands of successful requests it served per hour.
pub fn cost_per_1k(fleet_per_hour: f64, ok: u64, seconds: f64) -> Option<f64> {
    if ok == 0 || seconds <= 0.0 {
        return None;
    }
    let per_hour = ok as f64 / seconds * 3600.0;
    Some(fleet_per_hour / (per_hour / 1000.0))
}

/// The rule, in order (docs/loadtest-coordinator.md, "A/B comparison"):
/// 1. an arm without a verdict of its own (outage, most load unsent, failed shards) or with
///    fewer than `MIN_SAMPLES` requests → INCONCLUSIVE;
/// 2. the candidate fails a threshold the current passes → STAY;
/// 3. the p95 ratio's interval lies wholly above 1 + margin (the candidate is slower) → STAY;
/// 4. the saving (1 − candidate cost ÷ current cost, per 1,000 requests) is below
///    `min_saving` → STAY;
/// 5. the interval reaches above 1 + margin (equal p95 not shown) → INCONCLUSIVE;
/// 6. otherwise → SWITCH.
pub fn decide(
    plan: &AbPlan,
    current: &ArmOutcome,
    candidate: &ArmOutcome,
    ratio: Option<Interval>,
) -> (AbVerdict, String) {
    use AbVerdict::*;
    for a in [current, candidate] {
        if let Some(why) = &a.no_verdict {
            return (Inconclusive, format!("{} has no verdict: {why}", a.name));
        }
        if a.samples < MIN_SAMPLES {
            return (
                Inconclusive,
                format!(
                    "{} has {} latency samples, fewer than the {MIN_SAMPLES} a p95 needs: run longer or faster",
                    a.name, a.samples
                ),
            );
        }
    }
    let new_failures: Vec<&String> = candidate
        .failed_thresholds
        .iter()
        .filter(|t| !current.failed_thresholds.contains(t))
        .collect();
    if !new_failures.is_empty() {
        return (
            Stay,
            format!(
                "{} fails {} where {} passes",
                candidate.name,
                new_failures
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                current.name
            ),
        );
    }
    let (Some(r), Some(cc), Some(ck)) = (ratio, current.cost_per_1k, candidate.cost_per_1k) else {
        return (Inconclusive, "no successful request on an arm".into());
    };
    let limit = 1.0 + plan.p95_margin;
    if r.lo > limit {
        return (
            Stay,
            format!(
                "{}'s p95 is {:.1} % above {}'s (95 % interval {:.3}–{:.3}, wholly above {limit:.2})",
                candidate.name,
                100.0 * (r.point - 1.0),
                current.name,
                r.lo,
                r.hi
            ),
        );
    }
    let saving = 1.0 - ck / cc;
    if saving < plan.min_saving {
        return (
            Stay,
            format!(
                "{} costs {:.1} % less per 1,000 requests, below the {:.0} % that justifies a switch",
                candidate.name,
                100.0 * saving,
                100.0 * plan.min_saving
            ),
        );
    }
    if r.hi > limit {
        return (
            Inconclusive,
            format!(
                "{} costs {:.1} % less, but equal p95 is not shown: the p95 ratio's 95 % interval {:.3}–{:.3} reaches above {limit:.2}; run longer",
                candidate.name,
                100.0 * saving,
                r.lo,
                r.hi
            ),
        );
    }
    (
        Switch,
        format!(
            "{} costs {:.1} % less per 1,000 requests at equal p95 (ratio {:.3}, 95 % interval {:.3}–{:.3} ≤ {limit:.2})",
            candidate.name,
            100.0 * saving,
            r.point,
            r.lo,
            r.hi
        ),
    )
}

/// One arm in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    #[serde(flatten)]
    pub arm: Arm,
    /// Seconds of the schedule this arm ran, and in how many blocks.
    pub seconds: f64,
    pub blocks: u32,
    pub numbers: Numbers,
    pub thresholds: Vec<Judged>,
    pub no_verdict: Option<String>,
    pub fleet_per_hour: f64,
    pub cost_per_1k_requests: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbRule {
    pub pattern: String,
    pub block_seconds: f64,
    pub p95_margin: f64,
    pub min_saving: f64,
    pub min_samples: u64,
    pub bootstrap_reps: u32,
    pub confidence: f64,
}

/// `report.json` of an A/B run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbReport {
    /// "ab": tells this report from a run report.
    pub kind: String,
    pub run_id: String,
    pub scenario: String,
    pub environment: String,
    /// SWITCH, STAY or INCONCLUSIVE.
    pub status: AbVerdict,
    pub reason: String,
    pub t0: String,
    pub finished_at: String,
    pub slices_run: u32,
    pub slices_planned: u32,
    pub current: ArmReport,
    pub candidate: ArmReport,
    /// Candidate p95 ÷ current p95, with its bootstrap interval.
    pub p95_ratio: Option<Interval>,
    /// 1 − candidate cost ÷ current cost, per 1,000 successful requests.
    pub saving: Option<f64>,
    pub rule: AbRule,
    pub notes: Vec<String>,
    pub report: String,
    pub markdown: String,
    pub histograms: String,
}

fn money(v: Option<f64>) -> String {
    v.map(|v| format!("${v:.5}")).unwrap_or_else(|| "–".into())
}

/// The report a person reads: the verdict first, then both arms side by side.
pub fn markdown(r: &AbReport) -> String {
    let (a, b) = (&r.current, &r.candidate);
    let mut s = format!(
        "# A/B comparison: {} — {} ({}) vs {} ({})\n\n",
        r.scenario, a.arm.name, a.arm.instance_type, b.arm.name, b.arm.instance_type
    );
    s += &format!(
        "**{}** — {}.\n\nRun `{}` in `{}`, {} → {}, {} of {} slice(s).\n\n",
        match r.status {
            AbVerdict::Switch => format!("SWITCH to {}", b.arm.name),
            AbVerdict::Stay => format!("STAY on {}", a.arm.name),
            AbVerdict::Inconclusive => "INCONCLUSIVE".into(),
        },
        r.reason,
        r.run_id,
        r.environment,
        r.t0,
        r.finished_at,
        r.slices_run,
        r.slices_planned
    );
    let row = |label: &str, f: &dyn Fn(&ArmReport) -> String| {
        format!("| {label} | {} | {} |\n", f(a), f(b))
    };
    s += &format!(
        "| | current: {} | candidate: {} |\n|---|---|---|\n",
        a.arm.name, b.arm.name
    );
    s += &row("target", &|x| format!("`{}`", x.arm.base_url));
    s += &row("fleet", &|x| {
        format!(
            "{} × {} at ${}/h ({}): ${:.4}/h",
            x.arm.instances,
            x.arm.instance_type,
            x.arm.price_per_hour,
            x.arm.price_source,
            x.fleet_per_hour
        )
    });
    s += &row("time under load", &|x| {
        format!("{:.0} s in {} block(s)", x.seconds, x.blocks)
    });
    s += &row("scheduled / sent / ok", &|x| {
        format!(
            "{} / {} / {}",
            x.numbers.scheduled, x.numbers.sent, x.numbers.ok
        )
    });
    s += &row("errors / dropped", &|x| {
        format!(
            "{} / {} ({:.2} %)",
            x.numbers.errors,
            x.numbers.dropped,
            100.0 * x.numbers.error_rate
        )
    });
    s += &row("p50 / p95 / p99 (ms)", &|x| {
        let l = &x.numbers.latency_ms;
        format!("{:.1} / **{:.1}** / {:.1}", l.med, l.p95, l.p99)
    });
    s += &row("thresholds", &|x| {
        if x.thresholds.is_empty() {
            "none".into()
        } else {
            x.thresholds
                .iter()
                .map(|t| {
                    format!(
                        "{} {} {}",
                        t.metric,
                        t.expr,
                        if t.ok { "pass" } else { "**FAIL**" }
                    )
                })
                .collect::<Vec<_>>()
                .join("<br>")
        }
    });
    s += &row("own verdict", &|x| {
        x.no_verdict
            .clone()
            .map(|w| format!("none: {w}"))
            .unwrap_or_else(|| "yes".into())
    });
    s += &row("cost per 1,000 requests", &|x| {
        money(x.cost_per_1k_requests)
    });
    s += "\n";
    if let Some(p) = r.p95_ratio {
        s += &format!(
            "p95 ratio (candidate ÷ current): **{:.3}**, {:.0} % bootstrap interval {:.3}–{:.3}; equal p95 means the interval stays ≤ {:.2}.\n",
            p.point,
            100.0 * r.rule.confidence,
            p.lo,
            p.hi,
            1.0 + r.rule.p95_margin
        );
    }
    if let Some(sv) = r.saving {
        s += &format!(
            "Saving per 1,000 requests: **{:.1} %** (a switch needs ≥ {:.0} %).\n",
            100.0 * sv,
            100.0 * r.rule.min_saving
        );
    }
    s += &format!(
        "\n## Rule\n\nBlocks of {} s in the order {}; p95 from each arm's merged, coordinated-omission corrected histogram; interval by bootstrap ({} replicates, fixed seed, arms resampled independently). SWITCH needs both arms judged, ≥ {} samples each, no threshold the candidate fails that the current passes, the interval's upper end ≤ 1 + {:.2}, and a saving ≥ {:.0} %. docs/loadtest-coordinator.md, \"A/B comparison\".\n",
        r.rule.block_seconds,
        r.rule.pattern,
        r.rule.bootstrap_reps,
        r.rule.min_samples,
        r.rule.p95_margin,
        100.0 * r.rule.min_saving
    );
    if !r.notes.is_empty() {
        s += "\n## Notes\n\n";
        for n in &r.notes {
            s += &format!("- {n}\n");
        }
    }
    s += &format!("\nArtifacts: `{}`, `{}`.\n", r.report, r.histograms);
    s
}

// ---- the engine's steps for an A/B run ---------------------------------------------------

impl<S: Store, I: Invoker, N: Notifier> Engine<'_, S, I, N> {
    /// One slice of an A/B run: each block's shards go to its arm, launched one lead ahead
    /// of the block (never the whole slice at once: a shard waits at most the lead). Returns
    /// the slice's merged aggregate and each arm's.
    pub async fn run_ab_slice(
        &self,
        run: &RunDoc,
        ab: &AbPlan,
        slice: &SlicePlan,
    ) -> (Aggregate, [Aggregate; 2]) {
        let scenarios: [Scenario; 2] = [0, 1].map(|i| {
            let mut s = run.scenario.clone();
            s.target.base_url = ab.arms[i].base_url.clone();
            s
        });
        let calls = blocks(slice.window, ab.block_ms).into_iter().map(|(g, w)| {
            let arm = arm_of_block(g);
            let block = SlicePlan {
                window: w,
                ..slice.clone()
            };
            let scenario = &scenarios[arm];
            async move {
                let launch = (run.t0_unix_ms + w.from_ms).saturating_sub(run.lead_ms);
                let now = now_ms();
                if launch > now {
                    tokio::time::sleep(std::time::Duration::from_millis(launch - now)).await;
                }
                (arm, self.run_shards(run, scenario, &block).await)
            }
        });
        let mut total = Aggregate::default();
        let mut arms = [Aggregate::default(), Aggregate::default()];
        for (arm, agg) in join_all(calls).await {
            total.merge(&agg);
            arms[arm].merge(&agg);
        }
        (total, arms)
    }

    /// Merges each arm over the slices `0..upto`, decides, writes the histograms, the
    /// Markdown and (last) `report.json`. No gate, no baseline, no incident: an A/B run is
    /// ad hoc.
    pub async fn finalize_ab(
        &self,
        run: &RunDoc,
        ab: &AbPlan,
        upto: u32,
        aborted: Option<String>,
    ) -> SuiteResult<Value> {
        let f = &run.folder;
        let report_key = format!("{f}report.json");
        let mut arms = [Aggregate::default(), Aggregate::default()];
        let mut notes = vec![];
        if let Some(why) = aborted {
            notes.push(format!("stopped before the plan's end: {why}"));
        }
        let mut windows = vec![];
        let wait_until = now_ms() + self.settings.finalize_wait.as_millis() as u64;
        for i in 0..upto {
            match self.partial_by(run, i, wait_until).await? {
                Some(p) if p.arms.len() == 2 => {
                    windows.push(run.plan.slices[i as usize].window);
                    for (a, d) in arms.iter_mut().zip(p.arms.iter()) {
                        a.merge(&Aggregate::from_doc(d).map_err(internal)?);
                    }
                }
                _ => notes.push(format!(
                    "slice {i}: no per-arm result within {} s; its time is left out of both arms",
                    self.settings.finalize_wait.as_secs()
                )),
            }
        }
        let seconds = arm_seconds(&windows, ab.block_ms);
        let block_counts = windows.iter().fold([0u32; 2], |mut c, w| {
            for (g, _) in blocks(*w, ab.block_ms) {
                c[arm_of_block(g)] += 1;
            }
            c
        });
        let thresholds = parse_thresholds(&run.scenario.thresholds).unwrap_or_default();
        let arm_report = |i: usize| -> ArmReport {
            let agg = &arms[i];
            let numbers = Numbers::of(agg, seconds[i]);
            let pct = percentile_fn(agg);
            let judged: Vec<Judged> = thresholds
                .iter()
                .map(|t| judge(t, &numbers, &pct))
                .collect();
            let no_verdict = crate::gate::no_verdict(
                true,
                numbers.scheduled,
                numbers.sent,
                numbers.ok,
                numbers.shards_total,
                numbers.shards_failed,
            );
            let arm = ab.arms[i].clone();
            ArmReport {
                seconds: seconds[i],
                blocks: block_counts[i],
                cost_per_1k_requests: cost_per_1k(arm.fleet_per_hour(), numbers.ok, seconds[i]),
                fleet_per_hour: arm.fleet_per_hour(),
                arm,
                numbers,
                thresholds: judged,
                no_verdict,
            }
        };
        let (current, candidate) = (arm_report(0), arm_report(1));
        let outcome = |r: &ArmReport| ArmOutcome {
            name: r.arm.name.clone(),
            samples: r.numbers.latency_ms.count,
            no_verdict: r.no_verdict.clone(),
            failed_thresholds: r
                .thresholds
                .iter()
                .filter(|t| !t.ok)
                .map(|t| format!("{} {}", t.metric, t.expr))
                .collect(),
            cost_per_1k: r.cost_per_1k_requests,
        };
        let ratio = p95_ratio_interval(
            &arms[0].latency,
            &arms[1].latency,
            BOOTSTRAP_REPS,
            BOOTSTRAP_SEED,
        );
        let (status, reason) = decide(ab, &outcome(&current), &outcome(&candidate), ratio);
        let saving = match (current.cost_per_1k_requests, candidate.cost_per_1k_requests) {
            (Some(c), Some(k)) => Some(1.0 - k / c),
            _ => None,
        };
        let uri = |k: &str| format!("s3://{}/{f}{k}", self.settings.bucket);
        let report = AbReport {
            kind: "ab".into(),
            run_id: run.run_id.clone(),
            scenario: run.scenario.name.clone(),
            environment: self.common.environment.clone(),
            status,
            reason,
            t0: iso(run.t0_unix_ms),
            finished_at: iso(now_ms()),
            slices_run: upto,
            slices_planned: run.plan.slices.len() as u32,
            current,
            candidate,
            p95_ratio: ratio,
            saving,
            rule: AbRule {
                pattern: "A B B A (current, candidate, candidate, current), repeated".into(),
                block_seconds: ab.block_ms as f64 / 1000.0,
                p95_margin: ab.p95_margin,
                min_saving: ab.min_saving,
                min_samples: MIN_SAMPLES,
                bootstrap_reps: BOOTSTRAP_REPS,
                confidence: CONFIDENCE,
            },
            notes,
            report: uri("report.json"),
            markdown: uri("report.md"),
            histograms: uri("histograms.json"),
        };
        let hist = json!({
            "format": "HdrHistogram V2 + DEFLATE, base64; values in microseconds (loadtest_core::histo)",
            "run_id": run.run_id,
            "current": {"arm": ab.arms[0].name, "merged": arms[0].to_doc().map_err(internal)?},
            "candidate": {"arm": ab.arms[1].name, "merged": arms[1].to_doc().map_err(internal)?},
        });
        self.store
            .put(
                &format!("{f}histograms.json"),
                to_bytes(&hist)?,
                "application/json",
            )
            .await?;
        self.store
            .put(
                &format!("{f}report.md"),
                Bytes::from(markdown(&report)),
                "text/markdown; charset=utf-8",
            )
            .await?;
        self.store
            .put(&report_key, to_bytes(&report)?, "application/json")
            .await?;
        tracing::info!(run_id = %run.run_id, scenario = %run.scenario.name, verdict = ?report.status,
            reason = %report.reason, "A/B comparison finished");
        serde_json::to_value(&report).map_err(internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadtest_core::new_histogram;

    fn spec(cur: &str, cand: &str) -> AbSpec {
        parse_spec(&json!({
            "current": {"name": "x86", "base_url": "http://127.0.0.1:1", "instance_type": cur, "instances": 2},
            "candidate": {"name": "arm64", "base_url": "http://127.0.0.1:2", "instance_type": cand, "instances": 2}
        }))
        .unwrap()
    }

    #[test]
    fn blocks_alternate_abba_and_keep_their_arm_across_a_slice_boundary() {
        let w = |a, b| Window {
            from_ms: a,
            to_ms: b,
        };
        let order: Vec<usize> = blocks(w(0, 8000), 1000)
            .iter()
            .map(|(g, _)| arm_of_block(*g))
            .collect();
        assert_eq!(order, [0, 1, 1, 0, 0, 1, 1, 0]);
        // A slice boundary at 2.5 s cuts block 2 (candidate) in two: both halves stay candidate.
        let left = blocks(w(0, 2500), 1000);
        let right = blocks(w(2500, 5000), 1000);
        assert_eq!(left.last().unwrap(), &(2, w(2000, 2500)));
        assert_eq!(right.first().unwrap(), &(2, w(2500, 3000)));
        // Five blocks A B B A A: three seconds for the current arm, two for the candidate.
        assert_eq!(arm_seconds(&[w(0, 2500), w(2500, 5000)], 1000), [3.0, 2.0]);
        // Each arm's mean block position is the same over four blocks: a linear drift cancels.
        let mean = |arm| {
            let p: Vec<f64> = (0..8u64)
                .filter(|g| arm_of_block(*g) == arm)
                .map(|g| g as f64)
                .collect();
            p.iter().sum::<f64>() / p.len() as f64
        };
        assert_eq!(mean(0), mean(1));
    }

    #[test]
    fn arms_are_priced_from_the_table_or_the_payload_and_bad_fields_are_named() {
        let p = resolve(&spec("m6i.large", "m6g.large")).unwrap();
        assert_eq!(p.arms[0].price_per_hour, 0.096);
        assert_eq!(p.arms[1].price_per_hour, 0.077);
        assert_eq!(p.arms[1].fleet_per_hour(), 0.154);
        assert_eq!(p.arms[0].price_source, "price table us-east-1 2026-11");
        assert_eq!(p.block_ms, 60_000);
        let e = resolve(&spec("m6i.large", "x9z.huge"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ab.candidate.instance_type") && e.contains("price_per_hour"),
            "{e}"
        );
        let mut s = spec("m6i.large", "x9z.huge");
        s.candidate.price_per_hour = Some(0.05);
        assert_eq!(resolve(&s).unwrap().arms[1].price_source, "payload");
        s.candidate.base_url = s.current.base_url.clone();
        assert!(resolve(&s)
            .unwrap_err()
            .to_string()
            .contains("ab.candidate.base_url"));
        let e = parse_spec(&json!({"current": {"name": "a"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ab.current"), "{e}");
        let e = parse_spec(&json!({"current": {}, "candidate": {}, "blocks": 3}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("blocks"), "{e}");
    }

    /// Latencies (µs) from a fixed pseudo-random log-normal-ish mix: a body and a tail.
    fn sample(n: usize, scale: f64, seed: u64) -> Vec<u64> {
        use rand::Rng;
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let u: f64 = rng.random();
                let tail = if rng.random::<f64>() < 0.1 { 3.0 } else { 1.0 };
                (scale * 1000.0 * tail * (1.0 + 4.0 * u * u)) as u64
            })
            .collect()
    }

    fn histo(v: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for x in v {
            h.saturating_record(*x);
        }
        h
    }

    /// The Beta shortcut against the textbook bootstrap (resample every request, sort, take
    /// the p95): the intervals agree to within the noise of 4,000 replicates.
    #[test]
    fn the_bootstrap_shortcut_matches_resampling_request_by_request() {
        let (a, b) = (sample(600, 40.0, 1), sample(600, 44.0, 2));
        let fast = p95_ratio_interval(&histo(&a), &histo(&b), 4000, 7).unwrap();
        use rand::Rng;
        let mut rng = StdRng::seed_from_u64(11);
        let p95 = |v: &[u64], rng: &mut StdRng| {
            let mut r: Vec<u64> = (0..v.len())
                .map(|_| v[rng.random_range(0..v.len())])
                .collect();
            r.sort_unstable();
            r[(0.95 * r.len() as f64).ceil() as usize - 1] as f64
        };
        let mut ratios: Vec<f64> = (0..4000)
            .map(|_| p95(&b, &mut rng) / p95(&a, &mut rng))
            .collect();
        ratios.sort_by(f64::total_cmp);
        let (lo, hi) = (ratios[100], ratios[3899]);
        assert!(
            (fast.lo - lo).abs() < 0.02 && (fast.hi - hi).abs() < 0.02,
            "shortcut {:.3}–{:.3} vs resampling {lo:.3}–{hi:.3}",
            fast.lo,
            fast.hi
        );
        assert!(fast.lo < fast.point && fast.point < fast.hi);
    }

    #[test]
    fn the_interval_narrows_with_samples_and_finds_a_slower_candidate() {
        let small = p95_ratio_interval(
            &histo(&sample(300, 40.0, 3)),
            &histo(&sample(300, 40.0, 4)),
            2000,
            1,
        )
        .unwrap();
        let large = p95_ratio_interval(
            &histo(&sample(20_000, 40.0, 3)),
            &histo(&sample(20_000, 40.0, 4)),
            2000,
            1,
        )
        .unwrap();
        assert!(
            large.hi - large.lo < (small.hi - small.lo) / 2.0,
            "{small:?} {large:?}"
        );
        assert!(large.lo < 1.0 && 1.0 < large.hi, "{large:?}");
        let slower = p95_ratio_interval(
            &histo(&sample(20_000, 40.0, 3)),
            &histo(&sample(20_000, 60.0, 4)),
            2000,
            1,
        )
        .unwrap();
        assert!(slower.lo > 1.3 && slower.hi < 1.7, "{slower:?}");
        assert_eq!(
            p95_ratio_interval(&new_histogram(), &histo(&[1]), 10, 1),
            None
        );
    }

    fn outcome(name: &str, cost: f64) -> ArmOutcome {
        ArmOutcome {
            name: name.into(),
            samples: 1000,
            no_verdict: None,
            failed_thresholds: vec![],
            cost_per_1k: Some(cost),
        }
    }

    #[test]
    fn the_verdict_follows_the_documented_rule_in_order() {
        use AbVerdict::*;
        let plan = resolve(&spec("m6i.large", "m6g.large")).unwrap();
        let iv = |lo, hi| {
            Some(Interval {
                point: (lo + hi) / 2.0,
                lo,
                hi,
            })
        };
        let (cur, cand) = (outcome("x86", 0.010), outcome("arm64", 0.008));
        assert_eq!(decide(&plan, &cur, &cand, iv(0.98, 1.03)).0, Switch);
        // Slower beyond the margin: STAY, whatever the price.
        assert_eq!(decide(&plan, &cur, &cand, iv(1.08, 1.20)).0, Stay);
        // Cheaper by less than 15 %: STAY even at equal p95.
        let (v, why) = decide(&plan, &cur, &outcome("arm64", 0.0090), iv(0.98, 1.03));
        assert_eq!(v, Stay);
        assert!(why.contains("10.0 % less"), "{why}");
        // Equal p95 not shown.
        assert_eq!(decide(&plan, &cur, &cand, iv(0.99, 1.09)).0, Inconclusive);
        // An arm without its own verdict, or too few samples.
        let mut down = cand.clone();
        down.no_verdict = Some("target down".into());
        let (v, why) = decide(&plan, &cur, &down, iv(0.98, 1.03));
        assert_eq!(
            (v, why.contains("arm64 has no verdict")),
            (Inconclusive, true)
        );
        let mut few = cur.clone();
        few.samples = 50;
        assert_eq!(decide(&plan, &few, &cand, iv(0.98, 1.03)).0, Inconclusive);
        // A threshold only the candidate fails.
        let mut failing = cand.clone();
        failing.failed_thresholds = vec!["http_req_failed rate<0.01".into()];
        let (v, why) = decide(&plan, &cur, &failing, iv(0.98, 1.03));
        assert_eq!((v, why.contains("http_req_failed")), (Stay, true));
        // ... but one both fail is no reason to stay.
        let mut both = cur.clone();
        both.failed_thresholds = failing.failed_thresholds.clone();
        assert_eq!(decide(&plan, &both, &failing, iv(0.98, 1.03)).0, Switch);
    }

    #[test]
    fn cost_per_thousand_requests() {
        // Two m6i.large ($0.192/h) serving 10 requests/s: 36,000/h → $0.00533 per 1,000.
        let c = cost_per_1k(0.192, 600, 60.0).unwrap();
        assert!((c - 0.192 / 36.0).abs() < 1e-12, "{c}");
        assert_eq!(cost_per_1k(0.192, 0, 60.0), None);
    }
}
