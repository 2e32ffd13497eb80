//! One check: Redis snapshot, target state, the policy, the scaling call, the state, under a
//! lock so concurrent invocations cannot double-apply a change.

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::{SuiteError, SuiteResult};

use crate::config::Settings;
use crate::policy::{Action, Decision, Observation};
use crate::rq::{Redis, Snapshot};
use crate::target::{ScalingTarget, TargetState};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// A change was applied to the target.
    Scaled,
    /// The policy decided to hold.
    Held,
    /// `dry_run`: decided, not applied, state untouched.
    DryRun,
    /// Another invocation holds the lock: nothing read or changed.
    Busy,
    /// The same check (schedule time) was already counted.
    Duplicate,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub status: Status,
    pub target: String,
    pub check_id: Option<String>,
    pub evaluated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_state: Option<TargetState>,
}

pub struct Check {
    /// The schedule's time, when the event carries one: the idempotency key of the check.
    pub check_id: Option<String>,
    pub dry_run: bool,
    /// The time the policy evaluates (the clock, or a simulated one in tests and demos).
    pub now: DateTime<Utc>,
    /// Unique per invocation: the lock's value.
    pub token: String,
}

pub async fn run_check<T: ScalingTarget>(
    settings: &Settings,
    redis_client: &redis::Client,
    target: &T,
    check: &Check,
) -> SuiteResult<Outcome> {
    let mut redis =
        Redis::connect(redis_client, &settings.redis_url, settings.redis_timeout).await?;
    let base = Outcome {
        status: Status::Held,
        target: settings.target.id(),
        check_id: check.check_id.clone(),
        evaluated_at: check.now,
        decision: None,
        snapshot: None,
        target_state: None,
    };
    if check.dry_run {
        let snapshot = redis
            .snapshot(&settings.queues, settings.retry_scan_limit)
            .await?;
        let state = redis.load_state(&settings.state_key()).await?;
        let ts = target.describe().await?;
        let (decision, _) = settings
            .policy
            .decide(&state, &observe(&snapshot, &ts, check.now));
        return Ok(Outcome {
            status: Status::DryRun,
            decision: Some(decision),
            snapshot: Some(snapshot),
            target_state: Some(ts),
            ..base
        });
    }
    let lock = settings.lock_key();
    if !redis.lock(&lock, &check.token, settings.lock_ttl).await? {
        return Ok(Outcome {
            status: Status::Busy,
            ..base
        });
    }
    let result = locked(settings, &mut redis, target, check, base).await;
    // Best effort: on failure the lock's TTL frees it anyway.
    if let Err(e) = redis.unlock(&lock, &check.token).await {
        tracing::warn!(error = %e, "could not release the scaler lock; it expires by itself");
    }
    result
}

fn observe(snapshot: &Snapshot, ts: &TargetState, now: DateTime<Utc>) -> Observation {
    Observation {
        now,
        backlog: snapshot.backlog(),
        current_desired: ts.desired,
    }
}

async fn locked<T: ScalingTarget>(
    settings: &Settings,
    redis: &mut Redis,
    target: &T,
    check: &Check,
    base: Outcome,
) -> SuiteResult<Outcome> {
    let key = settings.state_key();
    let state = redis.load_state(&key).await?;
    if check.check_id.is_some() && state.last_check_id == check.check_id {
        return Ok(Outcome {
            status: Status::Duplicate,
            ..base
        });
    }
    let snapshot = redis
        .snapshot(&settings.queues, settings.retry_scan_limit)
        .await?;
    let ts = target.describe().await?;
    let mut policy = settings.policy.clone();
    // Auto Scaling refuses a desired capacity above the group's MaxSize.
    if let Some(m) = ts.max {
        policy.max = policy.max.min(m).max(policy.base.min(m));
    }
    let (decision, mut next) = policy.decide(&state, &observe(&snapshot, &ts, check.now));
    next.last_check_id = check.check_id.clone();
    let status = if decision.action == Action::Hold {
        Status::Held
    } else {
        // Applied before the state is stored: if the call fails, the state keeps the old
        // counter and the next check decides again.
        target.set_desired(decision.to).await?;
        Status::Scaled
    };
    if !redis
        .save_state(&key, &settings.lock_key(), &check.token, &next)
        .await?
    {
        return Err(SuiteError::Internal(format!(
            "the scaler lock {} expired during the check (SCALER_LOCK_TTL_SECONDS {}s is too short); the state was not saved",
            settings.lock_key(),
            settings.lock_ttl.as_secs()
        )));
    }
    let mut ts = ts;
    if status == Status::Scaled {
        ts.desired = decision.to;
    }
    Ok(Outcome {
        status,
        decision: Some(decision),
        snapshot: Some(snapshot),
        target_state: Some(ts),
        ..base
    })
}
