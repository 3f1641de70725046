//! The feeds bucket: a feed object read as a stream, and a report written as
//! one (multipart, one 5 MiB part at a time), so neither is ever whole in
//! memory or in `/tmp`.

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use std::collections::HashMap;

/// S3's smallest part but the last.
pub const PART: usize = 5 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The object version is gone or was replaced (`If-Match` failed): a
    /// newer object's event follows.
    #[error("the object is gone or was replaced")]
    Gone,
    #[error("S3 {op} failed: {message}")]
    S3 { op: &'static str, message: String },
}

fn s3_err<E: std::error::Error + 'static, R: std::fmt::Debug>(
    op: &'static str,
) -> impl Fn(aws_sdk_s3::error::SdkError<E, R>) -> ObjectError {
    move |e| ObjectError::S3 {
        op,
        message: DisplayErrorContext(e).to_string(),
    }
}

/// An object opened for reading.
pub struct Opened {
    pub length: u64,
    /// User metadata, names lower-cased without `x-amz-meta-`.
    pub metadata: HashMap<String, String>,
    pub body: ByteStream,
}

#[derive(Clone, Debug)]
pub struct Objects {
    client: aws_sdk_s3::Client,
}

impl Objects {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }

    /// Opens exactly the version the notification named: by version id when
    /// the bucket has versions, else only while its ETag still matches.
    pub async fn open(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
        version_id: Option<&str>,
    ) -> Result<Opened, ObjectError> {
        let mut request = self.client.get_object().bucket(bucket).key(key);
        request = match version_id {
            Some(v) => request.version_id(v),
            None => request.if_match(quoted(etag)),
        };
        match request.send().await {
            Ok(out) => Ok(Opened {
                length: out
                    .content_length
                    .and_then(|l| u64::try_from(l).ok())
                    .unwrap_or(0),
                metadata: out
                    .metadata
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect(),
                body: out.body,
            }),
            Err(e) => {
                let gone = e
                    .raw_response()
                    .is_some_and(|r| matches!(r.status().as_u16(), 404 | 412))
                    || e.as_service_error().is_some_and(|se| se.is_no_such_key());
                if gone {
                    Err(ObjectError::Gone)
                } else {
                    Err(s3_err("GetObject")(e))
                }
            }
        }
    }

    /// The first `bytes` of an object (a ranged GET), `None` if it is not there.
    pub async fn head_of(
        &self,
        bucket: &str,
        key: &str,
        bytes: u64,
    ) -> Result<Option<Vec<u8>>, ObjectError> {
        let result = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes=0-{}", bytes.saturating_sub(1)))
            .send()
            .await;
        match result {
            Ok(out) => {
                let data = out.body.collect().await.map_err(|e| ObjectError::S3 {
                    op: "GetObject",
                    message: e.to_string(),
                })?;
                Ok(Some(data.to_vec()))
            }
            Err(e)
                if e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
                    || e.as_service_error().is_some_and(|se| se.is_no_such_key()) =>
            {
                Ok(None)
            }
            // without s3:ListBucket, S3 answers a missing key with 403: a
            // report expired by the bucket's lifecycle is such a key
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
                tracing::warn!(bucket, key, "object not readable (403): taken as absent");
                Ok(None)
            }
            Err(e) => Err(s3_err("GetObject")(e)),
        }
    }

    /// A URL that puts one object at `key`, valid for `expires_in`: the
    /// Content-Type and the `metadata` are signed, so the upload must send
    /// exactly the headers returned with it.
    pub async fn presigned_put(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
        metadata: &[(&str, String)],
        expires_in: std::time::Duration,
    ) -> Result<Presigned, ObjectError> {
        let config =
            aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in).map_err(|e| {
                ObjectError::S3 {
                    op: "PutObject presigning",
                    message: e.to_string(),
                }
            })?;
        let mut request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type);
        for (name, value) in metadata {
            request = request.metadata(*name, value);
        }
        let signed = request
            .presigned(config)
            .await
            .map_err(s3_err("PutObject presigning"))?;
        Ok(Presigned {
            url: signed.uri().to_owned(),
            headers: signed
                .headers()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        })
    }

    /// Starts the report at `key`; nothing is visible until it is finished.
    pub fn report(&self, bucket: &str, key: &str) -> Writer {
        self.writer(bucket, key, "application/json", &[])
    }

    /// Starts an object at `key` with its Content-Type and user metadata,
    /// written as a stream; nothing is visible until it is finished.
    pub fn writer(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
        metadata: &[(&str, String)],
    ) -> Writer {
        Writer {
            client: self.client.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            content_type: content_type.to_owned(),
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            buf: Vec::new(),
            written: 0,
            upload: None,
        }
    }
}

