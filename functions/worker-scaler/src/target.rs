//! The scaling target: an ECS service's desired count or an Auto Scaling group's desired
//! capacity. A narrow port (describe, set) so the run does not care which.

use std::future::Future;

use aws_sdk_autoscaling::error::ProvideErrorMetadata;
use serde::Serialize;
use shared::error::aws_error;
use shared::{SuiteError, SuiteResult};

/// `SCALER_TARGET`: `ecs:CLUSTER/SERVICE` or `asg:GROUP`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetSpec {
    Ecs { cluster: String, service: String },
    Asg { group: String },
}

impl TargetSpec {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("ecs:") {
            let (cluster, service) = rest
                .split_once('/')
                .filter(|(c, v)| !c.is_empty() && !v.is_empty() && !v.contains('/'))
                .ok_or_else(|| format!("{s:?}: expected ecs:CLUSTER/SERVICE"))?;
            return Ok(TargetSpec::Ecs {
                cluster: cluster.into(),
                service: service.into(),
            });
        }
        if let Some(group) = s.strip_prefix("asg:") {
            if group.is_empty() {
                return Err(format!("{s:?}: expected asg:GROUP_NAME"));
            }
            return Ok(TargetSpec::Asg {
                group: group.into(),
            });
        }
        Err(format!(
            "{s:?} names no target; expected ecs:CLUSTER/SERVICE or asg:GROUP_NAME"
        ))
    }

    /// A stable id, used in the state and lock keys.
    pub fn id(&self) -> String {
        match self {
            TargetSpec::Ecs { cluster, service } => format!("ecs:{cluster}/{service}"),
            TargetSpec::Asg { group } => format!("asg:{group}"),
        }
    }
}

/// What the target says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TargetState {
    pub desired: u32,
    /// ECS runningCount; Auto Scaling: instances InService.
    pub running: u32,
    /// The group's MaxSize (Auto Scaling refuses a desired capacity above it).
    pub max: Option<u32>,
}

pub trait ScalingTarget {
    fn describe(&self) -> impl Future<Output = SuiteResult<TargetState>> + Send;
    fn set_desired(&self, desired: u32) -> impl Future<Output = SuiteResult<()>> + Send;
}

pub enum AwsTarget {
    Ecs {
        client: aws_sdk_ecs::Client,
        cluster: String,
        service: String,
    },
    Asg {
        client: aws_sdk_autoscaling::Client,
        group: String,
    },
}

impl AwsTarget {
    pub fn new(spec: &TargetSpec, sdk: &aws_config::SdkConfig) -> Self {
        match spec {
            TargetSpec::Ecs { cluster, service } => AwsTarget::Ecs {
                client: aws_sdk_ecs::Client::new(sdk),
                cluster: cluster.clone(),
                service: service.clone(),
            },
            TargetSpec::Asg { group } => AwsTarget::Asg {
                client: aws_sdk_autoscaling::Client::new(sdk),
                group: group.clone(),
            },
        }
    }
}

fn count(n: i32) -> u32 {
    n.max(0) as u32
}

impl ScalingTarget for AwsTarget {
    async fn describe(&self) -> SuiteResult<TargetState> {
        match self {
            AwsTarget::Ecs {
                client,
                cluster,
                service,
            } => {
                let out = client
                    .describe_services()
                    .cluster(cluster)
                    .services(service)
                    .send()
                    .await
                    .map_err(|e| aws_error("ecs", "DescribeServices", e))?;
                let s = out
                    .services()
                    .iter()
                    .find(|s| s.status() != Some("INACTIVE"))
                    .ok_or_else(|| {
                        let why = out
                            .failures()
                            .first()
                            .and_then(|f| f.reason())
                            .unwrap_or("not found");
                        SuiteError::Config {
                            var: "SCALER_TARGET".into(),
                            problem: format!("ECS service {service} in cluster {cluster}: {why}; point SCALER_TARGET at an existing service"),
                        }
                    })?;
                Ok(TargetState {
                    desired: count(s.desired_count()),
                    running: count(s.running_count()),
                    max: None,
                })
            }
            AwsTarget::Asg { client, group } => {
                let out = client
                    .describe_auto_scaling_groups()
                    .auto_scaling_group_names(group)
                    .send()
                    .await
                    .map_err(|e| aws_error("autoscaling", "DescribeAutoScalingGroups", e))?;
                let g = out.auto_scaling_groups().first().ok_or_else(|| SuiteError::Config {
                    var: "SCALER_TARGET".into(),
                    problem: format!("Auto Scaling group {group} does not exist; point SCALER_TARGET at an existing group"),
                })?;
                let running = g
                    .instances()
                    .iter()
                    .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
                    .count() as u32;
                Ok(TargetState {
                    desired: count(g.desired_capacity().unwrap_or(0)),
                    running,
                    max: g.max_size().map(count),
                })
            }
        }
    }

    async fn set_desired(&self, desired: u32) -> SuiteResult<()> {
        let n = desired.min(i32::MAX as u32) as i32;
        match self {
            AwsTarget::Ecs {
                client,
                cluster,
                service,
            } => {
                client
                    .update_service()
                    .cluster(cluster)
                    .service(service)
                    .desired_count(n)
                    .send()
                    .await
                    .map_err(|e| aws_error("ecs", "UpdateService", e))?;
            }
            AwsTarget::Asg { client, group } => {
                // The group's own cool-down is not honoured: the scaler keeps its own.
                client
                    .set_desired_capacity()
                    .auto_scaling_group_name(group)
                    .desired_capacity(n)
                    .honor_cooldown(false)
                    .send()
                    .await
                    .map_err(|e| {
                        let code = e.code().unwrap_or("").to_string();
                        let mut err = aws_error("autoscaling", "SetDesiredCapacity", e);
                        if let SuiteError::Aws { message, .. } = &mut err {
                            message.push_str(&format!(" (code {code})"));
                        }
                        err
                    })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            TargetSpec::parse("ecs:workers/rq-worker").unwrap(),
            TargetSpec::Ecs {
                cluster: "workers".into(),
                service: "rq-worker".into()
            }
        );
        assert_eq!(
            TargetSpec::parse("asg:rq-workers").unwrap().id(),
            "asg:rq-workers"
        );
        for bad in ["ecs:workers", "ecs:/svc", "asg:", "k8s:x", "ecs:a/b/c"] {
            assert!(TargetSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
