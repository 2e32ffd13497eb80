//! The object-store port the functions' logic is written against, and its S3 adapter.
//! Pure logic takes `&impl ObjectStore`; tests of that logic may use a fake, and integration
//! tests use [`S3Store`] against moto's real S3 wire protocol.
//!
//! Two layers:
//!
//! - [`ObjectStore`]: list, read, write, delete;
//! - [`ConditionalStore`]: reads with the ETag and S3's conditional writes (`If-None-Match: *`
//!   to create, `If-Match` to replace), with the read-back rule that tells this writer's own
//!   write, whose answer was lost after S3 acted, from another writer's (see the trait).
//!
//! [`classify`] is the one reading of S3's errors (missing bucket, missing key, a failed
//! precondition, the rest); [`S3Store`] maps them to [`SuiteError`]s.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
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

    /// Every key under `prefix`, all pages followed.
    fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = SuiteResult<Vec<String>>> + Send {
        async move {
            let mut keys = vec![];
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .list_page(
                        bucket,
                        ListRequest {
                            prefix,
                            continuation_token: token.as_deref(),
                            ..Default::default()
                        },
                    )
                    .await?;
                keys.extend(page.objects.into_iter().map(|o| o.key));
                match page.next_token {
                    Some(t) => token = Some(t),
                    None => return Ok(keys),
                }
            }
        }
    }
}

/// An object with the ETag it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    pub body: Bytes,
    pub etag: String,
}

/// A conditional write that took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The object's ETag now: the `If-Match` of the next replace.
    pub etag: String,
    /// The answer to this write was lost after S3 acted (the SDK's retry then met the
    /// precondition) and the read-back found this write's bytes.
    pub reclaimed: bool,
}

/// [`ConditionalStore::create_if_absent`] lost: another writer's object has the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the object exists and holds another writer's bytes")]
pub struct AlreadyExists;

/// [`ConditionalStore::replace_if_match`] lost: the object changed (or was deleted) since it
/// was read, and it does not hold this write's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the object changed since it was read (another writer's change)")]
pub struct Conflict;

/// Reads with the ETag and S3's conditional writes.
///
/// A conditional PutObject whose answer is lost after S3 acted (a connection reset, a
/// timeout) is retried by the SDK, and the retry meets its own object: `412
/// PreconditionFailed` (or `409 ConditionalRequestConflict` while the first attempt is still
/// in flight). Taken at its word, that answer makes a writer believe another writer owns what
/// it wrote itself. So a refused write reads the object back: **if the object holds exactly
/// this write's bytes, the write is this writer's own and took effect** ([`Written`] with
/// `reclaimed`); otherwise it lost ([`AlreadyExists`], [`Conflict`]).
///
/// "Same bytes" means "my write" only if no two writers ever write the same bytes: **callers
/// must put a nonce (a token unique to the writer, or to the write) in every body** they
/// write through these methods. [`crate::state::JsonState`] stamps one into each write.
pub trait ConditionalStore: ObjectStore {
    /// The object and its ETag; `Ok(None)` when the key does not exist.
    fn get_with_etag(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = SuiteResult<Option<Tagged>>> + Send;

    /// Creates the object only if the key is free (`If-None-Match: *`). A refusal is followed
    /// by a read-back: the object holding `body` is this write's (answer lost after S3 acted),
    /// anything else is another writer's ([`AlreadyExists`]).
    fn create_if_absent(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> impl Future<Output = SuiteResult<Result<Written, AlreadyExists>>> + Send;

    /// Replaces the object only if its ETag is still `etag` (`If-Match`). A refusal is
    /// followed by a read-back: the object holding `body` means this replace landed and its
    /// answer was lost (success, with the new ETag); anything else, or no object, is a
    /// [`Conflict`].
    fn replace_if_match(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        etag: &str,
    ) -> impl Future<Output = SuiteResult<Result<Written, Conflict>>> + Send;
}

// ---- S3 errors ----------------------------------------------------------------------------

/// What an S3 error answer means to the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3ErrorKind {
    /// `NoSuchBucket`.
    NoSuchBucket,
    /// `NoSuchKey`, `NotFound` (HeadObject), or a 404 without a code.
    NoSuchKey,
    /// A conditional request refused: `412 PreconditionFailed`, or `409
    /// ConditionalRequestConflict` (another conditional write on the key is in flight).
    Precondition,
    /// Anything else (throttling, 5xx, transport, credentials...): see
    /// [`crate::error::aws_error`].
    Other,
}

/// The one classification of S3 SDK errors.
pub fn classify<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> S3ErrorKind {
    let SdkError::ServiceError(s) = e else {
        return S3ErrorKind::Other;
    };
    let status = s.raw().status().as_u16();
    match (s.err().code(), status) {
        (Some("NoSuchBucket"), _) => S3ErrorKind::NoSuchBucket,
        (Some("NoSuchKey") | Some("NotFound"), _) | (None, 404) => S3ErrorKind::NoSuchKey,
        (Some("PreconditionFailed") | Some("ConditionalRequestConflict"), _)
        | (_, 412)
        | (None, 409) => S3ErrorKind::Precondition,
        _ => S3ErrorKind::Other,
    }
}

/// What the suite says when a bucket does not exist.
const DEFAULT_BUCKET_HINT: &str = "check the bucket name and region";

fn bucket_missing(bucket: &str, hint: &str) -> SuiteError {
    SuiteError::Bucket {
        bucket: bucket.to_string(),
        problem: format!("does not exist (NoSuchBucket); {hint}"),
    }
}

/// An S3 SDK error as a [`SuiteError`]: a missing bucket is [`SuiteError::Bucket`], the rest
/// [`aws_error`] (keeping S3's code and message).
pub fn s3_error<E>(
    bucket: &str,
    operation: &'static str,
    e: SdkError<E, HttpResponse>,
) -> SuiteError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    s3_error_hinted(bucket, operation, e, DEFAULT_BUCKET_HINT)
}

