//! [`S3Storage`]: the [`Storage`] port on S3-compatible object storage (AWS S3, MinIO, R2, ...),
//! built on fusio's S3 client, usable from any runtime.
//!
//! What this module adds to [`FusioStorage`], which does the S3 calls:
//!
//! - **Any runtime.** fusio's S3 client is reqwest, which needs a tokio reactor. Every request
//!   therefore runs on a small tokio runtime the storage owns (two threads, named
//!   `damselfly-s3`), and the caller awaits its result from whatever executor it is on — tokio,
//!   smol or an executor of its own. The hop costs microseconds; a request costs milliseconds.
//! - **Retries.** A request that fails transiently (a 5xx, 408 or 429 answer, a connection or
//!   body error, or no answer within [`S3Spec::request_timeout`]) is retried with exponential
//!   backoff and jitter, up to [`S3Spec::max_attempts`] attempts. Other answers (403, 400, ...)
//!   fail at once.
//! - **Conditional puts.** `put_if_absent` is a PUT with `If-None-Match: *`. 412 (and the 409
//!   or 404 some stores answer to a concurrent conditional write) is a lost race:
//!   [`PutOutcome::AlreadyExists`]. A retried put that finds the object taken may have lost to
//!   its own earlier attempt, whose answer was lost; the storage does not guess — callers that
//!   can recognise their own bytes read the object back (the manifest and the write-ahead log
//!   do).
//! - **Secrets stay secret.** Credentials never appear in `Debug` output, logs or errors: error
//!   messages from the store are scrubbed of the key id, the secret and the session token.
//! - **Request counts.** [`S3Storage::requests`] counts the HTTP requests made, by method.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fusio::remotes::aws::AwsCredential;
use fusio::remotes::aws::fs::AmazonS3Builder;
use fusio::remotes::http::HttpError;

use super::common::durable_append_unsupported;
use super::{
    Appender, Durability, FileInfo, FusioStorage, PutOutcome, Storage, StorageError,
    StorageErrorKind,
};
use crate::runtime::BoxFuture;

/// Where a database lives in S3-compatible object storage, and how to reach it.
///
/// ```
/// use damselfly_runtimes::storage::{S3Credentials, S3Spec};
///
/// // AWS S3; credentials, region and endpoint from the standard AWS_* variables when not given.
/// let aws = S3Spec::new("my-bucket").prefix("tables/events").region("eu-west-1");
/// // A local MinIO (or any S3-compatible server) over plain HTTP.
/// let minio = S3Spec::new("dev")
///     .prefix("events")
///     .endpoint("http://127.0.0.1:9000")
///     .allow_http(true)
///     .credentials(S3Credentials::new("minioadmin", "minioadmin"));
/// ```
#[derive(Clone)]
pub struct S3Spec {
    bucket: String,
    prefix: String,
    region: Option<String>,
    endpoint: Option<String>,
    allow_http: bool,
    credentials: Option<S3Credentials>,
    request_timeout: Duration,
    max_attempts: u32,
    backoff: Duration,
}

/// An access key for S3: key id, secret and optional session token. Its `Debug` output shows
/// none of them.
#[derive(Clone)]
pub struct S3Credentials {
    key_id: String,
    secret_key: String,
    session_token: Option<String>,
}

impl S3Credentials {
    /// A long-lived access key.
    pub fn new(key_id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            key_id: key_id.into(),
            secret_key: secret_key.into(),
            session_token: None,
        }
    }

    /// Temporary credentials with their session token.
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and (if set) `AWS_SESSION_TOKEN`, or `None`
    /// when either of the first two is missing.
    pub fn from_env() -> Option<Self> {
        let key_id = env("AWS_ACCESS_KEY_ID")?;
        let secret_key = env("AWS_SECRET_ACCESS_KEY")?;
        Some(Self {
            key_id,
            secret_key,
            session_token: env("AWS_SESSION_TOKEN"),
        })
    }

    /// Replaces every secret in `text` with `***`.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.replace(&self.secret_key, "***");
        if !self.key_id.is_empty() {
            text = text.replace(&self.key_id, "***");
        }
        if let Some(token) = self
            .session_token
            .as_deref()
            .filter(|token| !token.is_empty())
        {
            text = text.replace(token, "***");
        }
        text
    }
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("S3Credentials(redacted)")
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

