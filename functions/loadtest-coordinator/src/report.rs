//! The human-readable artifacts: a Markdown report and its latency chart (SVG, plotters): the
//! latency at each percentile, corrected and uncorrected, with the p95 objective drawn.

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::summary::RunReport;

/// Percentiles drawn, on a "nines" axis (x = -log10(1 - q)): 0, 50, 90, 99, 99.9 %.
fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return vec![];
    }
    let mut pts = vec![];
    let mut x = 0.0f64;
    while x <= 3.0 + 1e-9 {
        let q = 1.0 - 10f64.powf(-x);
        pts.push((x, h.value_at_quantile(q) as f64 / 1000.0));
        x += 0.05;
    }
    pts.push((3.2, h.max() as f64 / 1000.0));
    pts
}

/// The chart as an SVG document.
pub fn latency_svg(
    title: &str,
    corrected: &Histogram<u64>,
    uncorrected: &Histogram<u64>,
    objective_ms: Option<f64>,
) -> Result<String, String> {
    let a = curve(corrected);
    let b = curve(uncorrected);
    let top = a
        .iter()
        .chain(b.iter())
        .map(|p| p.1)
        .chain(objective_ms)
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (800, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..3.2f64, 0f64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_label_formatter(&|x| match (x * 10.0).round() as i64 {
                0 => "p0".into(),
                3 => "p50".into(),
                10 => "p90".into(),
                13 => "p95".into(),
                20 => "p99".into(),
                30 => "p99.9".into(),
                32 => "max".into(),
                _ => format!("p{:.2}", 100.0 * (1.0 - 10f64.powf(-x))),
            })
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(a, BLUE.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("corrected (from intended send time)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .draw_series(LineSeries::new(b, GREEN.stroke_width(1)))
            .map_err(|e| e.to_string())?
            .label("uncorrected")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
        if let Some(o) = objective_ms {
            chart
                .draw_series(LineSeries::new(vec![(0.0, o), (3.2, o)], RED))
                .map_err(|e| e.to_string())?
                .label(format!("p95 objective {o} ms"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}

/// The Markdown report (links the chart by its file name, next to it in S3).
pub fn markdown(r: &RunReport, chart_file: &str) -> String {
    let n = &r.numbers;
    let l = &n.latency_ms;
    let mut s = String::new();
    s.push_str(&format!(
        "# Load test `{}`: {}\n\nRun `{}` ({} / {}), t0 {}, finished {}.\n{} slice(s) of {} s planned, {} run; {} shard invocation(s), {} failed.\n\n",
        r.scenario, r.status, r.run_id, r.environment, r.deployment, r.t0, r.finished_at,
        r.slices_planned, r.slice_seconds, r.slices_run, n.shards_total, n.shards_failed
    ));
    if let Some(a) = &r.aborted {
        s.push_str(&format!("**Aborted**: {a}\n\n"));
    }
    s.push_str(&format!("![latency by percentile]({chart_file})\n\n"));
    s.push_str("## Latency (ms, corrected for coordinated omission)\n\n| stat | value | samples |\n| --- | ---: | ---: |\n");
    for (k, v) in [
        ("min", l.min),
        ("p50", l.med),
        ("avg", l.avg),
        ("p90", l.p90),
        ("p95", l.p95),
        ("p99", l.p99),
        ("max", l.max),
    ] {
        s.push_str(&format!("| {k} | {v:.2} | {} |\n", l.count));
    }
    let u = &n.latency_uncorrected_ms;
    s.push_str(&format!(
        "\nUncorrected (from the actual send): p95 {:.2} ms, p99 {:.2} ms. Scheduler lag p99 {:.3} ms.\n\n",
        u.p95, u.p99, n.scheduler_lag_ms.p99
    ));
    s.push_str("## Requests\n\n| number | value | samples |\n| --- | ---: | ---: |\n");
    s.push_str(&format!("| scheduled | {} | |\n| sent | {} | |\n| ok | {} | |\n| errors | {} | |\n| dropped | {} | |\n", n.scheduled, n.sent, n.ok, n.errors, n.dropped));
    s.push_str(&format!(
        "| error rate (errors + dropped) ÷ scheduled | {:.4} % | {} |\n| throughput (ok/s) | {:.3} | {} |\n\n",
        n.error_rate * 100.0,
        n.error_rate_samples,
        n.throughput_rps,
        n.throughput_samples
    ));
    if let Some(sse) = &n.sse {
        s.push_str(&format!(
            "## Server-Sent Events\n\nclients {}, streams opened {}, failed {}, reconnects {}, events {}.\nHandshake p95 {:.2} ms (max {:.2}, {} samples); reconnect p95 {:.2} ms ({} samples); event delivery lag p95 {:.2} ms (max {:.2}, {} events stamped by the server).\n\n",
            sse.totals.clients, sse.totals.streams_opened, sse.totals.streams_failed, sse.totals.reconnects,
            sse.totals.events_received, sse.handshake_ms.p95, sse.handshake_ms.max, sse.handshake_ms.count,
            sse.reconnect_ms.p95, sse.reconnect_ms.count, sse.delivery_lag_ms.p95, sse.delivery_lag_ms.max,
            sse.delivery_lag_ms.count
        ));
    }
    s.push_str("## Thresholds\n\n| metric | threshold | observed | samples | result |\n| --- | --- | ---: | ---: | --- |\n");
    for t in &r.thresholds {
        s.push_str(&format!(
            "| {} | `{}`{} | {:.4} | {} | {} |\n",
            t.metric,
            t.expr,
            if t.abort_on_fail {
                " (abortOnFail)"
            } else {
                ""
            },
            t.observed,
            t.samples,
            if t.ok { "pass" } else { "**FAIL**" }
        ));
    }
    if let Some(b) = &r.baseline {
        match (b.reference_throughput_rps, b.required_rps) {
            (Some(reference), Some(required)) => s.push_str(&format!(
                "\n## Baseline\n\nthroughput {:.3}/s against {:.3}/s, the median of {} reference run(s) (newest {}): ratio {}; \
                 required ≥ {:.3}/s = min_ratio {} × reference − tolerance {:.3}/s (from the runs' spread) → {}\n",
                b.throughput_rps,
                reference,
                b.reference_runs,
                b.reference_run.as_deref().unwrap_or("-"),
                b.ratio.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into()),
                required,
                b.min_ratio,
                b.tolerance_rps.unwrap_or(0.0),
                if b.ok { "pass" } else { "**FAIL**" }
            )),
            _ => s.push_str(&format!(
                "\n## Baseline\n\nthroughput {:.3}/s: no reference run yet, this run sets it → pass\n",
                b.throughput_rps
            )),
        }
    }
    if let Some(g) = &r.gate {
        s.push_str(&format!(
            "\n## Release gate\n\n**{:?}**: {}{}\n",
            g.state,
            g.reason,
            r.incident
                .as_deref()
                .map(|i| format!(" (incident {i})"))
                .unwrap_or_default()
        ));
    }
    if !r.notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for note in &r.notes {
            s.push_str(&format!("- {note}\n"));
        }
    }
    s
}
