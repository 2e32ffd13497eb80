//! The narrow port the run is written against (exactly the S3 calls it makes), and its S3
//! adapter. Tests wrap the adapter to inject failures between any two steps.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, MetadataDirective, StorageClass, TaggingDirective,
};
use bytes::Bytes;
use shared::error::aws_error;
use shared::{SuiteError, SuiteResult};
use tokio::io::AsyncWriteExt;

use crate::plan::{tagging_header, uri_encode};

/// What HeadObject says about an object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Head {
    pub size: u64,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub storage_class: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// Everything the final object carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectAttrs {
    pub content_type: String,
    pub content_encoding: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<(String, String)>,
    pub storage_class: Option<String>,
}

pub type Tags = Vec<(String, String)>;

/// One part of a multipart upload: `len` bytes of the local file from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePart {
    pub number: i32,
    pub offset: u64,
    pub len: u64,
}

pub trait ExportStore: Send + Sync {
    /// `Ok(None)` when the key does not exist.
    fn head(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = SuiteResult<Option<Head>>> + Send;

    /// GetObjectTagging; `Ok(None)` when the key does not exist.
    fn tags(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = SuiteResult<Option<Tags>>> + Send;

    /// Streams the object into `dest`; with `if_match`, fails if the object's ETag changed.
    fn download(
        &self,
        bucket: &str,
        key: &str,
        if_match: Option<&str>,
        dest: &Path,
    ) -> impl Future<Output = SuiteResult<u64>> + Send;

    /// One PutObject of a local file.
    fn put_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> impl Future<Output = SuiteResult<()>> + Send;

    fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
    ) -> impl Future<Output = SuiteResult<String>> + Send;

    /// Uploads one part of the file at `path`; returns its ETag.
    fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        path: &Path,
        part: FilePart,
    ) -> impl Future<Output = SuiteResult<String>> + Send;

    fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> impl Future<Output = SuiteResult<()>> + Send;

    fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = SuiteResult<()>> + Send;

    /// Server-side copy of `src_key` (of `size` bytes) to `dst_key` with new attributes.
    fn copy_with_attrs(
        &self,
        bucket: &str,
        src_key: &str,
        dst_key: &str,
        size: u64,
        attrs: &ObjectAttrs,
    ) -> impl Future<Output = SuiteResult<()>> + Send;

    fn delete(&self, bucket: &str, key: &str) -> impl Future<Output = SuiteResult<()>> + Send;

    /// `Ok(None)` when the key does not exist.
    fn get_bytes(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = SuiteResult<Option<Bytes>>> + Send;

    fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> impl Future<Output = SuiteResult<()>> + Send;

    /// Every key under `prefix` (all pages).
    fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = SuiteResult<Vec<String>>> + Send;
}

/// The S3 adapter.
#[derive(Clone, Debug)]
pub struct S3ExportStore {
    client: aws_sdk_s3::Client,
}

impl S3ExportStore {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3ExportStore { client }
    }
}

/// CopyObject's limit; larger objects are copied part by part (UploadPartCopy).
pub const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;
const COPY_PART: u64 = 1024 * 1024 * 1024;

fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

fn is_missing<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    if matches!(code(e), Some("NoSuchKey") | Some("NotFound")) {
        return true;
    }
    // HeadObject has no body, so a 404 may come without a code.
    matches!(e, SdkError::ServiceError(s) if s.raw().status().as_u16() == 404 && code(e) != Some("NoSuchBucket"))
}

fn classify<E, R>(bucket: &str, op: &'static str, e: SdkError<E, R>) -> SuiteError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if code(&e) == Some("NoSuchBucket") {
        SuiteError::Bucket {
            bucket: bucket.to_string(),
            problem: "does not exist (NoSuchBucket); check the bucket name and region".into(),
        }
    } else {
        aws_error("s3", op, e)
    }
}

