//! Cost Explorer through moto: GetCostAndUsage results queued through moto's own API
//! (`/moto-api/static/ce/cost-and-usage-results`) and synthetic daily spend shaped as Cost
//! Explorer returns it.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use serde_json::{json, Value};

use crate::{moto_post, Moto};

/// Daily spend per (env, service).
pub type Spend = BTreeMap<(String, String), Vec<(NaiveDate, f64)>>;

/// Queues GetCostAndUsage results: each new distinct request takes the next one.
pub async fn queue_ce_results(m: &Moto, results: Vec<Value>) {
    let status = moto_post(
        m,
        "/moto-api/static/ce/cost-and-usage-results",
        &json!({ "results": results }),
    )
    .await;
    assert_eq!(status, 201, "moto refused the CE results");
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

/// 92 days of spend from 2026-08-20 to 2026-11-19, one series per `(env, service, level)`
/// (in that order): `shape(start, days)` gives each series' days and values, which are
/// rescaled to average `level`. Prod EC2 spikes (×3) on 2026-11-17; with `drift`, staging RDS
/// creeps up 8 % a day from 2026-11-08.
pub fn spend(
    series: &[(&str, &str, f64)],
    drift: bool,
    mut shape: impl FnMut(NaiveDate, usize) -> (Vec<NaiveDate>, Vec<f64>),
) -> Spend {
    let start = date(2026, 8, 20);
    let n = 92;
    let mut out = BTreeMap::new();
    for &(env, svc, level) in series {
        let (days, values) = shape(start, n);
        // Rescale the generator's random level to this series' level, keep its shape.
        let mean = values.iter().sum::<f64>() / n as f64;
        let mut v: Vec<f64> = values.iter().map(|x| x / mean * level).collect();
        for (i, day) in days.iter().enumerate() {
            if env == "prod" && svc.contains("Compute") && *day == date(2026, 11, 17) {
                v[i] *= 3.0;
            }
            if drift && env == "staging" && svc.contains("Relational") && *day >= date(2026, 11, 8)
            {
                v[i] *= 1.0 + 0.08 * ((*day - date(2026, 11, 7)).num_days() as f64);
            }
        }
        out.insert(
            (env.to_string(), svc.to_string()),
            days.iter().copied().zip(v).collect(),
        );
    }
    out
}

/// Daily spend per (env, service) as one page of GetCostAndUsage (`Groups` keyed
/// `env$<env>` and the service name), days in `[from, to)`; `estimated_from` and later days
/// are `Estimated`.
pub fn ce_page(
    spend: &Spend,
    from: NaiveDate,
    to: NaiveDate,
    estimated_from: NaiveDate,
    next_token: Option<&str>,
) -> Value {
    let mut results = vec![];
    let mut d = from;
    while d < to {
        let groups: Vec<Value> = spend
            .iter()
            .filter_map(|((env, svc), days)| {
                let v = days.iter().find(|(x, _)| *x == d)?.1;
                Some(json!({
                    "Keys": [format!("env${env}"), svc],
                    "Metrics": {"UnblendedCost": {"Amount": format!("{v:.4}"), "Unit": "USD"}}
                }))
            })
            .collect();
        results.push(json!({
            "TimePeriod": {"Start": d.to_string(), "End": (d + Days::new(1)).to_string()},
            "Total": {},
            "Groups": groups,
            "Estimated": d >= estimated_from
        }));
        d = d + Days::new(1);
    }
    let mut page = json!({"ResultsByTime": results, "DimensionValueAttributes": []});
    if let Some(t) = next_token {
        page["NextPageToken"] = json!(t);
    }
    page
}
