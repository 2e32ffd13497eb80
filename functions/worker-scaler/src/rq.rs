//! Reading RQ's own keys in Redis, and keeping the scaler's state there under a lock.
//!
//! RQ's layout (rq ≥ 1.0; docs/worker-scaler.md): `rq:queue:NAME` (list of job ids waiting),
//! `rq:queue:NAME:intermediate` (list: jobs a worker has popped but not yet registered as
//! started, rq ≥ 1.16), `rq:wip:NAME` (StartedJobRegistry, zset), `rq:failed:NAME`
//! (FailedJobRegistry, zset: the dead letters), `rq:scheduled:NAME` (ScheduledJobRegistry,
//! zset: delayed retries land here), `rq:job:ID` (hash), `rq:workers:NAME` (set of worker keys
//! listening on the queue), `rq:worker:NAME` (hash, with a TTL refreshed by the heartbeat).

use std::collections::BTreeSet;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use serde::Serialize;
use shared::{SuiteError, SuiteResult};

use crate::policy::State;

/// What one queue looks like now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub queue: String,
    /// `LLEN rq:queue:NAME`.
    pub queued: u64,
    /// `LLEN rq:queue:NAME:intermediate`.
    pub intermediate: u64,
    /// `ZCARD rq:wip:NAME`.
    pub started: u64,
    /// `ZCARD rq:failed:NAME`.
    pub dead_letter: u64,
    /// Jobs waiting to run again after a failure: ids in the queue, its intermediate list and
    /// `rq:scheduled:NAME` whose job hash has `started_at` (RQ keeps it when it re-enqueues or
    /// schedules a retry; a fresh job has none). Scans at most `retry_scan_limit` ids.
    pub retries: u64,
    /// Live workers on the queue: members of `rq:workers:NAME` whose `rq:worker:…` hash exists.
    pub workers: u64,
}

impl QueueStats {
    /// The backlog the policy looks at: waiting plus popped-but-not-started.
    pub fn backlog(&self) -> u64 {
        self.queued + self.intermediate
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub queues: Vec<QueueStats>,
    /// Distinct live workers over all the queues (a worker may listen on several).
    pub live_workers: u64,
}

impl Snapshot {
    pub fn backlog(&self) -> u64 {
        self.queues.iter().map(QueueStats::backlog).sum()
    }
}

/// A Redis failure, phrased so the log says where and what (unreachable, timed out).
pub fn redis_error(url: &str, op: &str, e: redis::RedisError) -> SuiteError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connection_refusal() {
        "connection refused"
    } else if e.is_connection_dropped() || e.is_io_error() {
        "connection lost"
    } else {
        "failed"
    };
    SuiteError::Io(std::io::Error::other(format!(
        "Redis {} {op} {what}: {e}; no scaling decision was made (the next check retries)",
        redact(url)
    )))
}

/// The URL without a password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// A connection to Redis with connect and response timeouts: a hung Redis fails the check
/// in bounded time instead of eating the Lambda's timeout.
pub struct Redis {
    pub url: String,
    con: MultiplexedConnection,
}

