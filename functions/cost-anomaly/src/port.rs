//! The narrow ports the run is written against (exactly the calls it makes) and their AWS
//! adapters: Cost Explorer (GetCostAndUsage, GetCostForecast) and Budgets. S3 goes through
//! `shared::store::ObjectStore`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use aws_sdk_budgets::types::{
    Budget, BudgetType, ComparisonOperator, Notification, NotificationType,
    NotificationWithSubscribers, Spend, Subscriber, SubscriptionType, ThresholdType, TimeUnit,
};
use aws_sdk_costexplorer::types::{
    DateInterval, Expression, Granularity, GroupDefinition, GroupDefinitionType, Metric, TagValues,
};
use chrono::NaiveDate;
use shared::error::aws_error;
use shared::{SuiteError, SuiteResult};

use crate::analysis::DayCost;
use crate::config::{BudgetSpec, NotificationKind, Threshold};

/// One GetCostAndUsage question: daily unblended cost in `[start, end)` by tag and service.
#[derive(Debug, Clone, PartialEq)]
pub struct CostQuery {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub tag_key: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CostPage {
    pub days: Vec<DayCost>,
    pub next_token: Option<String>,
}

pub trait CostSource: Send + Sync {
    /// One page (one billed request).
    fn cost_page(
        &self,
        q: &CostQuery,
        token: Option<&str>,
    ) -> impl Future<Output = SuiteResult<CostPage>> + Send;

