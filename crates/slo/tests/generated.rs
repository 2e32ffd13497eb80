//! The SLO definition file, the workbook's numbers and the committed Terraform.

use std::path::{Path, PathBuf};

use slo::{markdown_table, parse, plan, Kind, SloError};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn plans() -> (slo::SloFile, Vec<slo::SloPlan>) {
    let text =
        std::fs::read_to_string(root().join("infra/slo/slos.json")).expect("infra/slo/slos.json");
    let file = parse(&text).expect("parses");
    let plans = plan(&file).expect("valid");
    (file, plans)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// The SRE workbook's table 5-8 (30-day SLO): burn rates 14.4, 6, 3, 1 for 2 %, 5 %, 10 %,
/// 10 % of the budget over 1 h, 6 h, 1 d, 3 d; and the thresholds they give for each SLO.
#[test]
fn thresholds_match_the_workbook() {
    let (_, plans) = plans();
    let by_name = |n: &str| {
        plans
            .iter()
            .find(|p| p.slo.name == n)
            .unwrap_or_else(|| panic!("SLO {n}"))
    };

    let api = by_name("api-availability");
    assert!(close(api.error_budget, 0.005));
    // 99.5 % availability pages at 7.2 % errors over 1 h and 5 m...
    let t = api.tier(60).unwrap();
    assert_eq!((t.tier.kind, t.burn_rate), (Kind::Page, 14.4));
    assert_eq!((t.long.window_minutes, t.short.window_minutes), (60, 5));
    assert!(
        close(t.long.threshold, 0.072) && close(t.short.threshold, 0.072),
        "{t:?}"
    );
    // ...and at 6 × 0.5 % = 3 % over 6 h and 30 m;
    let t = api.tier(360).unwrap();
    assert_eq!(
        (t.tier.kind, t.burn_rate, t.short.window_minutes),
        (Kind::Page, 6.0, 30)
    );
    assert!(close(t.long.threshold, 0.03));
    // tickets at 3 × 0.5 % = 1.5 % over 1 d / 2 h and 1 × 0.5 % over 3 d / 6 h.
    let t = api.tier(1440).unwrap();
    assert_eq!(
        (t.tier.kind, t.burn_rate, t.short.window_minutes),
        (Kind::Ticket, 3.0, 120)
    );
    assert!(close(t.long.threshold, 0.015));
    let t = api.tier(4320).unwrap();
    assert_eq!(
        (t.tier.kind, t.burn_rate, t.short.window_minutes),
        (Kind::Ticket, 1.0, 360)
    );
    assert!(close(t.long.threshold, 0.005));

    // Quote latency, ≥ 95 % within 900 ms: a 5 % budget; pages when 72 % / 30 % are slow.
    let quote = by_name("quote-latency");
    assert!(close(quote.error_budget, 0.05));
    assert!(close(quote.tier(60).unwrap().long.threshold, 0.72));
    assert!(close(quote.tier(360).unwrap().long.threshold, 0.30));
    assert!(close(quote.tier(1440).unwrap().long.threshold, 0.15));
    assert!(close(quote.tier(4320).unwrap().long.threshold, 0.05));
    assert_eq!(quote.slo.sli.errors.metric, "probe_slow_requests");

    // SSE uptime 99.0 %: 14.4 % / 6 % / 3 % / 1 %.
    let sse = by_name("sse-uptime");
    let th: Vec<f64> = sse.tiers.iter().map(|t| t.long.threshold).collect();
    for (got, want) in th.iter().zip([0.144, 0.06, 0.03, 0.01]) {
        assert!(close(*got, want), "{th:?}");
    }

    // The burn rates themselves: budget consumed × period ÷ window.
    let rates: Vec<f64> = api.tiers.iter().map(|t| t.burn_rate).collect();
    assert_eq!(rates, vec![14.4, 6.0, 3.0, 1.0]);
    // Spending at 14.4× for 1 h uses 2 % of the 30-day budget; at 1× for 3 days, 10 %.
    for t in &api.tiers {
        let spent = t.burn_rate * t.tier.long_minutes as f64 / (30.0 * 24.0 * 60.0);
        assert!(close(spent, t.tier.budget_consumed), "{t:?}");
    }
}

/// The committed infra/slo_alarms.tf is exactly what the generator produces now.
#[test]
fn committed_terraform_is_current() {
    let (file, plans) = plans();
    let want = slo::tf::render_file(&file, &plans);
    let have = std::fs::read_to_string(root().join("infra/slo_alarms.tf")).unwrap_or_default();
    assert!(
        have == want,
        "infra/slo_alarms.tf is stale: run `cargo run -p slo -- generate` and commit the result"
    );
}

/// What the Terraform says: the computed thresholds, long AND short, routing by severity,
/// the metrics uptime-probe emits.
#[test]
fn terraform_carries_the_plan() {
    let (file, plans) = plans();
    let tf = slo::tf::render_file(&file, &plans);
    assert_eq!(
        tf.matches("resource \"aws_cloudwatch_metric_alarm\"")
            .count(),
        plans.len() * 9
    );
    assert_eq!(
        tf.matches("resource \"aws_cloudwatch_composite_alarm\"")
            .count(),
        plans.len() * 2
    );
    assert!(tf.contains(
        "alarm_name          = \"slo-api-availability-burn-14.4x-1h-${var.environment}\""
    ));
    assert!(tf.contains("threshold           = 0.072\n"));
    assert!(tf.contains("threshold           = 0.144\n"));
    assert!(tf.contains("expression  = \"FILL(errors, 0) / total\""));
    assert!(tf.contains("period      = 259200"), "3-day window");
    assert!(tf.contains("(ALARM(\\\"${aws_cloudwatch_metric_alarm.slo_api_availability_14_4x_1h.alarm_name}\\\") AND ALARM(\\\"${aws_cloudwatch_metric_alarm.slo_api_availability_14_4x_5m.alarm_name}\\\")) OR (ALARM("));
    let page = tf
        .split("resource \"aws_cloudwatch_composite_alarm\" \"slo_api_availability_page\"")
        .nth(1)
        .unwrap();
    let page = &page[..page.find("\n}\n").unwrap()];
    assert!(
        page.contains("alarm_actions     = [aws_sns_topic.slo_critical.arn]"),
        "{page}"
    );
    assert!(
        page.contains("_6x_6h.") && page.contains("_6x_30m."),
        "{page}"
    );
    assert!(!page.contains("_3x_"), "{page}");
    let ticket = tf.split("\"slo_sse_uptime_ticket\"").nth(1).unwrap();
    assert!(ticket[..ticket.find("\n}\n").unwrap()].contains("[aws_sns_topic.slo_warn.arn]"));
    assert!(tf.contains("function    = \"uptime-probe-${var.environment}\""));
    assert!(tf.contains("environment = var.environment"));
    assert!(tf.contains("metric_name = \"probe_slow_requests\""));
    // Terraform fmt style: no tabs, no trailing spaces, two-space indents.
    for (i, l) in tf.lines().enumerate() {
        assert!(
            !l.ends_with(' ') && !l.contains('\t'),
            "line {}: {l:?}",
            i + 1
        );
        let lead = l.len() - l.trim_start().len();
        assert_eq!(lead % 2, 0, "line {}: {l:?}", i + 1);
    }
    // The metrics the SLOs use are the ones uptime-probe documents.
    let doc = std::fs::read_to_string(root().join("docs/uptime-probe.md")).unwrap();
    for p in &plans {
        for m in [&p.slo.sli.errors.metric, &p.slo.sli.total.metric] {
            assert!(
                doc.contains(&format!("| `{m}` |")),
                "{m} is not an uptime-probe metric"
            );
        }
    }
    // docs/slo.md carries the same table the generator prints.
    let slo_doc = std::fs::read_to_string(root().join("docs/slo.md")).unwrap();
    assert!(
        slo_doc.contains(&markdown_table(&plans)),
        "docs/slo.md: paste `cargo run -p slo -- table`"
    );
}

#[test]
fn bad_definitions_are_refused() {
    let base = std::fs::read_to_string(root().join("infra/slo/slos.json")).unwrap();
    let e = plan(&parse(&base.replacen("99.5", "90.0", 1)).unwrap()).unwrap_err();
    assert!(
        matches!(&e, SloError::Invalid { slo, .. } if slo == "api-availability"),
        "{e}"
    );
    assert!(e.to_string().contains("could never fire"), "{e}");
    let e = plan(&parse(&base.replacen("99.5", "100", 1)).unwrap()).unwrap_err();
    assert!(e.to_string().contains("objective_percent"), "{e}");
    let e = parse(&base.replacen("\"objective_percent\"", "\"objective\"", 1)).unwrap_err();
    assert!(e.to_string().contains("objective"), "{e}");
    let e =
        plan(&parse(&base.replacen("quote-latency", "api-availability", 1)).unwrap()).unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");
    let e = plan(
        &parse(&base.replacen("\"target\": \"api\"", "\"target\": \"${region}\"", 1)).unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("environment"), "{e}");
}