impl fmt::Debug for S3Spec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("S3Spec")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("allow_http", &self.allow_http)
            .field("credentials", &self.credentials)
            .field("request_timeout", &self.request_timeout)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl S3Spec {
    /// The bucket `bucket`, with the database at its root until [`S3Spec::prefix`] says
    /// otherwise.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: String::new(),
            region: None,
            endpoint: None,
            allow_http: false,
            credentials: None,
            request_timeout: Duration::from_secs(30),
            max_attempts: 8,
            backoff: Duration::from_millis(100),
        }
    }

    /// The key prefix (a "folder") the database's objects are written under.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The region (default: `AWS_REGION`, then `AWS_DEFAULT_REGION`, then `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The endpoint of an S3-compatible server, such as `https://<account>.r2.cloudflarestorage.com`
    /// or `http://127.0.0.1:9000`; requests then use path-style URLs. Default:
    /// `AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`, then AWS S3 itself.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Allows an `http://` endpoint (default `false`: plain HTTP sends data and signatures in
    /// the clear, so it is for servers on the local machine or network only).
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// The access key (default: [`S3Credentials::from_env`]).
    pub fn credentials(mut self, credentials: S3Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// How long one request may take before it is abandoned and retried (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How many times a request that fails transiently is tried in all (default 8), and the
    /// backoff before the first retry (default 100 ms; it doubles per retry, up to 5 s, with
    /// random jitter).
    pub fn retries(mut self, max_attempts: u32, backoff: Duration) -> Self {
        self.max_attempts = max_attempts;
        self.backoff = backoff;
        self
    }

    /// The bucket.
    pub fn bucket_name(&self) -> &str {
        &self.bucket
    }

    /// The key prefix, without leading or trailing `/`.
    pub fn key_prefix(&self) -> &str {
        self.prefix.trim_matches('/')
    }
}

/// What is wrong with an [`S3Spec`].
#[derive(Debug, thiserror::Error)]
#[error("invalid S3 configuration: {0}")]
pub struct S3SpecError(String);

/// HTTP requests an [`S3Storage`] made, by kind (retries included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Requests {
    /// GETs (whole objects and ranges).
    pub get: u64,
    /// PUTs (conditional or not).
    pub put: u64,
    /// LIST requests (ListObjectsV2 pages; also how existence and sizes are checked).
    pub list: u64,
    /// DELETEs.
    pub delete: u64,
}

impl S3Requests {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.get + self.put + self.list + self.delete
    }
}

#[derive(Debug, Default)]
struct Counters {
    get: AtomicU64,
    put: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
}

/// Files in an S3-compatible bucket under a key prefix. See the module docs for what it
/// promises; cheap to clone (clones share the connection pool and the request counts).
#[derive(Clone)]
pub struct S3Storage {
    shared: Arc<Shared>,
    io: Arc<IoRuntime>,
}

struct Shared {
    objects: FusioStorage,
    credentials: S3Credentials,
    location: String,
    request_timeout: Duration,
    max_attempts: u32,
    backoff: Duration,
    counters: Counters,
}

/// The runtime the requests run on, shut down in the background when the last clone of the
/// storage is dropped. Only the storage's handles hold it — never a request task, so it is never
/// dropped on one of its own threads.
struct IoRuntime(Option<tokio::runtime::Runtime>);

impl Drop for IoRuntime {
    fn drop(&mut self) {
        // Dropping a tokio runtime blocks; the last handle may be dropped on an async thread.
        if let Some(io) = self.0.take() {
            io.shutdown_background();
        }
    }
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("S3Storage")
            .field("location", &self.shared.location)
            .finish_non_exhaustive()
    }
}

