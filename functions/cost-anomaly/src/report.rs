//! The monthly FinOps report (pure): the JSON document, its Markdown rendering and the SVG
//! chart (daily spend against the budget's daily pace with anomalies marked, and cumulative
//! spend and forecast against the budget).

use chrono::{Datelike, NaiveDate};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::analysis::{Anomaly, BudgetStatus, Mover};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvLine {
    pub env: String,
    pub actual: f64,
    pub baseline: f64,
    pub projected_own: f64,
    pub projected_ce: Option<f64>,
    pub delta_percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceLine {
    pub service: String,
    pub actual: f64,
    pub share_percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub as_of: NaiveDate,
    pub month_to_date: f64,
    pub projected_own: f64,
    pub projected_ce: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataNote {
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
    pub estimated_days: usize,
    pub missing_days: usize,
    pub ce_requests: u32,
    pub request_budget_exhausted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthlyReport {
    pub month: String,
    pub generated_at: String,
    pub environment: String,
    pub deployment: String,
    /// Whether every day of the month had data when the report was written.
    pub complete: bool,
    pub data: DataNote,
    pub actual: f64,
    pub projected_own: f64,
    pub projected_ce: Option<f64>,
    pub ce_forecast_note: Option<String>,
    pub baseline_month: String,
    pub baseline_actual: f64,
    pub monthly_delta_percent: Option<f64>,
    pub by_env: Vec<EnvLine>,
    pub by_service: Vec<ServiceLine>,
    pub budgets: Vec<BudgetStatus>,
    pub forecast_history: Vec<Snapshot>,
    pub anomalies: Vec<Anomaly>,
    pub movers: Vec<Mover>,
    /// Budgets / Cost Anomaly Detection / unrecognised SNS messages received this month.
    pub messages: std::collections::BTreeMap<String, u64>,
    pub chart_key: Option<String>,
    /// Daily totals of the month (for the chart and readers of the JSON).
    pub daily: Vec<(NaiveDate, f64)>,
}

fn money(x: f64) -> String {
    let neg = x < 0.0;
    let cents = (x.abs() * 100.0).round() as u64;
    let (whole, frac) = (cents / 100, cents % 100);
    let s = whole.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{}${out}.{frac:02}", if neg { "-" } else { "" })
}

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{v:+.1} %"))
        .unwrap_or_else(|| "n/a".into())
}

fn opt_money(x: Option<f64>) -> String {
    x.map(money).unwrap_or_else(|| "n/a".into())
}

pub fn markdown(r: &MonthlyReport) -> String {
    let mut m = String::new();
    let state = if r.complete { "final" } else { "month to date" };
    m.push_str(&format!("# FinOps report {} ({state})\n\n", r.month));
    m.push_str(&format!(
        "Environment `{}`, deployment `{}`, generated {}. Data: {} to {}, {} estimated day(s), {} missing day(s), {} Cost Explorer request(s){}.\n\n",
        r.environment,
        r.deployment,
        r.generated_at,
        r.data.first_day.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
        r.data.last_day.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
        r.data.estimated_days,
        r.data.missing_days,
        r.data.ce_requests,
        if r.data.request_budget_exhausted { " (request budget exhausted: data incomplete)" } else { "" }
    ));
    if let Some(k) = &r.chart_key {
        let file = k.rsplit('/').next().unwrap_or(k);
        m.push_str(&format!(
            "![Daily spend against budget, anomalies marked]({file})\n\n"
        ));
    }
    m.push_str("## Summary\n\n");
    m.push_str(&format!(
        "- Spend {}: **{}**; projected month end **{}** (own model), {} (Cost Explorer){}\n",
        if r.complete {
            "for the month"
        } else {
            "month to date"
        },
        money(r.actual),
        money(r.projected_own),
        opt_money(r.projected_ce),
        r.ce_forecast_note
            .as_ref()
            .map(|n| format!(" — {n}"))
            .unwrap_or_default()
    ));
    m.push_str(&format!(
        "- Against {} ({}): **{}** (`finops_monthly_delta_percent`)\n",
        r.baseline_month,
        money(r.baseline_actual),
        pct(r.monthly_delta_percent)
    ));
    m.push_str(&format!("- Anomalies: {}\n\n", r.anomalies.len()));

    m.push_str("## Budgets\n\n| budget | scope | limit | spent | used | projected | projected % | status |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for b in &r.budgets {
        m.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} % | {} | {:.1} % | {} |\n",
            b.budget,
            b.env.as_deref().unwrap_or("account"),
            money(b.limit),
            money(b.month_to_date),
            b.utilisation_percent,
            money(
                b.projected_ce
                    .unwrap_or(b.projected_own)
                    .max(b.projected_own)
            ),
            b.projected_percent,
            b.status
        ));
    }
    if r.budgets.is_empty() {
        m.push_str("| (none configured: FINOPS_BUDGETS) | | | | | | | |\n");
    }

    m.push_str("\n## Spend by environment\n\n| env | spend | baseline month | projected (own) | projected (CE) | change |\n| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for e in &r.by_env {
        m.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            e.env,
            money(e.actual),
            money(e.baseline),
            money(e.projected_own),
            opt_money(e.projected_ce),
            pct(e.delta_percent)
        ));
    }
    m.push_str("\n## Spend by service\n\n| service | spend | share |\n| --- | ---: | ---: |\n");
    for s in &r.by_service {
        m.push_str(&format!(
            "| {} | {} | {:.1} % |\n",
            s.service,
            money(s.actual),
            s.share_percent
        ));
    }

    m.push_str("\n## Forecast against actual\n\n");
    if r.forecast_history.is_empty() {
        m.push_str("No forecast snapshots yet (the daily run records one a day).\n");
    } else {
        m.push_str("| as of | spent then | projected (own) | projected (CE) | error of own vs final |\n| --- | ---: | ---: | ---: | ---: |\n");
        for s in &r.forecast_history {
            let err = if r.complete && r.actual > 0.0 {
                format!("{:+.1} %", (s.projected_own - r.actual) / r.actual * 100.0)
            } else {
                "—".into()
            };
            m.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                s.as_of,
                money(s.month_to_date),
                money(s.projected_own),
                opt_money(s.projected_ce),
                err
            ));
        }
    }

    m.push_str("\n## Anomalies\n\n");
    if r.anomalies.is_empty() {
        m.push_str("None above the dollar floor and percentage gate.\n");
    } else {
        m.push_str("| series | kind | days | expected | actual | impact | delay | explanation |\n| --- | --- | --- | ---: | ---: | ---: | ---: | --- |\n");
        for a in &r.anomalies {
            m.push_str(&format!(
                "| {} / {} | {} | {} – {}{} | {} | {} | **{}** (+{:.0} %) | {} d | {} |\n",
                a.env,
                a.service,
                a.kind,
                a.start,
                a.end,
                if a.open { " (open)" } else { "" },
                money(a.expected),
                money(a.actual),
                money(a.impact),
                a.impact_percent,
                a.detection_delay_days,
                a.explanation.replace('|', "/")
            ));
        }
    }
    m.push_str("\n## Top movers (average daily spend against the baseline month)\n\n| env | service | baseline / day | this month / day | change / day |\n| --- | --- | ---: | ---: | ---: |\n");
    for mv in &r.movers {
        m.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            mv.env,
            mv.service,
            money(mv.baseline_daily),
            money(mv.daily),
            money(mv.change_daily)
        ));
    }
    if !r.messages.is_empty() {
        m.push_str("\n## Alerts received through SNS\n\n");
        for (k, v) in &r.messages {
            m.push_str(&format!("- {k}: {v}\n"));
        }
    }
    m
}