fn s3_error_hinted<E>(
    bucket: &str,
    operation: &'static str,
    e: SdkError<E, HttpResponse>,
    hint: &str,
) -> SuiteError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if classify(&e) == S3ErrorKind::NoSuchBucket {
        bucket_missing(bucket, hint)
    } else {
        aws_error("s3", operation, e)
    }
}

// ---- the read-back rule -------------------------------------------------------------------

/// One conditional PutObject, as the read-back rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    Stored {
        etag: String,
    },
    /// 412/409: the precondition did not hold (or another conditional write is in flight).
    Refused,
    /// `If-Match` on a key that does not exist (404).
    Gone,
}

/// Refused, read back, neither ours nor decided (a create meeting no object, a replace
/// meeting the ETag it expected: another conditional write was in flight): ask again, this
/// many times in all.
const ROUNDS: u32 = 3;

/// The read-back rule. `expected` is `None` for a create, the ETag read for a replace.
/// `Ok(None)`: the write lost to another writer's.
async fn settle<P, PF, R, RF>(
    body: &[u8],
    expected: Option<&str>,
    mut put: P,
    mut read: R,
) -> SuiteResult<Option<Written>>
where
    P: FnMut() -> PF,
    PF: Future<Output = SuiteResult<Attempt>>,
    R: FnMut() -> RF,
    RF: Future<Output = SuiteResult<Option<Tagged>>>,
{
    for round in 0..ROUNDS {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(100 << round)).await;
        }
        match put().await? {
            Attempt::Stored { etag } => {
                return Ok(Some(Written {
                    etag,
                    reclaimed: false,
                }))
            }
            Attempt::Gone => return Ok(None),
            Attempt::Refused => {}
        }
        match (read().await?, expected) {
            // This write's bytes: its answer was lost after S3 acted.
            (Some(t), _) if t.body == body => {
                return Ok(Some(Written {
                    etag: t.etag,
                    reclaimed: true,
                }))
            }
            // A create meeting another writer's object.
            (Some(_), None) => return Ok(None),
            // A replace meeting another writer's change (or a deletion).
            (Some(t), Some(e)) if t.etag != e => return Ok(None),
            (None, Some(_)) => return Ok(None),
            // A create refused with no object there (a 409 whose write has not landed), or a
            // replace refused with the object unchanged: the precondition may hold now.
            (None, None) | (Some(_), Some(_)) => {}
        }
    }
    Err(SuiteError::Aws {
        service: "s3",
        operation: "PutObject",
        message: format!(
            "conditional write refused {ROUNDS} times while the object stayed {}: another \
             conditional write on the key kept it in flight",
            if expected.is_some() {
                "at the ETag read"
            } else {
                "absent"
            }
        ),
    })
}