impl S3Storage {
    /// Storage as `spec` describes it. Checks the configuration (bucket, endpoint, credentials)
    /// and starts the request runtime; it sends no request.
    pub fn connect(spec: S3Spec) -> Result<Self, S3SpecError> {
        let invalid = |why: String| Err(S3SpecError(why));
        if spec.bucket.is_empty() || spec.bucket.contains('/') {
            return invalid(format!(
                "the bucket name {:?} is not valid: give the bucket alone, and the folder with \
                 S3Spec::prefix",
                spec.bucket
            ));
        }
        if spec.max_attempts == 0 || spec.request_timeout.is_zero() {
            return invalid("max_attempts and request_timeout must be positive".to_owned());
        }
        let endpoint = spec
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        if let Some(endpoint) = &endpoint {
            match endpoint.split_once("://") {
                Some(("https", rest)) if !rest.is_empty() => {}
                Some(("http", rest)) if !rest.is_empty() && spec.allow_http => {}
                Some(("http", _)) => {
                    return invalid(format!(
                        "the endpoint {endpoint} uses plain HTTP, which sends data in the clear; \
                         use https, or S3Spec::allow_http(true) for a server on this machine or \
                         network"
                    ));
                }
                _ => {
                    return invalid(format!(
                        "the endpoint {endpoint:?} is not an http:// or https:// URL"
                    ));
                }
            }
        }
        let Some(credentials) = spec.credentials.clone().or_else(S3Credentials::from_env) else {
            return invalid(
                "no credentials: give them with S3Spec::credentials, or set AWS_ACCESS_KEY_ID \
                 and AWS_SECRET_ACCESS_KEY"
                    .to_owned(),
            );
        };
        let region = spec
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("damselfly-s3")
            .enable_all()
            .build()
            .map_err(|error| S3SpecError(format!("could not start the S3 I/O threads: {error}")))?;
        // Made in the request runtime's context, in case the HTTP client looks for one.
        let s3 = {
            let _context = io.enter();
            let mut builder = AmazonS3Builder::new(spec.bucket.clone())
                .region(region.clone())
                .credential(AwsCredential {
                    key_id: credentials.key_id.clone(),
                    secret_key: credentials.secret_key.clone(),
                    token: credentials.session_token.clone(),
                });
            if let Some(endpoint) = &endpoint {
                builder = builder.endpoint(endpoint.clone());
            }
            builder.build()
        };
        let prefix = spec.key_prefix().to_owned();
        let location = match &endpoint {
            Some(endpoint) => format!("s3://{}/{prefix} at {endpoint}", spec.bucket),
            None => format!("s3://{}/{prefix} ({region})", spec.bucket),
        };
        Ok(Self {
            shared: Arc::new(Shared {
                objects: FusioStorage::new(Arc::new(s3), prefix),
                credentials,
                location,
                request_timeout: spec.request_timeout,
                max_attempts: spec.max_attempts,
                backoff: spec.backoff,
                counters: Counters::default(),
            }),
            io: Arc::new(IoRuntime(Some(io))),
        })
    }

    /// The HTTP requests made so far, by kind.
    pub fn requests(&self) -> S3Requests {
        let counters = &self.shared.counters;
        S3Requests {
            get: counters.get.load(Ordering::Relaxed),
            put: counters.put.load(Ordering::Relaxed),
            list: counters.list.load(Ordering::Relaxed),
            delete: counters.delete.load(Ordering::Relaxed),
        }
    }