/// The chart: top, daily spend with anomaly days marked and the budget's daily pace; bottom,
/// cumulative spend and the projection against the budget limit.
pub fn chart_svg(
    month: NaiveDate,
    daily: &[(NaiveDate, f64)],
    projected_daily: &[(NaiveDate, f64)],
    budget: Option<f64>,
    anomaly_days: &[NaiveDate],
) -> Result<String, String> {
    let days_in_month =
        crate::analysis::days_between(month, crate::analysis::next_month(month)).count() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (top, bottom) = root.split_vertically(320);
        let pace = budget.map(|b| b / days_in_month as f64);
        let ymax = daily
            .iter()
            .chain(projected_daily)
            .map(|(_, v)| *v)
            .chain(pace)
            .fold(1.0f64, f64::max)
            * 1.15;
        let mut c = ChartBuilder::on(&top)
            .caption(
                format!("Daily spend {}", month.format("%Y-%m")),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(1u32..days_in_month + 1, 0f64..ymax)
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .x_desc("day of month")
            .y_desc("USD / day")
            .draw()
            .map_err(|e| e.to_string())?;
        let pts: Vec<(u32, f64)> = daily.iter().map(|(d, v)| (d.day(), *v)).collect();
        c.draw_series(LineSeries::new(pts.clone(), BLUE.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("actual")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        if !projected_daily.is_empty() {
            let mut fp: Vec<(u32, f64)> = pts.last().copied().into_iter().collect();
            fp.extend(projected_daily.iter().map(|(d, v)| (d.day(), *v)));
            c.draw_series(DashedLineSeries::new(
                fp,
                6,
                4,
                BLUE.mix(0.5).stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label("forecast (own model)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.mix(0.5)));
        }
        if let Some(p) = pace {
            c.draw_series(DashedLineSeries::new(
                vec![(1, p), (days_in_month, p)],
                8,
                4,
                GREEN.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label("budget / day")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
        }
        let marks: Vec<(u32, f64)> = pts
            .iter()
            .filter(|(d, _)| {
                anomaly_days
                    .iter()
                    .any(|a| a.day() == *d && a.month() == month.month())
            })
            .copied()
            .collect();
        c.draw_series(marks.iter().map(|p| Circle::new(*p, 7, RED.filled())))
            .map_err(|e| e.to_string())?
            .label("anomaly")
            .legend(|(x, y)| Circle::new((x + 10, y), 5, RED.filled()));
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(|e| e.to_string())?;

        // Cumulative.
        let mut cum = 0.0;
        let cum_pts: Vec<(u32, f64)> = daily
            .iter()
            .map(|(d, v)| {
                cum += v;
                (d.day(), cum)
            })
            .collect();
        let mut fc = cum;
        let mut cum_fc: Vec<(u32, f64)> = cum_pts.last().copied().into_iter().collect();
        cum_fc.extend(projected_daily.iter().map(|(d, v)| {
            fc += v;
            (d.day(), fc)
        }));
        let cmax = [fc, budget.unwrap_or(0.0) * 1.25, 1.0]
            .into_iter()
            .fold(0.0, f64::max)
            * 1.1;
        let mut c2 = ChartBuilder::on(&bottom)
            .caption("Cumulative spend against budget", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(1u32..days_in_month + 1, 0f64..cmax)
            .map_err(|e| e.to_string())?;
        c2.configure_mesh()
            .x_desc("day of month")
            .y_desc("USD")
            .draw()
            .map_err(|e| e.to_string())?;
        c2.draw_series(LineSeries::new(cum_pts, BLUE.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("spent")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        if cum_fc.len() > 1 {
            c2.draw_series(DashedLineSeries::new(
                cum_fc,
                6,
                4,
                BLUE.mix(0.5).stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label("projected")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.mix(0.5)));
        }
        if let Some(b) = budget {
            for (pctv, color) in [
                (0.8, RGBColor(230, 160, 0)),
                (1.0, RED),
                (1.2, RGBColor(120, 0, 0)),
            ] {
                c2.draw_series(DashedLineSeries::new(
                    vec![(1, b * pctv), (days_in_month, b * pctv)],
                    8,
                    4,
                    color.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?
                .label(format!("budget {:.0} %", pctv * 100.0))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            }
        }
        c2.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_format() {
        assert_eq!(money(1234567.891), "$1,234,567.89");
        assert_eq!(money(-5.0), "-$5.00");
        assert_eq!(money(0.0), "$0.00");
    }

    #[test]
    fn chart_has_lines_and_marks() {
        let m = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
        let daily: Vec<(NaiveDate, f64)> = (0..20)
            .map(|i| (m + chrono::Days::new(i), 100.0 + i as f64))
            .collect();
        let fc: Vec<(NaiveDate, f64)> = (20..31)
            .map(|i| (m + chrono::Days::new(i), 110.0))
            .collect();
        let svg = chart_svg(m, &daily, &fc, Some(3000.0), &[m + chrono::Days::new(5)]).unwrap();
        assert!(
            svg.starts_with("<svg") || svg.contains("<svg"),
            "{}",
            &svg[..100.min(svg.len())]
        );
        assert!(svg.contains("Daily spend 2026-10"));
        assert!(svg.contains("budget 120 %"));
        assert!(svg.matches("<circle").count() >= 1);
    }
}