    /// GetCostForecast of unblended cost over `[start, end)`, for one env tag value or all.
    fn forecast(
        &self,
        start: NaiveDate,
        end: NaiveDate,
        tag_key: &str,
        env: Option<&str>,
    ) -> impl Future<Output = SuiteResult<f64>> + Send;
}

/// The untagged group comes back as `env$`; it is reported as env `untagged`.
pub fn env_from_tag_key(key: &str, tag_key: &str) -> String {
    let v = key
        .strip_prefix(&format!("{tag_key}$"))
        .unwrap_or(key)
        .trim();
    if v.is_empty() {
        "untagged".into()
    } else {
        v.to_string()
    }
}

/// Calls whose answer is optional (the Cost Explorer forecast, a notification's subscribers)
/// are tried twice, not the shared eight times: an endpoint without them (moto answers 500)
/// must not stall the run for minutes.
fn optional_call_retries() -> aws_smithy_types::retry::RetryConfig {
    aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(2)
}

fn day(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

#[derive(Clone, Debug)]
pub struct AwsCostExplorer {
    client: aws_sdk_costexplorer::Client,
}

impl AwsCostExplorer {
    pub fn new(client: aws_sdk_costexplorer::Client) -> Self {
        AwsCostExplorer { client }
    }
}

fn interval(start: NaiveDate, end: NaiveDate) -> SuiteResult<DateInterval> {
    DateInterval::builder()
        .start(start.format("%Y-%m-%d").to_string())
        .end(end.format("%Y-%m-%d").to_string())
        .build()
        .map_err(|e| SuiteError::Internal(e.to_string()))
}

impl CostSource for AwsCostExplorer {
    async fn cost_page(&self, q: &CostQuery, token: Option<&str>) -> SuiteResult<CostPage> {
        let out = self
            .client
            .get_cost_and_usage()
            .time_period(interval(q.start, q.end)?)
            .granularity(Granularity::Daily)
            .metrics("UnblendedCost")
            .group_by(
                GroupDefinition::builder()
                    .r#type(GroupDefinitionType::Tag)
                    .key(&q.tag_key)
                    .build(),
            )
            .group_by(
                GroupDefinition::builder()
                    .r#type(GroupDefinitionType::Dimension)
                    .key("SERVICE")
                    .build(),
            )
            .set_next_page_token(token.map(str::to_string))
            .send()
            .await
            .map_err(|e| aws_error("ce", "GetCostAndUsage", e))?;
        let mut days = vec![];
        for r in out.results_by_time() {
            let Some(d) = r.time_period().and_then(|p| day(p.start())) else {
                continue;
            };
            let mut rows: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
            for g in r.groups() {
                let keys = g.keys();
                let env = keys
                    .first()
                    .map(|k| env_from_tag_key(k, &q.tag_key))
                    .unwrap_or_else(|| "untagged".into());
                let svc = keys.get(1).cloned().unwrap_or_else(|| "unknown".into());
                let amount = g
                    .metrics()
                    .and_then(|m| m.get("UnblendedCost"))
                    .and_then(|m| m.amount())
                    .and_then(|a| a.parse::<f64>().ok())
                    .filter(|a| a.is_finite())
                    .unwrap_or(0.0);
                *rows.entry(env).or_default().entry(svc).or_default() += amount;
            }
            days.push(DayCost {
                day: d,
                estimated: r.estimated(),
                rows,
            });
        }
        Ok(CostPage {
            days,
            next_token: out
                .next_page_token()
                .map(str::to_string)
                .filter(|t| !t.is_empty()),
        })
    }

    async fn forecast(
        &self,
        start: NaiveDate,
        end: NaiveDate,
        tag_key: &str,
        env: Option<&str>,
    ) -> SuiteResult<f64> {
        let filter = env.map(|e| {
            Expression::builder()
                .tags(TagValues::builder().key(tag_key).values(e).build())
                .build()
        });
        let out = self
            .client
            .get_cost_forecast()
            .time_period(interval(start, end)?)
            .metric(Metric::UnblendedCost)
            .granularity(Granularity::Monthly)
            .set_filter(filter)
            .customize()
            .config_override(
                aws_sdk_costexplorer::config::Builder::default()
                    .retry_config(optional_call_retries()),
            )
            .send()
            .await
            .map_err(|e| aws_error("ce", "GetCostForecast", e))?;
        out.total()
            .and_then(|t| t.amount())
            .and_then(|a| a.parse::<f64>().ok())
            .ok_or_else(|| SuiteError::Aws {
                service: "ce",
                operation: "GetCostForecast",
                message: "the answer has no Total.Amount".into(),
            })
    }
}

/// A notification as Budgets holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedNotification {
    pub kind: String,
    pub comparison: String,
    pub threshold: f64,
    pub threshold_type: String,
    /// SNS/email addresses; `None` when they could not be read.
    pub subscribers: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedBudget {
    pub limit: Option<f64>,
    pub cost_filters: BTreeMap<String, Vec<String>>,
    pub notifications: Vec<ObservedNotification>,
}

pub trait BudgetsApi: Send + Sync {
    fn describe(
        &self,
        account: &str,
        name: &str,
    ) -> impl Future<Output = SuiteResult<Option<ObservedBudget>>> + Send;
    fn create(
        &self,
        account: &str,
        spec: &BudgetSpec,
        tag_key: &str,
        thresholds: &[Threshold],
        topic: &str,
    ) -> impl Future<Output = SuiteResult<()>> + Send;
    fn update_limit(
        &self,
        account: &str,
        spec: &BudgetSpec,
        tag_key: &str,
    ) -> impl Future<Output = SuiteResult<()>> + Send;
    fn add_notification(
        &self,
        account: &str,
        name: &str,
        t: &Threshold,
        topic: &str,
    ) -> impl Future<Output = SuiteResult<()>> + Send;
    fn add_subscriber(
        &self,
        account: &str,
        name: &str,
        t: &Threshold,
        topic: &str,
    ) -> impl Future<Output = SuiteResult<()>> + Send;
}

#[derive(Clone, Debug)]
pub struct AwsBudgets {
    client: aws_sdk_budgets::Client,
}

impl AwsBudgets {
    pub fn new(client: aws_sdk_budgets::Client) -> Self {
        AwsBudgets { client }
    }
}

fn internal<E: std::fmt::Display>(e: E) -> SuiteError {
    SuiteError::Internal(e.to_string())
}

fn notification(t: &Threshold) -> SuiteResult<Notification> {
    Notification::builder()
        .notification_type(match t.kind {
            NotificationKind::Actual => NotificationType::Actual,
            NotificationKind::Forecasted => NotificationType::Forecasted,
        })
        .comparison_operator(ComparisonOperator::GreaterThan)
        .threshold(t.percent)
        .threshold_type(ThresholdType::Percentage)
        .build()
        .map_err(internal)
}

fn sns_subscriber(topic: &str) -> SuiteResult<Subscriber> {
    Subscriber::builder()
        .subscription_type(SubscriptionType::Sns)
        .address(topic)
        .build()
        .map_err(internal)
}

/// The budget's cost filter: the `user:<tag>$<env>` tag value when it is scoped to an env.
pub fn cost_filters(spec: &BudgetSpec, tag_key: &str) -> BTreeMap<String, Vec<String>> {
    spec.env
        .iter()
        .map(|e| {
            (
                "TagKeyValue".to_string(),
                vec![format!("user:{tag_key}${e}")],
            )
        })
        .collect()
}

#[allow(deprecated)] // CostFilters: see `describe`.
fn budget(spec: &BudgetSpec, tag_key: &str) -> SuiteResult<Budget> {
    let filters: HashMap<String, Vec<String>> = cost_filters(spec, tag_key).into_iter().collect();
    Budget::builder()
        .budget_name(&spec.name)
        .budget_limit(
            Spend::builder()
                .amount(format!("{:.2}", spec.limit))
                .unit("USD")
                .build()
                .map_err(internal)?,
        )
        .time_unit(TimeUnit::Monthly)
        .budget_type(BudgetType::Cost)
        .set_cost_filters((!filters.is_empty()).then_some(filters))
        .build()
        .map_err(internal)
}

impl BudgetsApi for AwsBudgets {
    // CostFilters is deprecated in favour of FilterExpression, but it is what moto and
    // Terraform's aws_budgets_budget `cost_filter` speak; a TagKeyValue filter needs nothing more.
    #[allow(deprecated)]
    async fn describe(&self, account: &str, name: &str) -> SuiteResult<Option<ObservedBudget>> {
        let out = match self
            .client
            .describe_budget()
            .account_id(account)
            .budget_name(name)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(aws_error("budgets", "DescribeBudget", e)),
        };
        let Some(b) = out.budget() else {
            return Ok(None);
        };
        let limit = b
            .budget_limit()
            .and_then(|s| s.amount().parse::<f64>().ok());
        let cost_filters = b
            .cost_filters()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let ns = self
            .client
            .describe_notifications_for_budget()
            .account_id(account)
            .budget_name(name)
            .send()
            .await
            .map_err(|e| aws_error("budgets", "DescribeNotificationsForBudget", e))?;
        let mut notifications = vec![];
        for n in ns.notifications() {
            // Subscribers are read per notification; an emulator without the call (moto)
            // leaves them unknown rather than failing the whole check.
            let subscribers = self
                .client
                .describe_subscribers_for_notification()
                .account_id(account)
                .budget_name(name)
                .notification(n.clone())
                .customize()
                .config_override(
                    aws_sdk_budgets::config::Builder::default()
                        .retry_config(optional_call_retries()),
                )
                .send()
                .await
                .ok()
                .map(|o| {
                    o.subscribers()
                        .iter()
                        .map(|s| s.address().to_string())
                        .collect::<Vec<_>>()
                });
            notifications.push(ObservedNotification {
                kind: n.notification_type().as_str().to_string(),
                comparison: n.comparison_operator().as_str().to_string(),
                threshold: n.threshold(),
                threshold_type: n
                    .threshold_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_else(|| "PERCENTAGE".into()),
                subscribers,
            });
        }
        Ok(Some(ObservedBudget {
            limit,
            cost_filters,
            notifications,
        }))
    }

    async fn create(
        &self,
        account: &str,
        spec: &BudgetSpec,
        tag_key: &str,
        thresholds: &[Threshold],
        topic: &str,
    ) -> SuiteResult<()> {
        let mut req = self
            .client
            .create_budget()
            .account_id(account)
            .budget(budget(spec, tag_key)?);
        for t in thresholds {
            req = req.notifications_with_subscribers(
                NotificationWithSubscribers::builder()
                    .notification(notification(t)?)
                    .subscribers(sns_subscriber(topic)?)
                    .build()
                    .map_err(internal)?,
            );
        }
        req.send()
            .await
            .map_err(|e| aws_error("budgets", "CreateBudget", e))?;
        Ok(())
    }

    async fn update_limit(
        &self,
        account: &str,
        spec: &BudgetSpec,
        tag_key: &str,
    ) -> SuiteResult<()> {
        self.client
            .update_budget()
            .account_id(account)
            .new_budget(budget(spec, tag_key)?)
            .send()
            .await
            .map_err(|e| aws_error("budgets", "UpdateBudget", e))?;
        Ok(())
    }

    async fn add_notification(
        &self,
        account: &str,
        name: &str,
        t: &Threshold,
        topic: &str,
    ) -> SuiteResult<()> {
        self.client
            .create_notification()
            .account_id(account)
            .budget_name(name)
            .notification(notification(t)?)
            .subscribers(sns_subscriber(topic)?)
            .send()
            .await
            .map_err(|e| aws_error("budgets", "CreateNotification", e))?;
        Ok(())
    }

    async fn add_subscriber(
        &self,
        account: &str,
        name: &str,
        t: &Threshold,
        topic: &str,
    ) -> SuiteResult<()> {
        self.client
            .create_subscriber()
            .account_id(account)
            .budget_name(name)
            .notification(notification(t)?)
            .subscriber(sns_subscriber(topic)?)
            .send()
            .await
            .map_err(|e| aws_error("budgets", "CreateSubscriber", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_keys() {
        assert_eq!(env_from_tag_key("env$prod", "env"), "prod");
        assert_eq!(env_from_tag_key("env$", "env"), "untagged");
        assert_eq!(env_from_tag_key("other", "env"), "other");
    }

    #[test]
    fn filters() {
        let b = BudgetSpec {
            name: "p".into(),
            limit: 1.0,
            env: Some("prod".into()),
        };
        assert_eq!(
            cost_filters(&b, "env")["TagKeyValue"],
            vec!["user:env$prod".to_string()]
        );
        assert!(cost_filters(&BudgetSpec { env: None, ..b }, "env").is_empty());
    }
}
