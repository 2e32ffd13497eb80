//! Thresholds in k6's syntax (`p(95)<900`, `rate<0.005`, `med<=200`, `count>1000`), as strings
//! or `{ "threshold": "...", "abortOnFail": true }` objects, judged against the merged numbers.
//! Latency trends are in milliseconds, as in k6.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::{Numbers, Stats};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Agg {
    Avg,
    Min,
    Max,
    Med,
    P(f64),
    Count,
    Rate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub metric: String,
    /// As written in the scenario (the key in k6's summary).
    pub expr: String,
    pub agg: Agg,
    pub op: Op,
    pub value: f64,
    pub abort_on_fail: bool,
}

impl Threshold {
    /// A p95 latency objective (what the release gate watches).
    pub fn is_p95_latency(&self) -> bool {
        matches!(self.agg, Agg::P(p) if (p - 95.0).abs() < 1e-9)
            && kind_of(&self.metric) == Some(Kind::Trend)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Trend,
    Rate,
    Counter,
}

/// The metrics a threshold may name (k6's names; SSE ones are ours).
pub const METRICS: &[&str] = &[
    "http_req_duration",
    "http_req_failed",
    "http_reqs",
    "dropped_iterations",
    "scheduler_lag",
    "sse_handshake_duration",
    "sse_reconnect_duration",
    "sse_event_delivery_lag",
    "sse_streams_failed",
];

fn kind_of(metric: &str) -> Option<Kind> {
    // Tagged sub-metrics (`http_req_duration{status:200}`) are not split per tag here.
    match metric {
        "http_req_duration"
        | "scheduler_lag"
        | "sse_handshake_duration"
        | "sse_reconnect_duration"
        | "sse_event_delivery_lag" => Some(Kind::Trend),
        "http_req_failed" | "sse_streams_failed" => Some(Kind::Rate),
        "http_reqs" | "dropped_iterations" => Some(Kind::Counter),
        _ => None,
    }
}

/// Parses one expression: `<agg> <op> <number>`, spaces allowed.
pub fn parse_expr(expr: &str) -> Result<(Agg, Op, f64), String> {
    let e = expr.trim();
    let ops = ["<=", ">=", "===", "==", "!=", "<", ">"];
    let (pos, op_str) = ops
        .iter()
        .filter_map(|o| e.find(o).map(|p| (p, *o)))
        .min_by_key(|(p, o)| (*p, std::cmp::Reverse(o.len())))
        .ok_or_else(|| format!("{expr:?} has no comparison (<, <=, >, >=, ==, !=)"))?;
    let lhs = e[..pos].trim();
    let rhs = e[pos + op_str.len()..].trim();
    let op = match op_str {
        "<" => Op::Lt,
        "<=" => Op::Le,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        "==" | "===" => Op::Eq,
        _ => Op::Ne,
    };
    let value: f64 = rhs
        .parse()
        .map_err(|_| format!("{expr:?}: {rhs:?} is not a number"))?;
    // `NaN` and `inf` parse as f64 but no measurement compares sensibly with them (every
    // comparison with NaN is false, so `p(95)<NaN` would fail every run, `!=NaN` pass it).
    if !value.is_finite() {
        return Err(format!("{expr:?}: {rhs:?} is not a finite number"));
    }
    let agg = match lhs {
        "avg" => Agg::Avg,
        "min" => Agg::Min,
        "max" => Agg::Max,
        "med" => Agg::Med,
        "count" => Agg::Count,
        "rate" => Agg::Rate,
        other => {
            let inner = other
                .strip_prefix("p(")
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| {
                    format!("{expr:?}: unknown aggregation {other:?}; use avg, min, max, med, p(N), count or rate")
                })?;
            let p: f64 = inner
                .trim()
                .parse()
                .map_err(|_| format!("{expr:?}: {inner:?} is not a percentile"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("{expr:?}: percentile {p} is not within 0-100"));
            }
            Agg::P(p)
        }
    };
    Ok((agg, op, value))
}