impl Redis {
    pub async fn connect(
        client: &redis::Client,
        url: &str,
        timeout: Duration,
    ) -> SuiteResult<Self> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        // The client's own timeouts cover each step; this bounds the whole handshake too.
        let con = tokio::time::timeout(
            timeout * 2,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| {
            SuiteError::Io(std::io::Error::other(format!(
                "Redis {} connect timed out after {} ms; no scaling decision was made (the next check retries)",
                redact(url),
                (timeout * 2).as_millis()
            )))
        })?
        .map_err(|e| redis_error(url, "connect", e))?;
        Ok(Redis {
            url: url.to_string(),
            con,
        })
    }

    fn err(&self, op: &str) -> impl FnOnce(redis::RedisError) -> SuiteError + '_ {
        let op = op.to_string();
        move |e| redis_error(&self.url, &op, e)
    }

    /// One pipelined round trip for the counts, one for the worker liveness, one for the
    /// retry scan.
    pub async fn snapshot(
        &mut self,
        queues: &[String],
        retry_scan_limit: usize,
    ) -> SuiteResult<Snapshot> {
        let mut p = redis::pipe();
        for q in queues {
            p.cmd("LLEN").arg(format!("rq:queue:{q}"));
            p.cmd("LLEN").arg(format!("rq:queue:{q}:intermediate"));
            p.cmd("ZCARD").arg(format!("rq:wip:{q}"));
            p.cmd("ZCARD").arg(format!("rq:failed:{q}"));
            p.cmd("SMEMBERS").arg(format!("rq:workers:{q}"));
            let lim = retry_scan_limit.max(1) as isize - 1;
            p.cmd("LRANGE").arg(format!("rq:queue:{q}")).arg(0).arg(lim);
            p.cmd("LRANGE")
                .arg(format!("rq:queue:{q}:intermediate"))
                .arg(0)
                .arg(lim);
            p.cmd("ZRANGE")
                .arg(format!("rq:scheduled:{q}"))
                .arg(0)
                .arg(lim);
        }
        type Row = (
            u64,
            u64,
            u64,
            u64,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
        );
        let rows: Vec<Row> = {
            let flat: Vec<redis::Value> = p
                .query_async(&mut self.con)
                .await
                .map_err(|e| redis_error(&self.url, "LLEN/ZCARD/SMEMBERS", e))?;
            let mut rows = vec![];
            for chunk in flat.chunks(8) {
                let v = |i: usize| chunk.get(i).cloned().unwrap_or(redis::Value::Nil);
                let n = |i: usize| -> SuiteResult<u64> {
                    redis::from_redis_value(v(i))
                        .map_err(|e| SuiteError::Internal(format!("unexpected Redis reply: {e}")))
                };
                let l = |i: usize| -> SuiteResult<Vec<String>> {
                    redis::from_redis_value(v(i))
                        .map_err(|e| SuiteError::Internal(format!("unexpected Redis reply: {e}")))
                };
                rows.push((n(0)?, n(1)?, n(2)?, n(3)?, l(4)?, l(5)?, l(6)?, l(7)?));
            }
            rows
        };
        let mut out = Snapshot::default();
        let mut all_workers = BTreeSet::new();
        let mut liveness = redis::pipe();
        let mut worker_keys = vec![];
        let mut retry = redis::pipe();
        let mut retry_owner = vec![];
        for (i, (queued, intermediate, started, dead, workers, ids, inter_ids, sched)) in
            rows.into_iter().enumerate()
        {
            for w in workers {
                // Members are worker keys (`rq:worker:NAME`); older RQ stored bare names.
                let key = if w.starts_with("rq:worker:") {
                    w
                } else {
                    format!("rq:worker:{w}")
                };
                liveness.cmd("EXISTS").arg(&key);
                worker_keys.push((i, key));
            }
            let mut seen = BTreeSet::new();
            for id in ids
                .into_iter()
                .chain(inter_ids)
                .chain(sched)
                .take(retry_scan_limit)
            {
                if seen.insert(id.clone()) {
                    retry
                        .cmd("HEXISTS")
                        .arg(format!("rq:job:{id}"))
                        .arg("started_at");
                    retry_owner.push(i);
                }
            }
            out.queues.push(QueueStats {
                queue: queues.get(i).cloned().unwrap_or_default(),
                queued,
                intermediate,
                started,
                dead_letter: dead,
                retries: 0,
                workers: 0,
            });
        }
        if !worker_keys.is_empty() {
            let alive: Vec<bool> = liveness
                .query_async(&mut self.con)
                .await
                .map_err(self.err("EXISTS rq:worker:*"))?;
            for ((i, key), alive) in worker_keys.into_iter().zip(alive) {
                if alive {
                    if let Some(q) = out.queues.get_mut(i) {
                        q.workers += 1;
                    }
                    all_workers.insert(key);
                }
            }
        }
        if !retry_owner.is_empty() {
            let flags: Vec<bool> = retry
                .query_async(&mut self.con)
                .await
                .map_err(self.err("HEXISTS rq:job:*"))?;
            for (i, f) in retry_owner.into_iter().zip(flags) {
                if f {
                    if let Some(q) = out.queues.get_mut(i) {
                        q.retries += 1;
                    }
                }
            }
        }
        out.live_workers = all_workers.len() as u64;
        Ok(out)
    }

    /// `SET lock token NX PX ttl`: true when this invocation holds the lock.
    pub async fn lock(&mut self, key: &str, token: &str, ttl: Duration) -> SuiteResult<bool> {
        let r: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut self.con)
            .await
            .map_err(self.err("SET NX (lock)"))?;
        Ok(r.is_some())
    }

    /// Deletes the lock only if it is still ours (it may have expired and been taken).
    pub async fn unlock(&mut self, key: &str, token: &str) -> SuiteResult<()> {
        let script = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
        );
        let _: i64 = script
            .key(key)
            .arg(token)
            .invoke_async(&mut self.con)
            .await
            .map_err(self.err("unlock"))?;
        Ok(())
    }

    pub async fn load_state(&mut self, key: &str) -> SuiteResult<State> {
        let raw: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.con)
            .await
            .map_err(self.err("GET state"))?;
        match raw {
            None => Ok(State::default()),
            // A state this version cannot read is started over, not fatal: it only holds a
            // counter and a timestamp.
            Some(s) => Ok(serde_json::from_str(&s).unwrap_or_else(|e| {
                tracing::warn!(key, error = %e, "unreadable scaler state: starting over");
                State::default()
            })),
        }
    }

    /// Writes the state only while `lock` still holds `token` (a fence: an invocation whose
    /// lock expired cannot overwrite a newer one's state). False when fenced out.
    pub async fn save_state(
        &mut self,
        key: &str,
        lock: &str,
        token: &str,
        state: &State,
    ) -> SuiteResult<bool> {
        let body = serde_json::to_string(state).map_err(|e| SuiteError::Internal(e.to_string()))?;
        let script = redis::Script::new(
            "if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 else return 0 end",
        );
        let n: i64 = script
            .key(key)
            .key(lock)
            .arg(token)
            .arg(body)
            .invoke_async(&mut self.con)
            .await
            .map_err(self.err("SET state"))?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact("redis://:hunter2@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn backlog_counts_the_intermediate_list() {
        let s = Snapshot {
            queues: vec![
                QueueStats {
                    queue: "a".into(),
                    queued: 90,
                    intermediate: 11,
                    ..Default::default()
                },
                QueueStats {
                    queue: "b".into(),
                    queued: 5,
                    started: 40,
                    ..Default::default()
                },
            ],
            live_workers: 0,
        };
        assert_eq!(s.backlog(), 106);
    }
}