    /// Runs `call` on the request runtime, retrying transient failures; `requests` says which
    /// requests one attempt makes (a failed read also lists, to tell "not found" apart).
    fn run<'a, T, F, Fut>(
        &'a self,
        operation: &'static str,
        path: &'a str,
        requests: &'static [Request],
        call: F,
    ) -> BoxFuture<'a, Result<T, StorageError>>
    where
        T: Send + 'static,
        F: Fn(FusioStorage, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, StorageError>> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let (path, task_path) = (path.to_owned(), path.to_owned());
        let Some(io) = self.io.0.as_ref() else {
            unreachable!("the request runtime lives as long as the storage");
        };
        let task = io.spawn(async move {
            let mut attempt = 1;
            loop {
                shared.count(requests);
                let call = call(shared.objects.clone(), path.clone());
                let outcome = tokio::time::timeout(shared.request_timeout, call).await;
                let error = match outcome.map(|result| result.map_err(reclassified)) {
                    Ok(Ok(value)) => return Ok(value),
                    Ok(Err(error)) if !is_transient(&error) => return Err(shared.scrubbed(error)),
                    Ok(Err(error)) => shared.scrubbed(error),
                    Err(_) => StorageError::new(
                        StorageErrorKind::Io,
                        operation,
                        path.as_str(),
                        format!("no answer within {:?}", shared.request_timeout),
                    ),
                };
                if attempt >= shared.max_attempts {
                    return Err(error);
                }
                tracing::debug!(operation, path, attempt, %error, "S3 request failed; retrying");
                tokio::time::sleep(shared.backoff_before(attempt)).await;
                attempt += 1;
            }
        });
        Box::pin(async move {
            task.await.map_err(|error| {
                StorageError::new(
                    StorageErrorKind::Io,
                    operation,
                    task_path,
                    error.to_string(),
                )
            })?
        })
    }
}

/// The HTTP requests one call makes.
#[derive(Debug, Clone, Copy)]
enum Request {
    Get,
    Put,
    List,
    Delete,
}

