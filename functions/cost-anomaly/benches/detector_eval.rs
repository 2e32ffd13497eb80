//! The evaluation (`make bench`): labelled synthetic daily cost series from a fixed seed,
//! scored for the suite's detector and a plain z-score baseline side by side: precision,
//! recall and mean detection delay (days from the anomaly's first day to the day whose data
//! raised the alarm) per class. Month-start and clean classes carry no anomalies: every alarm
//! there is a false one.
//!
//! `cargo bench -p cost-anomaly --bench detector_eval` runs the full set (200 series a class);
//! under `cargo test --all-targets` (no `--bench` argument) it runs a quick smoke set and
//! checks the goals hold there too.

use std::collections::BTreeMap;
use std::time::Instant;

use cost_anomaly::detect::{detect, zscore_baseline, Params};
use cost_anomaly::synth::{dataset, score, Class, Score};

const SEED: u64 = 20_261_127;

fn fmt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into())
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (per_class, days) = if full { (200, 180) } else { (12, 150) };
    let data = dataset(SEED, per_class, days);
    let p = Params::default();
    let mut ours: BTreeMap<Class, Score> = BTreeMap::new();
    let mut base: BTreeMap<Class, Score> = BTreeMap::new();
    let t0 = Instant::now();
    let verbose = std::env::var("FINOPS_EVAL_VERBOSE").is_ok();
    for s in &data {
        let f = detect(&s.days, &s.values, &p);
        let sc = score(s, &f);
        if verbose && sc.false_alarms > 0 {
            // Which alarms were false, to tune against (FINOPS_EVAL_VERBOSE=1).
            eprintln!(
                "{:?} labels {:?}",
                s.class,
                s.labels.iter().map(|l| l.start).collect::<Vec<_>>()
            );
            for x in &f {
                eprintln!(
                    "   {:?} start {} flag {} end {} day {} exp {:.1} act {:.1}",
                    x.kind,
                    x.start,
                    x.first_flag,
                    x.end,
                    s.days[x.first_flag],
                    x.expected,
                    x.actual
                );
            }
        }
        ours.entry(s.class).or_default().add(&sc);
    }
    let ours_time = t0.elapsed();
    for s in &data {
        base.entry(s.class)
            .or_default()
            .add(&score(s, &zscore_baseline(&s.values, &p)));
    }
    println!(
        "cost-anomaly detector evaluation: seed {SEED}, {} series ({per_class} a class), {days} days each, scored from day {}; detector time {:.1} ms",
        data.len(),
        cost_anomaly::synth::SCORED_FROM,
        ours_time.as_secs_f64() * 1000.0
    );
    println!(
        "| class | labels | ours precision | ours recall | ours delay (d) | ours false alarms | z-score precision | z-score recall | z-score delay (d) | z-score false alarms |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut all_o = Score::default();
    let mut all_b = Score::default();
    let mut failures = vec![];
    for c in Class::ALL {
        let o = ours.get(&c).cloned().unwrap_or_default();
        let b = base.get(&c).cloned().unwrap_or_default();
        all_o.add(&o);
        all_b.add(&b);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.as_str(),
            o.labels,
            fmt(o.precision().filter(|_| o.labels > 0)),
            fmt(o.recall()),
            fmt(o.mean_delay()),
            o.false_alarms,
            fmt(b.precision()),
            fmt(b.recall()),
            fmt(b.mean_delay()),
            b.false_alarms
        );
        match c {
            Class::Spike | Class::LevelShift | Class::Drift => {
                let (pr, re) = (o.precision().unwrap_or(0.0), o.recall().unwrap_or(0.0));
                if pr < 0.9 || re < 0.9 {
                    failures.push(format!(
                        "{}: precision {pr:.3} recall {re:.3} < 0.9",
                        c.as_str()
                    ));
                }
                let max_delay = if c == Class::Spike { 1.0 } else { 3.0 };
                if o.mean_delay().unwrap_or(f64::MAX) > max_delay {
                    failures.push(format!(
                        "{}: mean delay {} > {max_delay}",
                        c.as_str(),
                        fmt(o.mean_delay())
                    ));
                }
                let better = o.precision() >= b.precision()
                    && o.recall() >= b.recall()
                    && (o.precision() > b.precision()
                        || o.recall() > b.recall()
                        || o.mean_delay() < b.mean_delay());
                if !better {
                    failures.push(format!(
                        "{}: not better than the z-score baseline",
                        c.as_str()
                    ));
                }
            }
            _ => {
                if o.false_alarms > b.false_alarms
                    || (b.false_alarms > 0 && o.false_alarms == b.false_alarms)
                {
                    failures.push(format!(
                        "{}: {} false alarms, baseline {}",
                        c.as_str(),
                        o.false_alarms,
                        b.false_alarms
                    ));
                }
            }
        }
    }
    println!(
        "| all | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        all_o.labels,
        fmt(all_o.precision()),
        fmt(all_o.recall()),
        fmt(all_o.mean_delay()),
        all_o.false_alarms,
        fmt(all_b.precision()),
        fmt(all_b.recall()),
        fmt(all_b.mean_delay()),
        all_b.false_alarms
    );
    let (pr, re) = (
        all_o.precision().unwrap_or(0.0),
        all_o.recall().unwrap_or(0.0),
    );
    if pr < 0.9 || re < 0.9 {
        failures.push(format!("overall precision {pr:.3} recall {re:.3} < 0.9"));
    }
    if failures.is_empty() {
        println!("goals met: precision and recall >= 0.9, delay <= 1 day (spikes) and <= 3 days (drifts), better than the baseline on every class");
    } else {
        for f in &failures {
            eprintln!("GOAL MISSED: {f}");
        }
        std::process::exit(1);
    }
}
