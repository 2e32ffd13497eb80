//! The narrow ports the drill and the failover rehearsal are written against (exactly the
//! calls they make) and their AWS adapters: RDS, S3 with conditional writes (drill state,
//! reports), SSM Parameter Store (the feature flags), Secrets Manager (database credentials).

use std::future::Future;

use aws_sdk_rds::error::ProvideErrorMetadata;
use aws_sdk_rds::types::Tag;
use aws_smithy_types::DateTime as SmithyTime;
use chrono::{DateTime, Utc};
use shared::error::aws_error;
use shared::state::JsonState;
use shared::store::{ConditionalStore, ObjectStore, S3Store};
use shared::{SuiteError, SuiteResult};

use crate::db::{Credentials, Secret};
use crate::drill::{Endpoint, Mode};

// ---- RDS ----------------------------------------------------------------------------

/// Everything a restore is told explicitly (never RDS's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreSpec {
    pub mode: Mode,
    pub source: String,
    pub instance_id: String,
    pub cluster_id: Option<String>,
    /// `None` = the latest restorable time.
    pub restore_time: Option<DateTime<Utc>>,
    pub subnet_group: String,
    pub security_group_ids: Vec<String>,
    /// DB parameter group (instance mode), DB cluster parameter group (cluster mode).
    pub parameter_group: String,
    /// DB parameter group of the instance created in a restored cluster (cluster mode).
    pub instance_parameter_group: Option<String>,
    pub instance_class: String,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RestoreAck {
    Requested,
    /// An instance with the drill's identifier exists already (a repeated or resumed start).
    AlreadyExists,
    /// RDS refused it for good (source missing, bad time, bad group...): the message says why.
    Rejected(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceView {
    pub status: String,
    pub endpoint: Option<Endpoint>,
    pub tags: Vec<(String, String)>,
    pub replica_source: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteAck {
    Gone,
    Deleting,
}

pub trait Rds: Send + Sync {
    /// The source's LatestRestorableTime (instance or cluster).
    fn latest_restorable_time(
        &self,
        mode: Mode,
        source: &str,
    ) -> impl Future<Output = SuiteResult<Option<DateTime<Utc>>>> + Send;
    fn restore(&self, spec: &RestoreSpec) -> impl Future<Output = SuiteResult<RestoreAck>> + Send;
    /// DescribeDBInstances; `Ok(None)` when the instance does not exist.
    fn describe(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = SuiteResult<Option<InstanceView>>> + Send;
    /// Deletes the instance (and, once it is gone, its cluster) without a final snapshot.
    fn delete_instance(
        &self,
        instance_id: &str,
        cluster_id: Option<&str>,
    ) -> impl Future<Output = SuiteResult<DeleteAck>> + Send;
    fn promote_read_replica(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = SuiteResult<()>> + Send;
    fn failover_cluster(
        &self,
        cluster_id: &str,
        target_instance: Option<&str>,
    ) -> impl Future<Output = SuiteResult<()>> + Send;
}

pub struct AwsRds {
    client: aws_sdk_rds::Client,
}

impl AwsRds {
    pub fn new(client: aws_sdk_rds::Client) -> Self {
        AwsRds { client }
    }
}

fn to_chrono(t: &SmithyTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn to_smithy(t: DateTime<Utc>) -> SmithyTime {
    SmithyTime::from_millis(t.timestamp_millis())
}

fn tags(spec: &RestoreSpec) -> Vec<Tag> {
    spec.tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// RDS error codes that mean "this request will never work": the drill fails with the message.
const REJECTIONS: &[&str] = &[
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
    "DBClusterNotFoundFault",
    "DBSubnetGroupNotFoundFault",
    "DBParameterGroupNotFound",
    "DBClusterParameterGroupNotFound",
    "InvalidRestoreFault",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "PointInTimeRestoreNotEnabled",
    "PointInTimeRestoreNotEnabledFault",
    "InvalidDBInstanceState",
    "InvalidDBClusterStateFault",
    "InvalidSubnet",
    "InvalidVPCNetworkStateFault",
    "DBSubnetGroupDoesNotCoverEnoughAZs",
    "StorageQuotaExceeded",
    "InstanceQuotaExceeded",
    "InsufficientDBInstanceCapacity",
    "KMSKeyNotAccessibleFault",
    "NetworkTypeNotSupported",
];

fn classify_restore<E>(
    op: &'static str,
    e: aws_sdk_rds::error::SdkError<E>,
) -> SuiteResult<RestoreAck>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = e.code().unwrap_or_default().to_string();
    if code == "DBInstanceAlreadyExists" || code == "DBClusterAlreadyExistsFault" {
        return Ok(RestoreAck::AlreadyExists);
    }
    if REJECTIONS.contains(&code.as_str()) {
        return Ok(RestoreAck::Rejected(format!(
            "{code}: {}",
            e.message().unwrap_or("no message")
        )));
    }
    Err(aws_error("rds", op, e))
}

impl Rds for AwsRds {
    async fn latest_restorable_time(
        &self,
        mode: Mode,
        source: &str,
    ) -> SuiteResult<Option<DateTime<Utc>>> {
        match mode {
            Mode::Instance => {
                let out = self
                    .client
                    .describe_db_instances()
                    .db_instance_identifier(source)
                    .send()
                    .await;
                match out {
                    Ok(o) => Ok(o
                        .db_instances()
                        .first()
                        .and_then(|i| i.latest_restorable_time())
                        .and_then(to_chrono)),
                    // The restore call reports a missing source as a rejection.
                    Err(e) if e.code() == Some("DBInstanceNotFound") => Ok(None),
                    Err(e) => Err(aws_error("rds", "DescribeDBInstances", e)),
                }
            }
            Mode::Cluster => {
                let out = self
                    .client
                    .describe_db_clusters()
                    .db_cluster_identifier(source)
                    .send()
                    .await;
                match out {
                    Ok(o) => Ok(o
                        .db_clusters()
                        .first()
                        .and_then(|c| c.latest_restorable_time())
                        .and_then(to_chrono)),
                    Err(e) if e.code() == Some("DBClusterNotFoundFault") => Ok(None),
                    Err(e) => Err(aws_error("rds", "DescribeDBClusters", e)),
                }
            }
        }
    }

    async fn restore(&self, spec: &RestoreSpec) -> SuiteResult<RestoreAck> {
        match spec.mode {
            Mode::Instance => {
                let mut req = self
                    .client
                    .restore_db_instance_to_point_in_time()
                    .source_db_instance_identifier(&spec.source)
                    .target_db_instance_identifier(&spec.instance_id)
                    .db_subnet_group_name(&spec.subnet_group)
                    .db_parameter_group_name(&spec.parameter_group)
                    .db_instance_class(&spec.instance_class)
                    .publicly_accessible(false)
                    .multi_az(false)
                    .deletion_protection(false)
                    .set_tags(Some(tags(spec)));
                for sg in &spec.security_group_ids {
                    req = req.vpc_security_group_ids(sg);
                }
                req = match spec.restore_time {
                    Some(t) => req.restore_time(to_smithy(t)),
                    None => req.use_latest_restorable_time(true),
                };
                match req.send().await {
                    Ok(_) => Ok(RestoreAck::Requested),
                    Err(e) => classify_restore("RestoreDBInstanceToPointInTime", e),
                }
            }
            Mode::Cluster => {
                let cluster_id = spec
                    .cluster_id
                    .clone()
                    .unwrap_or_else(|| spec.instance_id.clone());
                let engine = self
                    .client
                    .describe_db_clusters()
                    .db_cluster_identifier(&spec.source)
                    .send()
                    .await;
                let engine = match engine {
                    Ok(o) => o
                        .db_clusters()
                        .first()
                        .and_then(|c| c.engine())
                        .unwrap_or("aurora-postgresql")
                        .to_string(),
                    Err(e) if e.code() == Some("DBClusterNotFoundFault") => {
                        return Ok(RestoreAck::Rejected(format!(
                            "DBClusterNotFoundFault: source cluster {} not found",
                            spec.source
                        )))
                    }
                    Err(e) => return Err(aws_error("rds", "DescribeDBClusters", e)),
                };
                let mut req = self
                    .client
                    .restore_db_cluster_to_point_in_time()
                    .source_db_cluster_identifier(&spec.source)
                    .db_cluster_identifier(&cluster_id)
                    .db_subnet_group_name(&spec.subnet_group)
                    .db_cluster_parameter_group_name(&spec.parameter_group)
                    .deletion_protection(false)
                    .set_tags(Some(tags(spec)));
                for sg in &spec.security_group_ids {
                    req = req.vpc_security_group_ids(sg);
                }
                req = match spec.restore_time {
                    Some(t) => req.restore_to_time(to_smithy(t)),
                    None => req.use_latest_restorable_time(true),
                };
                match req.send().await {
                    Ok(_) => {}
                    Err(e) => match classify_restore("RestoreDBClusterToPointInTime", e)? {
                        // The cluster is there from an earlier attempt: create the instance.
                        RestoreAck::AlreadyExists | RestoreAck::Requested => {}
                        rejected => return Ok(rejected),
                    },
                }
                // A restored cluster has no instance: the drill adds one to connect to.
                let mut inst = self
                    .client
                    .create_db_instance()
                    .db_instance_identifier(&spec.instance_id)
                    .db_cluster_identifier(&cluster_id)
                    .engine(engine)
                    .db_instance_class(&spec.instance_class)
                    .publicly_accessible(false)
                    .set_tags(Some(tags(spec)));
                if let Some(pg) = &spec.instance_parameter_group {
                    inst = inst.db_parameter_group_name(pg);
                }
                match inst.send().await {
                    Ok(_) => Ok(RestoreAck::Requested),
                    Err(e) => classify_restore("CreateDBInstance", e),
                }
            }
        }
    }

    async fn describe(&self, instance_id: &str) -> SuiteResult<Option<InstanceView>> {
        let out = self
            .client
            .describe_db_instances()
            .db_instance_identifier(instance_id)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e)
                if e.code() == Some("DBInstanceNotFound")
                    || e.code() == Some("DBInstanceNotFoundFault") =>
            {
                return Ok(None)
            }
            Err(e) => return Err(aws_error("rds", "DescribeDBInstances", e)),
        };
        Ok(out.db_instances().first().map(|i| InstanceView {
            status: i.db_instance_status().unwrap_or("unknown").to_string(),
            endpoint: i.endpoint().and_then(|e| {
                Some(Endpoint {
                    host: e.address()?.to_string(),
                    port: u16::try_from(e.port()?).ok()?,
                })
            }),
            tags: i
                .tag_list()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
            replica_source: i
                .read_replica_source_db_instance_identifier()
                .map(str::to_string),
        }))
    }

    async fn delete_instance(
        &self,
        instance_id: &str,
        cluster_id: Option<&str>,
    ) -> SuiteResult<DeleteAck> {
        let out = self
            .client
            .delete_db_instance()
            .db_instance_identifier(instance_id)
            .skip_final_snapshot(true)
            .delete_automated_backups(true)
            .send()
            .await;
        match out {
            Ok(_) => return Ok(DeleteAck::Deleting),
            Err(e)
                if e.code() == Some("DBInstanceNotFound")
                    || e.code() == Some("DBInstanceNotFoundFault") => {}
            // Already being deleted.
            Err(e) if e.code() == Some("InvalidDBInstanceState") => return Ok(DeleteAck::Deleting),
            Err(e) => return Err(aws_error("rds", "DeleteDBInstance", e)),
        }
        let Some(cluster) = cluster_id else {
            return Ok(DeleteAck::Gone);
        };
        let out = self
            .client
            .delete_db_cluster()
            .db_cluster_identifier(cluster)
            .skip_final_snapshot(true)
            .send()
            .await;
        match out {
            Ok(_) => Ok(DeleteAck::Deleting),
            Err(e) if e.code() == Some("DBClusterNotFoundFault") => Ok(DeleteAck::Gone),
            Err(e) if e.code() == Some("InvalidDBClusterStateFault") => Ok(DeleteAck::Deleting),
            Err(e) => Err(aws_error("rds", "DeleteDBCluster", e)),
        }
    }

    async fn promote_read_replica(&self, instance_id: &str) -> SuiteResult<()> {
        let out = self
            .client
            .promote_read_replica()
            .db_instance_identifier(instance_id)
            .backup_retention_period(7)
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) => Err(aws_error("rds", "PromoteReadReplica", e)),
        }
    }

    async fn failover_cluster(&self, cluster_id: &str, target: Option<&str>) -> SuiteResult<()> {
        self.client
            .failover_db_cluster()
            .db_cluster_identifier(cluster_id)
            .set_target_db_instance_identifier(target.map(str::to_string))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("rds", "FailoverDBCluster", e))
    }
}

// ---- S3: drill state (conditional writes) and reports --------------------------------

/// A conditional write lost: another invocation changed (or created) the object first.
pub use shared::store::Conflict;

/// The drill's bucket (state, reports) on the shared S3 port: typed JSON state through
/// [`StateStore::json`] (conditional writes with the read-back rule: a write whose answer was
/// lost after S3 acted is this invocation's own, not another's), and the byte-level calls.
pub trait StateStore: Send + Sync {
    type Objects: ConditionalStore;
    fn objects(&self) -> &Self::Objects;
    fn bucket(&self) -> &str;

    /// Typed state in the bucket (each write stamped with a write token).
    fn json(&self) -> JsonState<'_, Self::Objects> {
        JsonState::new(self.objects(), self.bucket())
    }

    /// The object and its ETag; `Ok(None)` when it does not exist.
    fn load(
        &self,
        key: &str,
    ) -> impl Future<Output = SuiteResult<Option<(Vec<u8>, String)>>> + Send {
        async move {
            Ok(self
                .objects()
                .get_with_etag(self.bucket(), key)
                .await?
                .map(|t| (t.body.to_vec(), t.etag)))
        }
    }

    /// Creates the object only if it does not exist (`If-None-Match: *`, with the read-back:
    /// the body must be unique to the writer); returns the ETag.
    fn create(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = SuiteResult<Result<String, Conflict>>> + Send {
        async move {
            Ok(self
                .objects()
                .create_if_absent(self.bucket(), key, body.into(), content_type)
                .await?
                .map(|w| w.etag)
                .map_err(|_| Conflict))
        }
    }

    /// Replaces the object only if its ETag is still `etag` (`If-Match`, with the read-back);
    /// returns the new ETag.
    fn replace(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        etag: &str,
    ) -> impl Future<Output = SuiteResult<Result<String, Conflict>>> + Send {
        async move {
            Ok(self
                .objects()
                .replace_if_match(self.bucket(), key, body.into(), content_type, etag)
                .await?
                .map(|w| w.etag))
        }
    }

    /// Unconditional write (the Markdown rendering of a report).
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = SuiteResult<()>> + Send {
        async move {
            self.objects()
                .put_bytes(self.bucket(), key, body.into(), content_type)
                .await
        }
    }

    /// Keys under `prefix` (all pages).
    fn list(&self, prefix: &str) -> impl Future<Output = SuiteResult<Vec<String>>> + Send {
        self.objects().list_keys(self.bucket(), prefix)
    }
}

/// The drill's bucket on [`S3Store`].
pub struct S3State {
    objects: S3Store,
    bucket: String,
}

impl S3State {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3State {
            objects: S3Store::new(client).with_bucket_hint("check REPORT_BUCKET / DR_STATE_BUCKET"),
            bucket: bucket.into(),
        }
    }
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

impl StateStore for S3State {
    type Objects = S3Store;
    fn objects(&self) -> &S3Store {
        &self.objects
    }
    fn bucket(&self) -> &str {
        &self.bucket
    }
}

// ---- SSM Parameter Store (the feature flags) and Secrets Manager -----------------------

pub trait Params: Send + Sync {
    /// Value and version; `Ok(None)` when the parameter does not exist.
    fn get(&self, name: &str) -> impl Future<Output = SuiteResult<Option<(Secret, i64)>>> + Send;
    /// Overwrites (or creates) the parameter, keeping its type; returns the new version.
    fn put(&self, name: &str, value: &Secret) -> impl Future<Output = SuiteResult<i64>> + Send;
}

pub struct SsmParams {
    client: aws_sdk_ssm::Client,
}

impl SsmParams {
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        SsmParams { client }
    }
}