// ---- the S3 adapter -------------------------------------------------------------------------

/// The S3 adapter.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket_hint: &'static str,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Store {
            client,
            bucket_hint: DEFAULT_BUCKET_HINT,
        }
    }

    /// What a missing bucket's error tells the operator to check (the function's variable:
    /// "set REPORT_BUCKET to an existing bucket"); by default, the bucket name and region.
    pub fn with_bucket_hint(mut self, hint: &'static str) -> Self {
        self.bucket_hint = hint;
        self
    }

    fn error<E>(
        &self,
        bucket: &str,
        operation: &'static str,
        e: SdkError<E, HttpResponse>,
    ) -> SuiteError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        s3_error_hinted(bucket, operation, e, self.bucket_hint)
    }

    /// GetObject, whole body in memory; `Ok(None)` when the key does not exist.
    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> SuiteResult<Option<(Bytes, Option<String>)>> {
        let out = match boxed(self.client.get_object().bucket(bucket).key(key).send()).await {
            Ok(o) => o,
            Err(e) if classify(&e) == S3ErrorKind::NoSuchKey => return Ok(None),
            Err(e) => return Err(self.error(bucket, "GetObject", e)),
        };
        let etag = out.e_tag().map(str::to_string);
        let data =
            out.body.collect().await.map_err(|e| {
                SuiteError::bad_object(bucket, key, format!("body read failed: {e}"))
            })?;
        Ok(Some((data.into_bytes(), etag)))
    }
}

/// The SDK's futures nest deep (its orchestrator), and so do the callers' (runtime, handler,
/// engine, typed state, this adapter, the read-back rule): a function's whole invocation
/// future then passes rustc's layout depth limit. Boxing the SDK's future cuts the nesting at
/// the adapter (the allocation is nothing beside the request).
fn boxed<'a, T>(
    f: impl Future<Output = T> + Send + 'a,
) -> Pin<Box<dyn Future<Output = T> + Send + 'a>> {
    Box::pin(f)
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

impl ObjectStore for S3Store {
    async fn list_page(&self, bucket: &str, req: ListRequest<'_>) -> SuiteResult<ListPage> {
        let send = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(req.prefix)
            .set_delimiter(req.delimiter.map(str::to_string))
            .set_start_after(req.start_after.map(str::to_string))
            .set_continuation_token(req.continuation_token.map(str::to_string))
            .set_max_keys(req.max_keys)
            .send();
        let out = boxed(send)
            .await
            .map_err(|e| self.error(bucket, "ListObjectsV2", e))?;
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
        Ok(self.get_object(bucket, key).await?.map(|(b, _)| b))
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
            Err(e) if classify(&e) == S3ErrorKind::NoSuchKey => {
                return Err(SuiteError::bad_object(
                    bucket,
                    key,
                    "does not exist (NoSuchKey)",
                ))
            }
            Err(e) => return Err(self.error(bucket, "GetObject", e)),
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
        let send = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send();
        boxed(send)
            .await
            .map_err(|e| self.error(bucket, "PutObject", e))?;
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
            .map_err(|e| self.error(bucket, "PutObject", e))?;
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

// After the ObjectStore impl: infra checks (crates/iac-check) take the first PutObject in
// this file for the one every function using `put_bytes` needs.
impl S3Store {
    /// One conditional PutObject: `if_match` `None` is `If-None-Match: *`.
    async fn put_conditional(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        if_match: Option<&str>,
    ) -> SuiteResult<Attempt> {
        let req = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body));
        let req = match if_match {
            None => req.if_none_match("*"),
            Some(etag) => req.if_match(etag),
        };
        match boxed(req.send()).await {
            Ok(o) => Ok(Attempt::Stored {
                etag: o.e_tag().unwrap_or_default().to_string(),
            }),
            Err(e) => match classify(&e) {
                S3ErrorKind::Precondition => Ok(Attempt::Refused),
                S3ErrorKind::NoSuchKey if if_match.is_some() => Ok(Attempt::Gone),
                _ => Err(self.error(bucket, "PutObject", e)),
            },
        }
    }
}