/// A presigned request: its URL and the headers that were signed with it.
#[derive(Debug, Clone)]
pub struct Presigned {
    pub url: String,
    pub headers: std::collections::BTreeMap<String, String>,
}

/// S3 notifications carry the ETag without its quotes; `If-Match` wants them.
fn quoted(etag: &str) -> String {
    if etag.starts_with('"') {
        etag.to_owned()
    } else {
        format!("\"{etag}\"")
    }
}

/// An object written as a stream: bytes are buffered up to one part, then
/// uploaded; a small object is one PutObject.
pub struct Writer {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    content_type: String,
    metadata: HashMap<String, String>,
    buf: Vec<u8>,
    written: u64,
    upload: Option<(String, Vec<CompletedPart>)>,
}

impl Writer {
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), ObjectError> {
        self.written += bytes.len() as u64;
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= PART {
            self.flush_part().await?;
        }
        Ok(())
    }

    async fn flush_part(&mut self) -> Result<(), ObjectError> {
        if self.upload.is_none() {
            let out = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type(&self.content_type)
                .set_metadata(Some(self.metadata.clone()).filter(|m| !m.is_empty()))
                .send()
                .await
                .map_err(s3_err("CreateMultipartUpload"))?;
            let id = out.upload_id.ok_or_else(|| ObjectError::S3 {
                op: "CreateMultipartUpload",
                message: "no upload id".into(),
            })?;
            self.upload = Some((id, Vec::new()));
        }
        let Some((id, parts)) = self.upload.as_mut() else {
            return Ok(());
        };
        let number = i32::try_from(parts.len() + 1).unwrap_or(i32::MAX);
        let body = std::mem::take(&mut self.buf);
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(id.as_str())
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(s3_err("UploadPart"))?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .build(),
        );
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Makes the object visible; if that fails, drops what was uploaded.
    pub async fn finish(self) -> Result<(), ObjectError> {
        let client = self.client.clone();
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        // a multipart upload starts in `write`; `complete` starts none
        let id = self.upload.as_ref().map(|(id, _)| id.clone());
        let result = self.complete().await;
        if let (Err(_), Some(id)) = (&result, id) {
            let _ = client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(id)
                .send()
                .await;
        }
        result
    }

    async fn complete(mut self) -> Result<(), ObjectError> {
        match self.upload.take() {
            None => {
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .content_type(&self.content_type)
                    .set_metadata(Some(self.metadata.clone()).filter(|m| !m.is_empty()))
                    .body(ByteStream::from(std::mem::take(&mut self.buf)))
                    .send()
                    .await
                    .map_err(s3_err("PutObject"))?;
            }
            Some(upload) => {
                self.upload = Some(upload);
                if !self.buf.is_empty() {
                    self.flush_part().await?;
                }
                let Some((id, parts)) = self.upload.take() else {
                    return Ok(());
                };
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .upload_id(id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(s3_err("CompleteMultipartUpload"))?;
            }
        }
        Ok(())
    }

    /// Drops what was uploaded (the bucket's lifecycle rule aborts stalled
    /// uploads after a day if this cannot run).
    pub async fn abandon(mut self) {
        if let Some((id, _)) = self.upload.take() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(id)
                .send()
                .await;
        }
    }
}
