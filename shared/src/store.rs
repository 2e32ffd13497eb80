//! The object-store port the functions' logic is written against, and its S3 adapter.
//! Pure logic takes `&impl ObjectStore`; tests of that logic may use a fake, and integration
//! tests use [`S3Store`] against moto's real S3 wire protocol.

use std::future::Future;
use std::path::Path;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::AsyncWriteExt;

use crate::error::{aws_error, SuiteError, SuiteResult};

/// One object as a listing shows it. Keys are raw (ListObjectsV2 keys are not URL-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
    pub storage_class: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    pub common_prefixes: Vec<String>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ListRequest<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    pub start_after: Option<&'a str>,
    pub continuation_token: Option<&'a str>,
    pub max_keys: Option<i32>,
}

pub trait ObjectStore: Send + Sync {
    fn list_page(
        &self,
        bucket: &str,
        req: ListRequest<'_>,
    ) -> impl Future<Output = SuiteResult<ListPage>> + Send;

    /// `Ok(None)` when the key does not exist; the bucket missing is an error.
    fn get_bytes(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = SuiteResult<Option<Bytes>>> + Send;

    /// Streams an object into a local file (never the whole object in memory); returns its size.
    fn download(
        &self,
        bucket: &str,
        key: &str,
        dest: &Path,
    ) -> impl Future<Output = SuiteResult<u64>> + Send;

    fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> impl Future<Output = SuiteResult<()>> + Send;

    fn put_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        content_type: &str,
        content_encoding: Option<&str>,
    ) -> impl Future<Output = SuiteResult<()>> + Send;

    fn delete(&self, bucket: &str, key: &str) -> impl Future<Output = SuiteResult<()>> + Send;
}

/// The S3 adapter.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Store { client }
    }
}

fn is_no_such_bucket<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(s) if s.err().code() == Some("NoSuchBucket"))
}

fn is_no_such_key<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(s) if matches!(s.err().code(), Some("NoSuchKey") | Some("NotFound")))
}

fn bucket_error(bucket: &str) -> SuiteError {
    SuiteError::Bucket {
        bucket: bucket.to_string(),
        problem: "does not exist (NoSuchBucket); check the bucket name and region".into(),
    }
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

impl ObjectStore for S3Store {
    async fn list_page(&self, bucket: &str, req: ListRequest<'_>) -> SuiteResult<ListPage> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(req.prefix)
            .set_delimiter(req.delimiter.map(str::to_string))
            .set_start_after(req.start_after.map(str::to_string))
            .set_continuation_token(req.continuation_token.map(str::to_string))
            .set_max_keys(req.max_keys)
            .send()
            .await
            .map_err(|e| {
                if is_no_such_bucket(&e) {
                    bucket_error(bucket)
                } else {
                    aws_error("s3", "ListObjectsV2", e)
                }
            })?;
        let objects = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ObjectMeta {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().map(str::to_string),
                    last_modified: o.last_modified().and_then(to_chrono),
                    storage_class: o.storage_class().map(|s| s.as_str().to_string()),
                })
            })
            .collect();
        let common_prefixes = out
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix().map(str::to_string))
            .collect();
        let next_token = if out.is_truncated() == Some(true) {
            out.next_continuation_token().map(str::to_string)
        } else {
            None
        };
        Ok(ListPage {
            objects,
            common_prefixes,
            next_token,
        })
    }

    async fn get_bytes(&self, bucket: &str, key: &str) -> SuiteResult<Option<Bytes>> {
        let out = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if is_no_such_key(&e) => return Ok(None),
            Err(e) if is_no_such_bucket(&e) => return Err(bucket_error(bucket)),
            Err(e) => return Err(aws_error("s3", "GetObject", e)),
        };
        let data =
            out.body.collect().await.map_err(|e| {
                SuiteError::bad_object(bucket, key, format!("body read failed: {e}"))
            })?;
        Ok(Some(data.into_bytes()))
    }

    async fn download(&self, bucket: &str, key: &str, dest: &Path) -> SuiteResult<u64> {
        let out = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if is_no_such_key(&e) => {
                return Err(SuiteError::bad_object(
                    bucket,
                    key,
                    "does not exist (NoSuchKey)",
                ))
            }
            Err(e) if is_no_such_bucket(&e) => return Err(bucket_error(bucket)),
            Err(e) => return Err(aws_error("s3", "GetObject", e)),
        };
        let mut file =
            tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::create(dest).await?);
        let mut body = out.body;
        let mut n = 0u64;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| SuiteError::bad_object(bucket, key, format!("body read failed: {e}")))?
        {
            n += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Ok(n)
    }

    async fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> SuiteResult<()> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| {
                if is_no_such_bucket(&e) {
                    bucket_error(bucket)
                } else {
                    aws_error("s3", "PutObject", e)
                }
            })?;
        Ok(())
    }

    async fn put_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        content_type: &str,
        content_encoding: Option<&str>,
    ) -> SuiteResult<()> {
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| SuiteError::Internal(format!("cannot stream {}: {e}", path.display())))?;
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .set_content_encoding(content_encoding.map(str::to_string))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if is_no_such_bucket(&e) {
                    bucket_error(bucket)
                } else {
                    aws_error("s3", "PutObject", e)
                }
            })?;
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> SuiteResult<()> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| aws_error("s3", "DeleteObject", e))?;
        Ok(())
    }
}