impl ExportStore for S3ExportStore {
    async fn head(&self, bucket: &str, key: &str) -> SuiteResult<Option<Head>> {
        let out = match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(classify(bucket, "HeadObject", e)),
        };
        Ok(Some(Head {
            size: out.content_length().unwrap_or(0).max(0) as u64,
            etag: out.e_tag().map(str::to_string),
            content_type: out.content_type().map(str::to_string),
            content_encoding: out.content_encoding().map(str::to_string),
            storage_class: out.storage_class().map(|s| s.as_str().to_string()),
            metadata: out
                .metadata()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        }))
    }

    async fn tags(&self, bucket: &str, key: &str) -> SuiteResult<Option<Tags>> {
        match self
            .client
            .get_object_tagging()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(
                o.tag_set()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
            )),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(classify(bucket, "GetObjectTagging", e)),
        }
    }

    async fn download(
        &self,
        bucket: &str,
        key: &str,
        if_match: Option<&str>,
        dest: &Path,
    ) -> SuiteResult<u64> {
        let out = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_if_match(if_match.map(str::to_string))
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if is_missing(&e) => {
                return Err(SuiteError::bad_object(
                    bucket,
                    key,
                    "does not exist (NoSuchKey)",
                ))
            }
            Err(e) if code(&e) == Some("PreconditionFailed") => {
                return Err(SuiteError::bad_object(
                    bucket,
                    key,
                    "changed while being processed (ETag no longer matches)",
                ))
            }
            Err(e) => return Err(classify(bucket, "GetObject", e)),
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

    async fn put_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> SuiteResult<()> {
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| SuiteError::Internal(format!("cannot stream {}: {e}", path.display())))?;
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| classify(bucket, "PutObject", e))?;
        Ok(())
    }

    async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
    ) -> SuiteResult<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| classify(bucket, "CreateMultipartUpload", e))?;
        out.upload_id().map(str::to_string).ok_or_else(|| {
            SuiteError::Internal("CreateMultipartUpload returned no UploadId".into())
        })
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        path: &Path,
        part: FilePart,
    ) -> SuiteResult<String> {
        let FilePart {
            number: part_number,
            offset,
            len,
        } = part;
        let body = ByteStream::read_from()
            .path(path)
            .offset(offset)
            .length(Length::Exact(len))
            .build()
            .await
            .map_err(|e| SuiteError::Internal(format!("cannot stream {}: {e}", path.display())))?;
        let out = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .content_length(len as i64)
            .body(body)
            .send()
            .await
            .map_err(|e| classify(bucket, "UploadPart", e))?;
        out.e_tag()
            .map(str::to_string)
            .ok_or_else(|| SuiteError::Internal("UploadPart returned no ETag".into()))
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> SuiteResult<()> {
        let parts = parts
            .iter()
            .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(e).build())
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(bucket, "CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> SuiteResult<()> {
        self.client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| classify(bucket, "AbortMultipartUpload", e))?;
        Ok(())
    }

    async fn copy_with_attrs(
        &self,
        bucket: &str,
        src_key: &str,
        dst_key: &str,
        size: u64,
        attrs: &ObjectAttrs,
    ) -> SuiteResult<()> {
        let source = format!("{}/{}", bucket, uri_encode(src_key, true));
        let metadata = Some(attrs.metadata.clone().into_iter().collect());
        let storage_class = attrs
            .storage_class
            .as_deref()
            .filter(|c| *c != "STANDARD")
            .map(StorageClass::from);
        let tagging = (!attrs.tags.is_empty()).then(|| tagging_header(&attrs.tags));
        if size <= MAX_SINGLE_COPY {
            self.client
                .copy_object()
                .bucket(bucket)
                .key(dst_key)
                .copy_source(source)
                .metadata_directive(MetadataDirective::Replace)
                .set_metadata(metadata)
                .content_type(&attrs.content_type)
                .set_content_encoding(attrs.content_encoding.clone())
                .tagging_directive(TaggingDirective::Replace)
                .set_tagging(tagging)
                .set_storage_class(storage_class)
                .send()
                .await
                .map_err(|e| classify(bucket, "CopyObject", e))?;
            return Ok(());
        }
        // Above 5 GiB: a multipart upload whose parts are server-side copies.
        let id = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(dst_key)
            .set_metadata(metadata)
            .content_type(&attrs.content_type)
            .set_content_encoding(attrs.content_encoding.clone())
            .set_tagging(tagging)
            .set_storage_class(storage_class)
            .send()
            .await
            .map_err(|e| classify(bucket, "CreateMultipartUpload", e))?
            .upload_id()
            .map(str::to_string)
            .ok_or_else(|| {
                SuiteError::Internal("CreateMultipartUpload returned no UploadId".into())
            })?;
        let result: SuiteResult<()> = async {
            let mut parts = vec![];
            let mut offset = 0u64;
            let mut n = 1i32;
            while offset < size {
                let end = (offset + COPY_PART).min(size) - 1;
                let out = self
                    .client
                    .upload_part_copy()
                    .bucket(bucket)
                    .key(dst_key)
                    .upload_id(&id)
                    .part_number(n)
                    .copy_source(&source)
                    .copy_source_range(format!("bytes={offset}-{end}"))
                    .send()
                    .await
                    .map_err(|e| classify(bucket, "UploadPartCopy", e))?;
                let etag = out
                    .copy_part_result()
                    .and_then(|r| r.e_tag())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        SuiteError::Internal("UploadPartCopy returned no ETag".into())
                    })?;
                parts.push((n, etag));
                offset = end + 1;
                n += 1;
            }
            self.complete_multipart(bucket, dst_key, &id, &parts).await
        }
        .await;
        if result.is_err() {
            if let Err(e) = self.abort_multipart(bucket, dst_key, &id).await {
                tracing::warn!(error = %e, upload_id = %id, "abort of the multipart copy failed");
            }
        }
        result
    }

    async fn delete(&self, bucket: &str, key: &str) -> SuiteResult<()> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(bucket, "DeleteObject", e))?;
        Ok(())
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
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(classify(bucket, "GetObject", e)),
        };
        let data =
            out.body.collect().await.map_err(|e| {
                SuiteError::bad_object(bucket, key, format!("body read failed: {e}"))
            })?;
        Ok(Some(data.into_bytes()))
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
            .map_err(|e| classify(bucket, "PutObject", e))?;
        Ok(())
    }

    async fn list_keys(&self, bucket: &str, prefix: &str) -> SuiteResult<Vec<String>> {
        let mut keys = vec![];
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify(bucket, "ListObjectsV2", e))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match (out.is_truncated(), out.next_continuation_token()) {
                (Some(true), Some(t)) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(keys)
    }
}