/// Parses the scenario's `thresholds`; errors name `thresholds.<metric>[i]`.
pub fn parse_thresholds(
    t: &BTreeMap<String, Vec<Value>>,
) -> Result<Vec<Threshold>, (String, String)> {
    let mut out = vec![];
    for (metric, list) in t {
        let kind = kind_of(metric).ok_or_else(|| {
            (
                format!("thresholds.{metric}"),
                format!("unknown metric; use one of {}", METRICS.join(", ")),
            )
        })?;
        for (i, item) in list.iter().enumerate() {
            let field = format!("thresholds.{metric}[{i}]");
            let (expr, abort) = match item {
                Value::String(s) => (s.clone(), false),
                Value::Object(o) => {
                    for k in o.keys() {
                        if !matches!(k.as_str(), "threshold" | "abortOnFail" | "delayAbortEval") {
                            return Err((
                                field,
                                format!(
                                    "unknown key {k:?}; use threshold, abortOnFail, delayAbortEval"
                                ),
                            ));
                        }
                    }
                    let s = o.get("threshold").and_then(Value::as_str).ok_or_else(|| {
                        (field.clone(), "needs a \"threshold\" string".to_string())
                    })?;
                    let abort = match o.get("abortOnFail") {
                        None => false,
                        Some(Value::Bool(b)) => *b,
                        Some(_) => return Err((field, "abortOnFail must be true or false".into())),
                    };
                    (s.to_string(), abort)
                }
                _ => return Err((field, "must be a string or {\"threshold\": ...}".into())),
            };
            let (agg, op, value) = parse_expr(&expr).map_err(|m| (field.clone(), m))?;
            let fits = match kind {
                Kind::Trend => matches!(
                    agg,
                    Agg::Avg | Agg::Min | Agg::Max | Agg::Med | Agg::P(_) | Agg::Count
                ),
                Kind::Rate => {
                    matches!(agg, Agg::Rate)
                        || (metric == "sse_streams_failed" && agg == Agg::Count)
                }
                Kind::Counter => matches!(agg, Agg::Count | Agg::Rate),
            };
            if !fits {
                return Err((
                    field,
                    format!("{expr:?}: this aggregation does not apply to {metric} (trends: avg/min/max/med/p(N); http_req_failed: rate; counters: count/rate)"),
                ));
            }
            out.push(Threshold {
                metric: metric.clone(),
                expr,
                agg,
                op,
                value,
                abort_on_fail: abort,
            });
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub metric: String,
    pub expr: String,
    pub observed: f64,
    /// Observations the number stands on.
    pub samples: u64,
    pub ok: bool,
    pub abort_on_fail: bool,
}

fn trend<'a>(metric: &str, n: &'a Numbers) -> Option<&'a Stats> {
    match metric {
        "http_req_duration" => Some(&n.latency_ms),
        "scheduler_lag" => Some(&n.scheduler_lag_ms),
        "sse_handshake_duration" => n.sse.as_ref().map(|s| &s.handshake_ms),
        "sse_reconnect_duration" => n.sse.as_ref().map(|s| &s.reconnect_ms),
        "sse_event_delivery_lag" => n.sse.as_ref().map(|s| &s.delivery_lag_ms),
        _ => None,
    }
}