impl Params for SsmParams {
    async fn get(&self, name: &str) -> SuiteResult<Option<(Secret, i64)>> {
        use aws_sdk_ssm::error::ProvideErrorMetadata as _;
        let out = self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await;
        match out {
            Ok(o) => Ok(o
                .parameter()
                .map(|p| (Secret::new(p.value().unwrap_or_default()), p.version()))),
            Err(e) if e.code() == Some("ParameterNotFound") => Ok(None),
            Err(e) => Err(aws_error("ssm", "GetParameter", e)),
        }
    }

    async fn put(&self, name: &str, value: &Secret) -> SuiteResult<i64> {
        use aws_sdk_ssm::types::ParameterType;
        // Keep the parameter's type (a DATABASE_URL stays a SecureString).
        let existing = self
            .client
            .get_parameter()
            .name(name)
            .send()
            .await
            .ok()
            .and_then(|o| o.parameter().and_then(|p| p.r#type().cloned()));
        let out = self
            .client
            .put_parameter()
            .name(name)
            .value(value.expose())
            .r#type(existing.unwrap_or(ParameterType::SecureString))
            .overwrite(true)
            .send()
            .await
            .map_err(|e| aws_error("ssm", "PutParameter", e))?;
        Ok(out.version())
    }
}

pub trait SecretSource: Send + Sync {
    /// The `username` and `password` of an RDS-style JSON secret.
    fn credentials(&self, secret_id: &str)
        -> impl Future<Output = SuiteResult<Credentials>> + Send;
}

pub struct AwsSecrets {
    client: aws_sdk_secretsmanager::Client,
}

impl AwsSecrets {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        AwsSecrets { client }
    }
}

impl SecretSource for AwsSecrets {
    async fn credentials(&self, secret_id: &str) -> SuiteResult<Credentials> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| aws_error("secretsmanager", "GetSecretValue", e))?;
        // Errors below name the secret and the field, never the value.
        let text = out.secret_string().ok_or_else(|| {
            SuiteError::Internal(format!(
                "secret {secret_id} has no SecretString (binary secrets are not supported)"
            ))
        })?;
        let v: serde_json::Value = serde_json::from_str(text).map_err(|_| {
            SuiteError::Internal(format!(
                "secret {secret_id} is not JSON {{\"username\": ..., \"password\": ...}}"
            ))
        })?;
        let username = v["username"].as_str().unwrap_or_default().to_string();
        if username.is_empty() {
            return Err(SuiteError::Internal(format!(
                "secret {secret_id} has no \"username\""
            )));
        }
        Ok(Credentials {
            username,
            password: Secret::new(v["password"].as_str().unwrap_or_default()),
        })
    }
}