impl Shared {
    fn count(&self, requests: &[Request]) {
        for request in requests {
            let counter = match request {
                Request::Get => &self.counters.get,
                Request::Put => &self.counters.put,
                Request::List => &self.counters.list,
                Request::Delete => &self.counters.delete,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The error with every credential removed from its message (the cause is kept as text).
    fn scrubbed(&self, error: StorageError) -> StorageError {
        let message = self.credentials.scrub(&error.source.to_string());
        StorageError::new(error.kind, error.operation, error.path, message)
    }

    /// Exponential backoff with full jitter: a random delay up to `backoff * 2^(attempt-1)`,
    /// capped at 5 s, and at least a tenth of it.
    fn backoff_before(&self, attempt: u32) -> Duration {
        let ceiling = self
            .backoff
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(Duration::from_secs(5));
        let floor = ceiling / 10;
        floor + (ceiling - floor).mul_f64(fastrand::f64())
    }
}

/// Whether a failed request may succeed if tried again: no answer (connection, timeout, a cut
/// body), or an answer that says so (5xx, 408 Request Timeout, 429 Too Many Requests).
fn is_transient(error: &StorageError) -> bool {
    if error.kind != StorageErrorKind::Io {
        return false;
    }
    match http_failure(error) {
        Some(HttpFailure::Status(status)) => status >= 500 || status == 408 || status == 429,
        Some(HttpFailure::Transport) => true,
        None => false,
    }
}

enum HttpFailure {
    Status(u16),
    Transport,
}

/// `error` with the kind its HTTP failure says. A 404 is a missing object (fusio leaves it an
/// I/O error when the listing it makes to be sure fails too); fusio reports some failures of a
/// request (a listing's connection error, for one) as path errors, which are I/O errors all the
/// same.
fn reclassified(mut error: StorageError) -> StorageError {
    match http_failure(&error) {
        Some(HttpFailure::Status(404)) if error.kind == StorageErrorKind::Io => {
            error.kind = StorageErrorKind::NotFound;
        }
        Some(_) if error.kind == StorageErrorKind::InvalidPath => {
            error.kind = StorageErrorKind::Io;
        }
        _ => {}
    }
    error
}

/// What the HTTP layer said about a failed call, when it was the HTTP layer that failed.
fn http_failure(error: &StorageError) -> Option<HttpFailure> {
    let remote = match error.source.downcast_ref::<fusio::Error>()? {
        fusio::Error::Remote(remote) | fusio::Error::Other(remote) | fusio::Error::Path(remote) => {
            remote
        }
        _ => return None,
    };
    let http = match remote.downcast_ref::<fusio::remotes::aws::S3Error>() {
        Some(fusio::remotes::aws::S3Error::HttpError(http)) => http,
        Some(_) => return None,
        None => remote.downcast_ref::<HttpError>()?,
    };
    Some(match http {
        HttpError::HttpNotSuccess { status, .. } => HttpFailure::Status(status.as_u16()),
        _ => HttpFailure::Transport,
    })
}

impl Storage for S3Storage {
    fn location(&self) -> String {
        self.shared.location.clone()
    }

    fn supports_durable_append(&self) -> bool {
        false
    }

    fn create<'a>(
        &'a self,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Appender>, StorageError>> {
        Box::pin(async move {
            match self.size(path).await {
                Ok(_) => Err(StorageError::new(
                    StorageErrorKind::AlreadyExists,
                    "create",
                    path,
                    "an object already exists at this key",
                )),
                Err(error) if error.kind == StorageErrorKind::NotFound => {
                    let appender = S3Appender {
                        storage: self.clone(),
                        path: path.to_owned(),
                        buffer: Vec::new(),
                    };
                    Ok(Box::new(appender) as Box<dyn Appender>)
                }
                Err(error) => Err(error),
            }
        })
    }

    fn put<'a>(&'a self, path: &'a str, data: Bytes) -> BoxFuture<'a, Result<(), StorageError>> {
        self.run("put", path, &[Request::Put], move |objects, path| {
            let data = data.clone();
            async move { objects.put(&path, data).await }
        })
    }

    fn put_if_absent<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<PutOutcome, StorageError>> {
        self.run(
            "put_if_absent",
            path,
            &[Request::Put],
            move |objects, path| {
                let data = data.clone();
                async move {
                    match objects.put_if_absent(&path, data).await {
                        // 409 (a concurrent conditional write) and 404 are how some stores
                        // answer a lost race; the callers read back what won.
                        Err(error)
                            if matches!(
                                http_failure(&error),
                                Some(HttpFailure::Status(409 | 404))
                            ) =>
                        {
                            Ok(PutOutcome::AlreadyExists)
                        }
                        outcome => outcome,
                    }
                }
            },
        )
    }

    fn read<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        self.run("read", path, &[Request::Get], |objects, path| async move {
            objects.read(&path).await
        })
    }

    fn read_range<'a>(
        &'a self,
        path: &'a str,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        self.run("read_range", path, &[Request::Get], move |objects, path| {
            let range = range.clone();
            async move { objects.read_range(&path, range).await }
        })
    }

    fn size<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        self.run("size", path, &[Request::List], |objects, path| async move {
            objects.size(&path).await
        })
    }

    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<FileInfo>, StorageError>> {
        self.run("list", dir, &[Request::List], |objects, dir| async move {
            objects.list(&dir).await
        })
    }

    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        let requests = &[Request::List, Request::Delete];
        self.run("delete", path, requests, |objects, path| async move {
            objects.delete(&path).await
        })
    }

    fn sync<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        self.run("sync", path, &[Request::List], |objects, path| async move {
            objects.sync(&path).await
        })
    }
}

/// A file written from start to end: the bytes are kept in memory and stored as one object,
/// with put-if-absent, when it is closed (an object store has no partial objects).
struct S3Appender {
    storage: S3Storage,
    path: String,
    buffer: Vec<u8>,
}

impl fmt::Debug for S3Appender {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("S3Appender")
            .field("path", &self.path)
            .field("len", &self.buffer.len())
            .finish()
    }
}

impl Appender for S3Appender {
    fn append(
        &mut self,
        data: Bytes,
        durability: Durability,
    ) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            if durability == Durability::Synced {
                return Err(durable_append_unsupported(&self.path));
            }
            self.buffer.extend_from_slice(&data);
            Ok(())
        })
    }

    fn len(&self) -> u64 {
        self.buffer.len() as u64
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move {
            let data = Bytes::from(self.buffer);
            match self.storage.put_if_absent(&self.path, data).await? {
                PutOutcome::Created => Ok(()),
                PutOutcome::AlreadyExists => Err(StorageError::new(
                    StorageErrorKind::AlreadyExists,
                    "close",
                    self.path.as_str(),
                    "another writer stored an object at this key first",
                )),
            }
        })
    }
}
