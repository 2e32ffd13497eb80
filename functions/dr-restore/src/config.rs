//! The function's own configuration, read once at cold start (docs/dr-restore.md#configuration).

use std::time::Duration;

use shared::config::Vars;
use shared::SuiteError;

use crate::check::{CheckPlan, CurrencyColumn, RpoPolicy, SanityQuery};
use crate::db::quote_ident;
use crate::drill::{Mode, Timing};
use crate::heads_parse::parse_heads;

/// The heads baked in at build time (build.rs, `DR_ALEMBIC_HEADS_FILE`); empty when none.
pub const BUILD_HEADS: &str = env!("DR_BUILD_ALEMBIC_HEADS");

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub mode: Mode,
    /// `DR_SOURCE_DB_INSTANCE` or `DR_SOURCE_DB_CLUSTER`.
    pub source: String,
    /// `DR_INSTANCE_PREFIX`: restored instances are `<prefix><drill_id>` (default `dr-drill-`);
    /// RDS events for other identifiers are ignored.
    pub instance_prefix: String,
    pub subnet_group: String,
    pub security_group_ids: Vec<String>,
    pub parameter_group: String,
    pub instance_parameter_group: Option<String>,
    pub instance_class: String,
    pub tags: Vec<(String, String)>,
    /// `DR_KEEP_RESTORED`: the default of the payload's `keep`.
    pub keep_default: bool,
    /// `DR_STATE_BUCKET` (default REPORT_BUCKET) and `DR_STATE_PREFIX`.
    pub state_bucket: Option<String>,
    pub state_prefix: String,
    pub db_name: String,
    pub db_secret_id: String,
    /// Local and test runs only: the endpoint RDS returns is replaced by this host/port.
    pub host_override: Option<String>,
    pub port_override: Option<u16>,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    pub plan: CheckPlan,
    /// Where the expected heads came from: `DR_EXPECTED_HEADS` or `build`.
    pub heads_source: String,
    pub timing: Timing,
    pub failover: FailoverSettings,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FailoverSettings {
    /// `DR_FAILOVER_REPLICA`: the read replica promoted.
    pub replica: Option<String>,
    /// `DR_FAILOVER_CLUSTER` (+ `DR_FAILOVER_TARGET_INSTANCE`): the Aurora cluster failed over.
    pub cluster: Option<String>,
    pub target_instance: Option<String>,
    /// Flags switched: (flag, parameter, standby parameter whose value is copied in).
    pub switches: Vec<Switch>,
    pub smoke_urls: Vec<String>,
    pub smoke_timeout: Duration,
    /// How long the rehearsal waits for the promoted instance to be available.
    pub wait: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    pub flag: String,
    pub parameter: String,
    pub standby_parameter: String,
}

fn bad(var: &str, problem: impl Into<String>) -> SuiteError {
    SuiteError::Config {
        var: var.into(),
        problem: problem.into(),
    }
}

fn valid_rds_id(s: &str) -> bool {
    // RDS identifiers: letters, digits, hyphens; start with a letter; at most 63.
    !s.is_empty()
        && s.len() <= 63
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.ends_with('-')
        && !s.contains("--")
}

pub fn parse_tags(var: &str, raw: &str) -> Result<Vec<(String, String)>, SuiteError> {
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(bad(var, format!("{p:?} is not key=value"))),
        })
        .collect()
}

fn parse_currency(raw: &[String]) -> Result<Vec<CurrencyColumn>, SuiteError> {
    raw.iter()
        .map(|item| {
            let (table, column) = item.rsplit_once('.').ok_or_else(|| {
                bad("DR_CURRENCY_COLUMNS", format!("{item:?} is not table.column (e.g. orders.updated_at)"))
            })?;
            if quote_ident(table).is_none() || quote_ident(column).is_none() || column.contains('.') {
                return Err(bad(
                    "DR_CURRENCY_COLUMNS",
                    format!("{item:?}: names may hold letters, digits and _ only (schema.table.column at most)"),
                ));
            }
            Ok(CurrencyColumn {
                table: table.into(),
                column: column.into(),
            })
        })
        .collect()
}

fn ms(vars: &Vars, name: &str, default: u64) -> Result<Duration, SuiteError> {
    vars.parse_or(name, default, "milliseconds")
        .map(Duration::from_millis)
}