impl ConditionalStore for S3Store {
    async fn get_with_etag(&self, bucket: &str, key: &str) -> SuiteResult<Option<Tagged>> {
        Ok(self
            .get_object(bucket, key)
            .await?
            .map(|(body, etag)| Tagged {
                body,
                etag: etag.unwrap_or_default(),
            }))
    }

    async fn create_if_absent(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> SuiteResult<Result<Written, AlreadyExists>> {
        let written = settle(
            &body,
            None,
            || self.put_conditional(bucket, key, body.clone(), content_type, None),
            || self.get_with_etag(bucket, key),
        )
        .await?;
        if written.as_ref().is_some_and(|w| w.reclaimed) {
            tracing::info!(bucket, key, "conditional create: the answer was lost after S3 acted; the object holds this write's bytes");
        }
        Ok(written.ok_or(AlreadyExists))
    }

    async fn replace_if_match(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        etag: &str,
    ) -> SuiteResult<Result<Written, Conflict>> {
        let written = settle(
            &body,
            Some(etag),
            || self.put_conditional(bucket, key, body.clone(), content_type, Some(etag)),
            || self.get_with_etag(bucket, key),
        )
        .await?;
        if written.as_ref().is_some_and(|w| w.reclaimed) {
            tracing::info!(bucket, key, "conditional replace: the answer was lost after S3 acted; the object holds this write's bytes");
        }
        Ok(written.ok_or(Conflict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::put_object::PutObjectError;
    use aws_smithy_types::body::SdkBody;

    /// A scripted S3: the answers of successive PutObjects and GetObjects.
    struct Script {
        puts: RefCell<VecDeque<Attempt>>,
        reads: RefCell<VecDeque<Option<Tagged>>>,
        put_calls: RefCell<u32>,
    }

    fn script(puts: Vec<Attempt>, reads: Vec<Option<Tagged>>) -> Script {
        Script {
            puts: RefCell::new(puts.into()),
            reads: RefCell::new(reads.into()),
            put_calls: RefCell::new(0),
        }
    }

    impl Script {
        async fn run(&self, body: &[u8], expected: Option<&str>) -> SuiteResult<Option<Written>> {
            settle(
                body,
                expected,
                || {
                    *self.put_calls.borrow_mut() += 1;
                    let a = self
                        .puts
                        .borrow_mut()
                        .pop_front()
                        .expect("a PutObject too many");
                    async move { Ok(a) }
                },
                || {
                    let r = self
                        .reads
                        .borrow_mut()
                        .pop_front()
                        .expect("a GetObject too many");
                    async move { Ok(r) }
                },
            )
            .await
        }
    }

    fn tagged(body: &[u8], etag: &str) -> Option<Tagged> {
        Some(Tagged {
            body: Bytes::copy_from_slice(body),
            etag: etag.into(),
        })
    }

    fn written(etag: &str, reclaimed: bool) -> Option<Written> {
        Some(Written {
            etag: etag.into(),
            reclaimed,
        })
    }

    #[tokio::test]
    async fn a_stored_write_needs_no_read_back() {
        let s = script(vec![Attempt::Stored { etag: "e1".into() }], vec![]);
        assert_eq!(s.run(b"mine", None).await.unwrap(), written("e1", false));
    }

    #[tokio::test]
    async fn a_refused_create_that_finds_its_own_bytes_is_its_own() {
        // The first attempt's answer was lost after S3 stored it; the SDK's retry got 412.
        let s = script(vec![Attempt::Refused], vec![tagged(b"mine", "e1")]);
        assert_eq!(s.run(b"mine", None).await.unwrap(), written("e1", true));
    }

    #[tokio::test]
    async fn a_refused_create_that_finds_other_bytes_lost() {
        let s = script(vec![Attempt::Refused], vec![tagged(b"theirs", "e1")]);
        assert_eq!(s.run(b"mine", None).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_refused_create_that_finds_nothing_asks_again() {
        // 409: another conditional write in flight, not landed yet; it never lands.
        let s = script(
            vec![Attempt::Refused, Attempt::Stored { etag: "e2".into() }],
            vec![None],
        );
        assert_eq!(s.run(b"mine", None).await.unwrap(), written("e2", false));
        assert_eq!(*s.put_calls.borrow(), 2);
    }

    #[tokio::test]
    async fn a_create_refused_with_nothing_there_every_time_is_a_retryable_error() {
        let s = script(vec![Attempt::Refused; 3], vec![None, None, None]);
        let e = s.run(b"mine", None).await.unwrap_err();
        assert!(e.retryable(), "{e}");
        assert_eq!(*s.put_calls.borrow(), ROUNDS);
    }

    #[tokio::test]
    async fn a_refused_replace_that_finds_its_own_bytes_landed() {
        let s = script(vec![Attempt::Refused], vec![tagged(b"mine v2", "e2")]);
        assert_eq!(
            s.run(b"mine v2", Some("e1")).await.unwrap(),
            written("e2", true)
        );
    }

    #[tokio::test]
    async fn a_refused_replace_that_finds_another_change_lost() {
        let s = script(vec![Attempt::Refused], vec![tagged(b"theirs v2", "e9")]);
        assert_eq!(s.run(b"mine v2", Some("e1")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_replace_of_a_deleted_object_lost() {
        let s = script(vec![Attempt::Gone], vec![]);
        assert_eq!(s.run(b"mine v2", Some("e1")).await.unwrap(), None);
        let s = script(vec![Attempt::Refused], vec![None]);
        assert_eq!(s.run(b"mine v2", Some("e1")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_replace_refused_while_the_object_is_unchanged_asks_again() {
        let s = script(
            vec![Attempt::Refused, Attempt::Stored { etag: "e2".into() }],
            vec![tagged(b"v1", "e1")],
        );
        assert_eq!(
            s.run(b"mine v2", Some("e1")).await.unwrap(),
            written("e2", false)
        );
    }

    fn service_error(code: Option<&str>, status: u16) -> SdkError<PutObjectError, HttpResponse> {
        let mut meta = ErrorMetadata::builder();
        if let Some(c) = code {
            meta = meta.code(c);
        }
        let raw = HttpResponse::new(status.try_into().expect("status"), SdkBody::empty());
        SdkError::service_error(PutObjectError::generic(meta.build()), raw)
    }

    #[test]
    fn s3_errors_are_classified_once() {
        use S3ErrorKind::*;
        for (code, status, kind) in [
            (Some("NoSuchBucket"), 404, NoSuchBucket),
            (Some("NoSuchKey"), 404, NoSuchKey),
            (Some("NotFound"), 404, NoSuchKey),
            (None, 404, NoSuchKey),
            (Some("PreconditionFailed"), 412, Precondition),
            (None, 412, Precondition),
            (Some("ConditionalRequestConflict"), 409, Precondition),
            (None, 409, Precondition),
            (Some("OperationAborted"), 409, Other),
            (Some("SlowDown"), 503, Other),
            (Some("AccessDenied"), 403, Other),
        ] {
            assert_eq!(
                classify(&service_error(code, status)),
                kind,
                "{code:?} {status}"
            );
        }
        let e = s3_error("b", "PutObject", service_error(Some("NoSuchBucket"), 404));
        assert_eq!(e.class(), "BucketError");
        assert!(e.to_string().contains("check the bucket name"), "{e}");
        let e = s3_error("b", "PutObject", service_error(Some("SlowDown"), 503));
        assert!(e.retryable(), "{e}");
    }
}
