//! One S3-compatible bucket through `object_store`, with the user's credentials: what
//! the orchestrating node does with them — check them, list and head objects, presign
//! single requests for providers, and create, complete or abort multipart uploads.

use std::time::Duration;

use dms_ensemble::model::Store;
use dms_protocol::storage::Credentials;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig};
use reqwest::Method;

use crate::Error;

/// A named store of an ensemble, opened with credentials.
pub struct Bucket {
    name: String,
    store: Store,
    client: AmazonS3,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Bucket {
    /// Opens store `name` of an ensemble (nothing is sent yet).
    pub fn connect(name: &str, store: &Store, credentials: &Credentials) -> Result<Bucket, Error> {
        let region = store.region.as_deref().unwrap_or("us-east-1");
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&store.bucket)
            .with_region(region)
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(&credentials.secret_access_key)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            })
            .with_client_options(ClientOptions::new().with_timeout(Duration::from_secs(60)));
        if let Some(token) = &credentials.session_token {
            builder = builder.with_token(token);
        }
        if let Some(endpoint) = &store.endpoint {
            builder = builder
                .with_endpoint(endpoint.trim_end_matches('/'))
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let client = builder.build().map_err(|e| Error::Store {
            store: describe(name, store),
            reason: format!("cannot be opened: {e}"),
        })?;
        Ok(Bucket { name: name.into(), store: store.clone(), client })
    }

    /// The store's name in the ensemble.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `store lake (bucket data at http://…)`, for messages.
    pub fn describe(&self) -> String {
        describe(&self.name, &self.store)
    }

    /// The `object_store` client itself.
    pub fn client(&self) -> &AmazonS3 {
        &self.client
    }

    /// Checks that the credentials are accepted and the bucket exists (one listing).
    pub async fn check(&self) -> Result<(), Error> {
        let mut listing = self.client.list(None);
        match listing.try_next().await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.refused(e)),
        }
    }

    /// The object `key`, or every object under `key` when it ends in `/`.
    pub async fn objects(&self, key: &str) -> Result<Vec<ObjectMeta>, Error> {
        let object = format!("{}:{key}", self.name);
        if let Some(prefix) = key.strip_suffix('/') {
            let listed: Vec<ObjectMeta> = self
                .client
                .list(Some(&key_path(prefix)?))
                .try_collect()
                .await
                .map_err(|e| self.refused(e))?;
            if listed.is_empty() {
                return Err(Error::Missing { object, bucket: self.describe(), prefix: true });
            }
            return Ok(listed);
        }
        match self.client.head(&key_path(key)?).await {
            Ok(meta) => Ok(vec![meta]),
            Err(object_store::Error::NotFound { .. }) => {
                Err(Error::Missing { object, bucket: self.describe(), prefix: false })
            }
            Err(e) => Err(self.refused(e)),
        }
    }

    /// A GET of `location` (as listed: no re-encoding) anyone holding the URL may make
    /// for `ttl`.
    pub async fn presign_get(&self, location: &Path, ttl: Duration) -> Result<String, Error> {
        let url = self.client.signed_url(Method::GET, location, ttl).await;
        url.map(String::from).map_err(|e| self.refused(e))
    }

    /// A PUT of `key` anyone holding the URL may make for `ttl`.
    pub async fn presign_put(&self, key: &str, ttl: Duration) -> Result<String, Error> {
        let url = self.client.signed_url(Method::PUT, &key_path(key)?, ttl).await;
        url.map(String::from).map_err(|e| self.refused(e))
    }

    /// Starts a multipart upload of `key`; its id.
    pub async fn start_multipart(&self, key: &str) -> Result<String, Error> {
        self.client.create_multipart(&key_path(key)?).await.map_err(|e| self.refused(e))
    }

    /// A PUT of part `number` (1-based) of upload `id`, for `ttl`.
    pub async fn presign_part(
        &self,
        key: &str,
        id: &str,
        number: usize,
        ttl: Duration,
    ) -> Result<String, Error> {
        let options = SignedUrlOptions::new()
            .with_query([("partNumber", number.to_string()), ("uploadId", id.to_string())]);
        let url = self.client.signed_url_opts(Method::PUT, &key_path(key)?, ttl, &options).await;
        url.map(String::from).map_err(|e| self.refused(e))
    }

    /// Completes upload `id` of `key` from its parts' ETags, in order.
    pub async fn complete(&self, key: &str, id: &str, etags: Vec<String>) -> Result<(), Error> {
        let parts = etags.into_iter().map(|content_id| PartId { content_id }).collect();
        let id = id.to_string();
        self.client
            .complete_multipart(&key_path(key)?, &id, parts)
            .await
            .map(|_| ())
            .map_err(|e| self.refused(e))
    }

    /// Aborts upload `id` of `key` (its parts are dropped by the store).
    pub async fn abort(&self, key: &str, id: &str) -> Result<(), Error> {
        let id = id.to_string();
        self.client.abort_multipart(&key_path(key)?, &id).await.map_err(|e| self.refused(e))
    }

    /// The store's refusal, worded for the user: credentials, a missing bucket, or the
    /// service itself.
    fn refused(&self, error: object_store::Error) -> Error {
        let text = error.to_string();
        let credentials =
            matches!(
                error,
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
            ) || ["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken"]
                .iter()
                .any(|m| text.contains(m));
        if credentials {
            return Error::Credentials { store: self.describe(), reason: root(&error) };
        }
        if text.contains("NoSuchBucket") {
            return Error::Store {
                store: self.describe(),
                reason: "the bucket does not exist (NoSuchBucket); check `bucket` and `endpoint`"
                    .into(),
            };
        }
        Error::Store { store: self.describe(), reason: root(&error) }
    }
}

/// What the service said, briefly: the S3 error's status, `Code` and `Message` when its
/// XML body is in the error (`403 Forbidden: SignatureDoesNotMatch`), else the error's
/// innermost cause.
fn root(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if next.contains("<Code>") || !text.contains("<Code>") {
            text = next;
        }
        source = cause.source();
    }
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].trim().to_string())
    };
    let Some(code) = tag("Code") else { return text };
    let status = ["400", "401", "403", "404", "409", "500", "503"]
        .into_iter()
        .find(|s| text.contains(&format!("status code: {s}")) || text.contains(&format!(" {s} ")));
    let mut brief = match status {
        Some(status) => format!("{status} {code}"),
        None => code,
    };
    if let Some(message) = tag("Message").filter(|m| !m.is_empty()) {
        brief.push_str(&format!(" ({message})"));
    }
    brief
}

/// An object key as `object_store` takes it, unchanged (`Path::from` would
/// percent-encode characters such as `~` or `#` and name another object).
fn key_path(key: &str) -> Result<Path, Error> {
    Path::parse(key)
        .map_err(|e| Error::Outside { path: key.into(), reason: format!("not an object key: {e}") })
}

fn describe(name: &str, store: &Store) -> String {
    let at = store.endpoint.as_deref().unwrap_or("AWS");
    format!("store {name} (bucket {} at {at})", store.bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_code_is_what_the_user_reads() {
        let xml = std::io::Error::other(
            "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\
             <Error><Code>SignatureDoesNotMatch</Code><Message>The signature differs</Message></Error>",
        );
        assert_eq!(root(&xml), "403 SignatureDoesNotMatch (The signature differs)");
        let plain = std::io::Error::other("connection refused");
        assert_eq!(root(&plain), "connection refused");
    }
}