impl Settings {
    pub fn from_vars(vars: &Vars, environment: &str) -> Result<Self, SuiteError> {
        let (mode, source) = match (vars.get("DR_SOURCE_DB_INSTANCE"), vars.get("DR_SOURCE_DB_CLUSTER")) {
            (Some(i), None) => (Mode::Instance, i.to_string()),
            (None, Some(c)) => (Mode::Cluster, c.to_string()),
            (Some(_), Some(_)) => {
                return Err(bad(
                    "DR_SOURCE_DB_INSTANCE / DR_SOURCE_DB_CLUSTER",
                    "set one of them, not both",
                ))
            }
            (None, None) => {
                return Err(bad(
                    "DR_SOURCE_DB_INSTANCE",
                    "is not set; set it to the DB instance restored by drills (or DR_SOURCE_DB_CLUSTER for Aurora)",
                ))
            }
        };
        let instance_prefix = vars.or("DR_INSTANCE_PREFIX", "dr-drill-");
        if !valid_rds_id(&format!("{instance_prefix}x")) {
            return Err(bad(
                "DR_INSTANCE_PREFIX",
                "letters, digits and single hyphens, starting with a letter",
            ));
        }
        let subnet_group = vars.required(
            "DR_SUBNET_GROUP",
            "the DB subnet group of restored instances (never the default)",
        )?;
        let security_group_ids = vars.list("DR_SECURITY_GROUP_IDS");
        if security_group_ids.is_empty() {
            return Err(bad(
                "DR_SECURITY_GROUP_IDS",
                "is not set; set it to the comma-separated VPC security groups of restored instances (never the default group)",
            ));
        }
        let parameter_group = vars.required(
            "DR_PARAMETER_GROUP",
            "the DB parameter group (cluster mode: DB cluster parameter group) of restored databases",
        )?;
        let instance_class =
            vars.required("DR_INSTANCE_CLASS", "an instance class, e.g. db.t4g.medium")?;
        if !instance_class.starts_with("db.") {
            return Err(bad(
                "DR_INSTANCE_CLASS",
                format!("{instance_class:?} is not an instance class like db.t4g.medium"),
            ));
        }
        let tags = parse_tags("DR_TAGS", &vars.or("DR_TAGS", ""))?;
        let keep_default = vars.parse_or("DR_KEEP_RESTORED", false, "true or false")?;
        let mut state_prefix = vars.or("DR_STATE_PREFIX", "dr-restore/drills/");
        if !state_prefix.ends_with('/') {
            state_prefix.push('/');
        }
        let db_name = vars.required(
            "DR_DB_NAME",
            "the database checked on the restored instance",
        )?;
        let db_secret_id = vars.required(
            "DR_DB_SECRET_ID",
            "the Secrets Manager secret ({\"username\",\"password\"}) used to connect to restored databases",
        )?;
        let host_override = vars.get("DR_DB_HOST_OVERRIDE").map(str::to_string);
        let port_override = match vars.get("DR_DB_PORT_OVERRIDE") {
            None => None,
            Some(_) => Some(vars.parse_or("DR_DB_PORT_OVERRIDE", 5432u16, "a TCP port")?),
        };
        if environment == "prod" && (host_override.is_some() || port_override.is_some()) {
            return Err(bad(
                "DR_DB_HOST_OVERRIDE",
                "is for local and test runs only; unset it (and DR_DB_PORT_OVERRIDE) in prod",
            ));
        }
        let (expected_heads, heads_source) = match vars.get("DR_EXPECTED_HEADS") {
            Some(h) => (parse_heads(h), "DR_EXPECTED_HEADS".to_string()),
            None => (parse_heads(BUILD_HEADS), "build".to_string()),
        };
        if expected_heads.is_empty() {
            return Err(bad(
                "DR_EXPECTED_HEADS",
                "no expected Alembic heads: set DR_EXPECTED_HEADS=rev1,rev2 or build with DR_ALEMBIC_HEADS_FILE=<output of `alembic heads`>",
            ));
        }
        let sanity: Vec<SanityQuery> = match vars.get("DR_SANITY_QUERIES") {
            None => vec![],
            Some(raw) => serde_json::from_str(raw).map_err(|e| {
                bad(
                    "DR_SANITY_QUERIES",
                    format!("{e}; expected [{{\"name\": \"orders\", \"sql\": \"SELECT count(*) FROM orders\", \"min\": 1, \"max\": 100000000}}]"),
                )
            })?,
        };
        for q in &sanity {
            if let (Some(lo), Some(hi)) = (q.min, q.max) {
                if lo > hi {
                    return Err(bad(
                        "DR_SANITY_QUERIES",
                        format!("{}: min {lo} > max {hi}", q.name),
                    ));
                }
            }
        }
        let critical_tables = vars.list("DR_CRITICAL_TABLES");
        if let Some(t) = critical_tables.iter().find(|t| quote_ident(t).is_none()) {
            return Err(bad(
                "DR_CRITICAL_TABLES",
                format!("{t:?} is not a table name (letters, digits, _; schema.table)"),
            ));
        }
        let currency = parse_currency(&vars.list("DR_CURRENCY_COLUMNS"))?;
        let rpo = RpoPolicy {
            objective_seconds: vars.parse_or("DR_RPO_OBJECTIVE_SECONDS", 300.0, "seconds")?,
            tolerance_seconds: vars.parse_or("DR_RPO_TOLERANCE_SECONDS", 120.0, "seconds")?,
        };
        if !(rpo.objective_seconds > 0.0 && rpo.tolerance_seconds >= 0.0) {
            return Err(bad(
                "DR_RPO_OBJECTIVE_SECONDS",
                "objective must be > 0 and tolerance >= 0",
            ));
        }
        let d = Timing::default();
        let timing = Timing {
            restore_timeout: chrono::Duration::minutes(vars.parse_or(
                "DR_RESTORE_TIMEOUT_MINUTES",
                d.restore_timeout.num_minutes(),
                "minutes",
            )?),
            missing_grace: d.missing_grace,
            verify_lease: chrono::Duration::seconds(vars.parse_or(
                "DR_VERIFY_LEASE_SECONDS",
                d.verify_lease.num_seconds(),
                "seconds",
            )?),
        };
        let mut switches = vec![];
        for flag in ["DATABASE_URL", "S3_BUCKET"] {
            let p = format!("DR_FAILOVER_{flag}_PARAM");
            let s = format!("DR_FAILOVER_{flag}_STANDBY_PARAM");
            match (vars.get(&p), vars.get(&s)) {
                (Some(a), Some(b)) => switches.push(Switch {
                    flag: flag.into(),
                    parameter: a.into(),
                    standby_parameter: b.into(),
                }),
                (None, None) => {}
                _ => return Err(bad(&p, format!("set both {p} and {s}, or neither"))),
            }
        }
        let failover = FailoverSettings {
            replica: vars.get("DR_FAILOVER_REPLICA").map(str::to_string),
            cluster: vars.get("DR_FAILOVER_CLUSTER").map(str::to_string),
            target_instance: vars.get("DR_FAILOVER_TARGET_INSTANCE").map(str::to_string),
            switches,
            smoke_urls: vars.list("DR_SMOKE_URLS"),
            smoke_timeout: ms(vars, "DR_SMOKE_TIMEOUT_MS", 5_000)?,
            wait: Duration::from_secs(vars.parse_or(
                "DR_FAILOVER_WAIT_SECONDS",
                600u64,
                "seconds",
            )?),
        };
        if failover.replica.is_some() && failover.cluster.is_some() {
            return Err(bad(
                "DR_FAILOVER_REPLICA / DR_FAILOVER_CLUSTER",
                "set one of them, not both",
            ));
        }
        if let Some(u) = failover
            .smoke_urls
            .iter()
            .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(bad("DR_SMOKE_URLS", format!("{u:?} is not an http(s) URL")));
        }
        Ok(Settings {
            mode,
            source,
            instance_prefix,
            subnet_group,
            security_group_ids,
            parameter_group,
            instance_parameter_group: vars.get("DR_INSTANCE_PARAMETER_GROUP").map(str::to_string),
            instance_class,
            tags,
            keep_default,
            state_bucket: vars.get("DR_STATE_BUCKET").map(str::to_string),
            state_prefix,
            db_name,
            db_secret_id,
            host_override,
            port_override,
            connect_timeout: ms(vars, "DR_DB_CONNECT_TIMEOUT_MS", 5_000)?,
            statement_timeout: ms(vars, "DR_DB_STATEMENT_TIMEOUT_MS", 30_000)?,
            plan: CheckPlan {
                expected_heads,
                sanity,
                critical_tables,
                currency,
                rpo,
            },
            heads_source,
            timing,
            failover,
        })
    }

    /// The restored instance of a drill.
    pub fn instance_id(&self, drill_id: &str) -> String {
        format!("{}{}", self.instance_prefix, drill_id)
    }

    /// The drill an RDS source identifier belongs to, if it is one of ours.
    pub fn drill_of(&self, source_identifier: &str) -> Option<String> {
        let id = source_identifier
            .strip_prefix(&self.instance_prefix)?
            .trim_end_matches("-cluster");
        (!id.is_empty()).then(|| id.to_string())
    }

    pub fn state_key(&self, drill_id: &str) -> String {
        format!("{}{drill_id}.json", self.state_prefix)
    }
}