/// Judges one threshold. `percentile(metric, p)` gives arbitrary percentiles (from the
/// merged histograms); p(90/95/99) and med come from `Numbers`.
pub fn judge(t: &Threshold, n: &Numbers, percentile: &dyn Fn(&str, f64) -> f64) -> Judged {
    let (observed, samples) = match (t.metric.as_str(), t.agg) {
        ("http_req_failed", _) => (n.error_rate, n.error_rate_samples),
        ("sse_streams_failed", agg) => {
            let t = n.sse.as_ref().map(|s| s.totals.clone()).unwrap_or_default();
            let attempts = t.streams_opened + t.streams_failed;
            let v = if agg == Agg::Count {
                t.streams_failed as f64
            } else if attempts > 0 {
                t.streams_failed as f64 / attempts as f64
            } else {
                // No stream even attempted: as bad as it gets.
                1.0
            };
            (v, attempts)
        }
        ("http_reqs", Agg::Count) => (n.sent as f64, n.sent),
        ("http_reqs", _) => (n.request_rate, n.sent),
        ("dropped_iterations", Agg::Count) => (n.dropped as f64, n.scheduled),
        ("dropped_iterations", _) => (
            if n.duration_s > 0.0 {
                n.dropped as f64 / n.duration_s
            } else {
                0.0
            },
            n.scheduled,
        ),
        (m, agg) => {
            let s = trend(m, n).cloned().unwrap_or_default();
            let v = match agg {
                Agg::Avg => s.avg,
                Agg::Min => s.min,
                Agg::Max => s.max,
                Agg::Med => s.med,
                Agg::Count => s.count as f64,
                Agg::P(p) => percentile(m, p),
                Agg::Rate => 0.0,
            };
            (v, s.count)
        }
    };
    // The primary latencies judged on no samples at all are not met (nothing answered, nothing
    // proved). Reconnects and scheduler lag may rightly have none (no stream was dropped).
    let primary = matches!(
        t.metric.as_str(),
        "http_req_duration" | "sse_handshake_duration"
    );
    let ok = t.op.holds(observed, t.value) && !(primary && samples == 0 && t.agg != Agg::Count);
    Judged {
        metric: t.metric.clone(),
        expr: t.expr.clone(),
        observed,
        samples,
        ok,
        abort_on_fail: t.abort_on_fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::tests::result;
    use crate::aggregate::Aggregate;
    use serde_json::json;

    fn thresholds(v: Value) -> Result<Vec<Threshold>, (String, String)> {
        let m: BTreeMap<String, Vec<Value>> = serde_json::from_value(v).unwrap();
        parse_thresholds(&m)
    }

    #[test]
    fn parses_k6_syntax() {
        assert_eq!(
            parse_expr("p(95)<900").unwrap(),
            (Agg::P(95.0), Op::Lt, 900.0)
        );
        assert_eq!(
            parse_expr(" p(99.9) <= 1500 ").unwrap(),
            (Agg::P(99.9), Op::Le, 1500.0)
        );
        assert_eq!(
            parse_expr("rate<0.005").unwrap(),
            (Agg::Rate, Op::Lt, 0.005)
        );
        assert_eq!(parse_expr("count>=10").unwrap(), (Agg::Count, Op::Ge, 10.0));
        assert_eq!(parse_expr("med===3").unwrap(), (Agg::Med, Op::Eq, 3.0));
        assert_eq!(parse_expr("avg != 3").unwrap(), (Agg::Avg, Op::Ne, 3.0));
        assert!(parse_expr("p95<900").unwrap_err().contains("aggregation"));
        assert!(parse_expr("p(95)~900").unwrap_err().contains("comparison"));
        assert!(parse_expr("p(95)<fast")
            .unwrap_err()
            .contains("not a number"));
        assert!(parse_expr("p(101)<1").is_err());
    }

    #[test]
    fn errors_name_the_field() {
        let t = thresholds(json!({"http_req_duration": ["p(95)<900", {"threshold": "avg<200", "abortOnFail": true}],
                                  "http_req_failed": [{"threshold": "rate<0.005", "abortOnFail": true, "delayAbortEval": "10s"}]}))
        .unwrap();
        assert_eq!(t.len(), 3);
        assert!(t
            .iter()
            .any(|x| x.metric == "http_req_failed" && x.abort_on_fail));
        assert!(t[0].is_p95_latency() || t[1].is_p95_latency());
        let (f, m) = thresholds(json!({"http_req_durration": ["p(95)<900"]})).unwrap_err();
        assert_eq!(f, "thresholds.http_req_durration");
        assert!(m.contains("http_req_duration"));
        let (f, _) = thresholds(json!({"http_req_failed": ["p(95)<1"]})).unwrap_err();
        assert_eq!(f, "thresholds.http_req_failed[0]");
        let (f, _) =
            thresholds(json!({"http_req_duration": ["p(95)<1", {"treshold": "x"}]})).unwrap_err();
        assert_eq!(f, "thresholds.http_req_duration[1]");
    }

    /// Found by the parser property tests: `p(95)<NaN` was accepted and failed every run.
    #[test]
    fn non_finite_bounds_are_refused() {
        for e in ["p(95)<NaN", "rate<inf", "avg>=-inf", "p(NaN)<1"] {
            assert!(parse_expr(e).is_err(), "{e}");
        }
    }

    #[test]
    fn judges_against_merged_numbers() {
        let mut a = Aggregate::default();
        let mut lat = vec![100u64; 950];
        lat.extend([2000u64; 50]);
        a.add_result(&result(0, 0, &lat, 4, 1), 1001).unwrap();
        let n = Numbers::of(&a, 100.0);
        let pct = |m: &str, p: f64| match m {
            "http_req_duration" => Stats::percentile(&a.latency, p),
            _ => 0.0,
        };
        let t = thresholds(json!({
            "http_req_duration": ["p(95)<900", "p(94)<900", "med<=100.1", "max<3000", "count>=1000"],
            "http_req_failed": ["rate<0.005", "rate<0.01"],
            "http_reqs": ["count==1000", "rate>9"],
            "dropped_iterations": ["count<1"]
        }))
        .unwrap();
        let j: Vec<(String, bool)> = t
            .iter()
            .map(|t| judge(t, &n, &pct))
            .map(|j| (format!("{} {}", j.metric, j.expr), j.ok))
            .collect();
        let want = [
            ("dropped_iterations count<1", false),
            ("http_req_duration p(95)<900", true),
            ("http_req_duration p(94)<900", true),
            ("http_req_duration med<=100.1", true),
            ("http_req_duration max<3000", true),
            ("http_req_duration count>=1000", true),
            ("http_req_failed rate<0.005", true),
            ("http_req_failed rate<0.01", true),
            ("http_reqs count==1000", true),
            ("http_reqs rate>9", true),
        ];
        for (k, v) in want {
            let got = j
                .iter()
                .find(|(n, _)| n == k)
                .unwrap_or_else(|| panic!("{k}: {j:?}"));
            assert_eq!(got.1, v, "{k}");
        }
        // (4 errors + 1 dropped) / 1001 scheduled ≈ 0.004995 < 0.005.
        assert!((n.error_rate - 5.0 / 1001.0).abs() < 1e-12);
        // p(95) is the last of the 950 fast ones; p(95.1) is slow.
        assert!(Stats::percentile(&a.latency, 95.1) > 1900.0);
        // No samples: a latency objective is not met.
        let empty = Numbers::of(&Aggregate::default(), 1.0);
        let t = thresholds(json!({"http_req_duration": ["p(95)<900"]})).unwrap();
        assert!(!judge(&t[0], &empty, &|_, _| 0.0).ok);
        let t = thresholds(json!({"sse_reconnect_duration": ["p(95)<1000"], "sse_streams_failed": ["rate<0.01", "count<1"]})).unwrap();
        let mut sse = Numbers::of(&Aggregate::default(), 1.0);
        sse.sse = Some(crate::aggregate::SseNumbers {
            handshake_ms: Stats::default(),
            reconnect_ms: Stats::default(),
            delivery_lag_ms: Stats::default(),
            totals: crate::aggregate::SseTotals {
                clients: 100,
                streams_opened: 199,
                streams_failed: 1,
                ..Default::default()
            },
        });
        let j: Vec<Judged> = t.iter().map(|t| judge(t, &sse, &|_, _| 0.0)).collect();
        // No reconnect happened: nothing broke the objective.
        assert!(
            j.iter()
                .find(|j| j.metric == "sse_reconnect_duration")
                .unwrap()
                .ok
        );
        let rate = j.iter().find(|j| j.expr == "rate<0.01").unwrap();
        assert!(rate.ok && (rate.observed - 0.005).abs() < 1e-12 && rate.samples == 200);
        assert!(!j.iter().find(|j| j.expr == "count<1").unwrap().ok);
    }
}
