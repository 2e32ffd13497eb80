//! The restored database adapter (tokio-postgres): connects, runs the plan's queries, times each
//! one. It collects raw findings only; check.rs judges them.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, NoTls};

use crate::check::{CheckPlan, DbFindings, Timed};

/// A password that never shows up in Debug or Display output (so never in a log line).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnTarget {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub credentials: Credentials,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
}

impl ConnTarget {
    /// host:port/db, for reports and logs (no credentials).
    pub fn label(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.dbname)
    }
}

/// The port the verification runs against.
pub trait RestoredDb: Send + Sync {
    fn collect(
        &self,
        target: &ConnTarget,
        plan: &CheckPlan,
    ) -> impl Future<Output = DbFindings> + Send;
}

pub struct Postgres;

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// A table or column name from configuration, quoted for SQL; only `[A-Za-z0-9_]` parts
/// separated by dots are accepted (config.rs validates the same at cold start).
pub fn quote_ident(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.is_empty()
        || parts.len() > 2
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        return None;
    }
    Some(
        parts
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join("."),
    )
}

fn pg_err(e: tokio_postgres::Error) -> String {
    // The server's message (e.g. `relation "alembic_version" does not exist`) is in the
    // DbError; the Display of the outer error says only "db error".
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(x) = src {
                s.push_str(&format!(": {x}"));
                src = x.source();
            }
            s
        }
    }
}

async fn timed<T, F>(f: F) -> Timed<T>
where
    F: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let value = f.await;
    Timed {
        value,
        ms: ms(start),
    }
}

async fn single_integer(client: &Client, sql: &str) -> Result<i64, String> {
    let row = client.query_one(sql, &[]).await.map_err(pg_err)?;
    if row.is_empty() {
        return Err("the query returned no column".into());
    }
    if let Ok(v) = row.try_get::<_, i64>(0) {
        return Ok(v);
    }
    if let Ok(v) = row.try_get::<_, i32>(0) {
        return Ok(v as i64);
    }
    Err("the first column is not an integer (cast it: count(*)::bigint)".into())
}

impl RestoredDb for Postgres {
    async fn collect(&self, target: &ConnTarget, plan: &CheckPlan) -> DbFindings {
        let start = Instant::now();
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&target.host)
            .port(target.port)
            .dbname(&target.dbname)
            .user(&target.credentials.username)
            .connect_timeout(target.connect_timeout)
            .application_name("dr-restore");
        if !target.credentials.password.expose().is_empty() {
            cfg.password(target.credentials.password.expose());
        }
        let connected = tokio::time::timeout(
            target.connect_timeout + Duration::from_secs(1),
            cfg.connect(NoTls),
        )
        .await;
        let client = match connected {
            Err(_) => {
                return DbFindings::unreachable(
                    format!(
                        "{}: connect timed out after {:?}",
                        target.label(),
                        target.connect_timeout
                    ),
                    ms(start),
                )
            }
            Ok(Err(e)) => {
                return DbFindings::unreachable(
                    format!("{}: {}", target.label(), pg_err(e)),
                    ms(start),
                )
            }
            Ok(Ok((client, conn))) => {
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::warn!(error = %e, "restored database connection closed");
                    }
                });
                client
            }
        };
        // Timestamps without a zone are read as UTC; no query may hang the drill.
        let setup = format!(
            "SET TIME ZONE 'UTC'; SET statement_timeout = {}; SET default_transaction_read_only = on",
            target.statement_timeout.as_millis()
        );
        if let Err(e) = client.batch_execute(&setup).await {
            return DbFindings::unreachable(
                format!("{}: session setup: {}", target.label(), pg_err(e)),
                ms(start),
            );
        }
        let connect = Timed {
            value: Ok(()),
            ms: ms(start),
        };
        let heads = Some(
            timed(async {
                let rows = client
                    .query("SELECT version_num FROM alembic_version ORDER BY 1", &[])
                    .await
                    .map_err(pg_err)?;
                rows.iter()
                    .map(|r| r.try_get::<_, String>(0).map_err(pg_err))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await,
        );
        let mut sanity = vec![];
        for q in &plan.sanity {
            sanity.push((q.name.clone(), timed(single_integer(&client, &q.sql)).await));
        }
        let mut smoke = vec![];
        for t in &plan.critical_tables {
            let r = timed(async {
                let q = quote_ident(t).ok_or_else(|| format!("bad table name {t:?}"))?;
                client
                    .query(&format!("SELECT * FROM {q} LIMIT 1"), &[])
                    .await
                    .map(|_| ())
                    .map_err(pg_err)
            })
            .await;
            smoke.push((t.clone(), r));
        }
        let mut currency = vec![];
        for c in &plan.currency {
            let r = timed(async {
                let t =
                    quote_ident(&c.table).ok_or_else(|| format!("bad table name {:?}", c.table))?;
                let col = quote_ident(&c.column)
                    .ok_or_else(|| format!("bad column name {:?}", c.column))?;
                let row = client
                    .query_one(&format!("SELECT max({col})::timestamptz FROM {t}"), &[])
                    .await
                    .map_err(pg_err)?;
                row.try_get::<_, Option<DateTime<Utc>>>(0).map_err(pg_err)
            })
            .await;
            currency.push((c.label(), r));
        }
        DbFindings {
            connect,
            heads,
            sanity,
            smoke,
            currency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_or_refused() {
        assert_eq!(quote_ident("orders").as_deref(), Some("\"orders\""));
        assert_eq!(
            quote_ident("app.orders").as_deref(),
            Some("\"app\".\"orders\"")
        );
        assert_eq!(quote_ident("orders; drop table x"), None);
        assert_eq!(quote_ident("a.b.c"), None);
        assert_eq!(quote_ident(""), None);
    }

    #[test]
    fn secrets_do_not_print() {
        let c = Credentials {
            username: "app".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