/// A drill id usable inside an RDS identifier.
pub fn valid_drill_id(id: &str, prefix: &str) -> bool {
    // `-cluster` is appended for cluster mode; keep the whole identifier within 63.
    valid_rds_id(&format!("{prefix}{id}-cluster")) && !id.ends_with("-cluster")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("DR_SOURCE_DB_INSTANCE", "app-db"),
            ("DR_SUBNET_GROUP", "dr-private"),
            ("DR_SECURITY_GROUP_IDS", "sg-1, sg-2"),
            ("DR_PARAMETER_GROUP", "app-pg15"),
            ("DR_INSTANCE_CLASS", "db.t4g.medium"),
            ("DR_DB_NAME", "app"),
            ("DR_DB_SECRET_ID", "dr/db"),
            ("DR_EXPECTED_HEADS", "abc123 (head)\ndef456 (head)"),
        ]
    }

    fn s(extra: &[(&'static str, &'static str)], env: &str) -> Result<Settings, SuiteError> {
        let mut p = base();
        for (k, v) in extra {
            p.retain(|(a, _)| a != k);
            p.push((k, v));
        }
        Settings::from_vars(&Vars::from_pairs(p), env)
    }

    #[test]
    fn defaults_and_parsing() {
        let c = s(
            &[
                ("DR_TAGS", "team=platform, cost-center=42"),
                (
                    "DR_CURRENCY_COLUMNS",
                    "orders.updated_at, app.users.created_at",
                ),
                (
                    "DR_SANITY_QUERIES",
                    r#"[{"name":"orders","sql":"select count(*) from orders","min":1}]"#,
                ),
            ],
            "dev",
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Instance);
        assert_eq!(c.security_group_ids, vec!["sg-1", "sg-2"]);
        assert_eq!(c.plan.expected_heads, vec!["abc123", "def456"]);
        assert_eq!(c.heads_source, "DR_EXPECTED_HEADS");
        assert_eq!(c.tags[1], ("cost-center".into(), "42".into()));
        assert_eq!(c.plan.currency[1].table, "app.users");
        assert_eq!(c.plan.rpo.objective_seconds, 300.0);
        assert_eq!(c.instance_id("q4"), "dr-drill-q4");
        assert_eq!(c.drill_of("dr-drill-q4").as_deref(), Some("q4"));
        assert_eq!(c.drill_of("dr-drill-q4-cluster").as_deref(), Some("q4"));
        assert_eq!(c.drill_of("app-db"), None);
    }

    #[test]
    fn bad_values_are_named() {
        for (extra, var) in [
            (
                vec![("DR_SECURITY_GROUP_IDS", " ")],
                "DR_SECURITY_GROUP_IDS",
            ),
            (vec![("DR_INSTANCE_CLASS", "t3.micro")], "DR_INSTANCE_CLASS"),
            (vec![("DR_TAGS", "novalue")], "DR_TAGS"),
            (
                vec![("DR_CURRENCY_COLUMNS", "orders")],
                "DR_CURRENCY_COLUMNS",
            ),
            (
                vec![("DR_CURRENCY_COLUMNS", "orders.x;drop")],
                "DR_CURRENCY_COLUMNS",
            ),
            (
                vec![("DR_SANITY_QUERIES", "[{\"nam\":1}]")],
                "DR_SANITY_QUERIES",
            ),
            (vec![("DR_CRITICAL_TABLES", "a b")], "DR_CRITICAL_TABLES"),
            (
                vec![("DR_SOURCE_DB_CLUSTER", "c")],
                "DR_SOURCE_DB_INSTANCE / DR_SOURCE_DB_CLUSTER",
            ),
            (
                vec![("DR_FAILOVER_DATABASE_URL_PARAM", "/a")],
                "DR_FAILOVER_DATABASE_URL_PARAM",
            ),
            (vec![("DR_SMOKE_URLS", "localhost:80")], "DR_SMOKE_URLS"),
        ] {
            let e = s(&extra, "dev").unwrap_err().to_string();
            assert!(e.contains(var), "{extra:?}: {e}");
        }
        let e = s(&[("DR_EXPECTED_HEADS", " ")], "dev");
        // Empty = unset: falls back to the build's heads, which this build has none of unless
        // DR_ALEMBIC_HEADS_FILE was set.
        if BUILD_HEADS.is_empty() {
            assert!(e.unwrap_err().to_string().contains("DR_EXPECTED_HEADS"));
        }
    }

    #[test]
    fn the_host_override_is_refused_in_prod() {
        let e = s(&[("DR_DB_HOST_OVERRIDE", "127.0.0.1")], "prod")
            .unwrap_err()
            .to_string();
        assert!(e.contains("local and test runs only"), "{e}");
        assert!(s(&[("DR_DB_HOST_OVERRIDE", "127.0.0.1")], "local").is_ok());
    }

    #[test]
    fn drill_ids() {
        assert!(valid_drill_id("2026q4", "dr-drill-"));
        assert!(!valid_drill_id("bad_id", "dr-drill-"));
        assert!(!valid_drill_id(&"x".repeat(60), "dr-drill-"));
    }
}
