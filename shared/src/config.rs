//! Typed configuration from the environment. A function reads its whole configuration once at
//! cold start; a missing or malformed variable fails there, with a message naming the variable
//! and what it should hold, instead of failing on the first event.

use std::collections::HashMap;
use std::str::FromStr;

use crate::error::SuiteError;

/// Where variables come from: the process environment in Lambda, a map in tests.
#[derive(Debug, Clone, Default)]
pub struct Vars(HashMap<String, String>);

impl Vars {
    pub fn from_process() -> Self {
        Vars(std::env::vars().collect())
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Vars(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// The value, with empty strings treated as unset (Terraform often renders `""`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    pub fn required(&self, name: &str, what: &str) -> Result<String, SuiteError> {
        self.get(name)
            .map(str::to_string)
            .ok_or_else(|| SuiteError::Config {
                var: name.to_string(),
                problem: format!("is not set; set it to {what}"),
            })
    }

    pub fn or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_string()
    }

    /// Parses a variable, or returns `default` when unset.
    pub fn parse_or<T>(&self, name: &str, default: T, what: &str) -> Result<T, SuiteError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.parse::<T>().map_err(|e| SuiteError::Config {
                var: name.to_string(),
                problem: format!("cannot parse {raw:?} ({e}); expected {what}"),
            }),
        }
    }

    /// A comma-separated list, trimmed, empty items dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|s| {
                s.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What every function reads.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonConfig {
    /// `AWS_LAMBDA_FUNCTION_NAME`, or the crate name when run outside Lambda.
    pub function_name: String,
    /// `ENVIRONMENT`: dev, staging or prod.
    pub environment: String,
    /// `DEPLOYMENT`: a free label (git sha, release) stamped on logs, metrics and reports.
    pub deployment: String,
    /// `REPORT_BUCKET`: where reports go.
    pub report_bucket: String,
    /// `REPORT_PREFIX`: default `reports/`.
    pub report_prefix: String,
    /// `METRICS_NAMESPACE`: the CloudWatch namespace for EMF lines, default `PlatformPlaybook`.
    pub metrics_namespace: String,
    /// `LOG_MASK_FIELDS`: comma-separated field names whose values are never logged.
    pub log_mask_fields: Vec<String>,
}

pub const ENVIRONMENTS: &[&str] = &["dev", "staging", "prod", "local"];

impl CommonConfig {
    pub fn from_vars(vars: &Vars, default_function: &str) -> Result<Self, SuiteError> {
        let environment = vars.required("ENVIRONMENT", "one of dev, staging, prod (or local)")?;
        if !ENVIRONMENTS.contains(&environment.as_str()) {
            return Err(SuiteError::Config {
                var: "ENVIRONMENT".into(),
                problem: format!("{environment:?} is not one of dev, staging, prod, local"),
            });
        }
        let mut report_prefix = vars.or("REPORT_PREFIX", "reports/");
        if !report_prefix.ends_with('/') {
            report_prefix.push('/');
        }
        Ok(CommonConfig {
            function_name: vars.or("AWS_LAMBDA_FUNCTION_NAME", default_function),
            environment,
            deployment: vars.or("DEPLOYMENT", "unknown"),
            report_bucket: vars.required("REPORT_BUCKET", "the bucket that receives reports")?,
            report_prefix,
            metrics_namespace: vars.or("METRICS_NAMESPACE", "PlatformPlaybook"),
            log_mask_fields: default_mask_fields()
                .into_iter()
                .chain(vars.list("LOG_MASK_FIELDS"))
                .collect(),
        })
    }
}

/// Masked even when `LOG_MASK_FIELDS` forgets them.
fn default_mask_fields() -> Vec<String> {
    [
        "password",
        "secret",
        "token",
        "authorization",
        "aws_secret_access_key",
        "database_url",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_variable_is_named() {
        let vars = Vars::from_pairs([("ENVIRONMENT", "dev")]);
        let err = CommonConfig::from_vars(&vars, "f").unwrap_err().to_string();
        assert!(err.contains("REPORT_BUCKET"), "{err}");
        assert!(err.contains("is not set"), "{err}");
    }

    #[test]
    fn bad_environment_is_named() {
        let vars = Vars::from_pairs([("ENVIRONMENT", "production"), ("REPORT_BUCKET", "b")]);
        let err = CommonConfig::from_vars(&vars, "f").unwrap_err().to_string();
        assert!(
            err.contains("ENVIRONMENT") && err.contains("production"),
            "{err}"
        );
    }

    #[test]
    fn malformed_number_is_named() {
        let vars = Vars::from_pairs([("LAG_HOURS", "abc")]);
        let err = vars
            .parse_or::<f64>("LAG_HOURS", 24.0, "a number of hours")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("LAG_HOURS") && err.contains("abc") && err.contains("number of hours"),
            "{err}"
        );
        assert_eq!(
            Vars::default()
                .parse_or::<f64>("LAG_HOURS", 24.0, "h")
                .unwrap(),
            24.0
        );
    }

    #[test]
    fn defaults_and_mask_list() {
        let vars = Vars::from_pairs([
            ("ENVIRONMENT", "staging"),
            ("REPORT_BUCKET", "reports"),
            ("REPORT_PREFIX", "out"),
            ("LOG_MASK_FIELDS", "email, api_key,,"),
        ]);
        let c = CommonConfig::from_vars(&vars, "manifest-diff").unwrap();
        assert_eq!(c.function_name, "manifest-diff");
        assert_eq!(c.report_prefix, "out/");
        assert!(c.log_mask_fields.contains(&"email".to_string()));
        assert!(c.log_mask_fields.contains(&"api_key".to_string()));
        assert!(c.log_mask_fields.contains(&"password".to_string()));
    }

    #[test]
    fn empty_string_is_unset() {
        let vars = Vars::from_pairs([("X", "  ")]);
        assert_eq!(vars.get("X"), None);
    }
}
