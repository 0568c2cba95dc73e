//! Medical files in an S3-compatible store: configuration, presigned URLs (SigV4, by
//! `rusty-s3`), and reading an uploaded object back to check it before its attachment becomes
//! visible. Who may read or write a file is decided in the database, as the user
//! (`http::files`); this module only talks to the store.
//!
//! Objects live in one configured S3 bucket under `<storage bucket>/<object name>`, so the
//! three Storage buckets (`medical-records`, …) are prefixes of it and their object names are
//! the ones `storage.objects` holds.

use std::time::Duration;

use rusty_s3::actions::{DeleteObject, GetObject, PutObject, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use chrono::{DateTime, Utc};

use crate::config::ConfigError;

/// `S3_*` and `FILES_*` settings; absent when `S3_ENDPOINT` is not set (the file endpoints then
/// answer 503 `files_not_configured`).
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// `S3_ENDPOINT`: e.g. `https://s3.eu-west-1.amazonaws.com` or a MinIO / moto address.
    pub endpoint: url::Url,
    /// `S3_REGION`: the signing region (default `us-east-1`).
    pub region: String,
    /// `S3_BUCKET`: the one S3 bucket that holds every Storage bucket's objects.
    pub bucket: String,
    /// `S3_ACCESS_KEY_ID` / `S3_SECRET_ACCESS_KEY`: credentials that may put, get and delete
    /// objects in that bucket (secret: never logged).
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// `S3_URL_STYLE`: `path` (default; MinIO, moto) or `virtual` (`<bucket>.<endpoint host>`).
    pub url_style: UrlStyle,
    /// `FILES_UPLOAD_URL_TTL_SECONDS`: how long an upload URL works (default 300, at most 3600).
    pub upload_ttl: Duration,
    /// `FILES_DOWNLOAD_URL_TTL_SECONDS`: how long a download URL works (default 300, at most 3600).
    pub download_ttl: Duration,
}

impl FilesConfig {
    /// Reads the settings through `lookup`; `Ok(None)` when `S3_ENDPOINT` is not set.
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let opt = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let Some(endpoint) = opt("S3_ENDPOINT") else {
            return Ok(None);
        };
        let endpoint: url::Url = endpoint
            .parse()
            .map_err(|e| ConfigError { name: "S3_ENDPOINT", reason: format!("{e}") })?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(ConfigError { name: "S3_ENDPOINT", reason: "must be an http:// or https:// URL with a host".into() });
        }
        let required = |name: &'static str| opt(name).ok_or(ConfigError { name, reason: "must be set when S3_ENDPOINT is".into() });
        let url_style = match opt("S3_URL_STYLE").as_deref().unwrap_or("path") {
            "path" => UrlStyle::Path,
            "virtual" => UrlStyle::VirtualHost,
            other => return Err(ConfigError { name: "S3_URL_STYLE", reason: format!("{other:?}: expected path or virtual") }),
        };
        let ttl = |name: &'static str| -> Result<Duration, ConfigError> {
            let raw = opt(name).unwrap_or_else(|| "300".into());
            let secs: u64 = raw.parse().map_err(|e| ConfigError { name, reason: format!("{raw:?}: {e}") })?;
            if !(1..=3600).contains(&secs) {
                return Err(ConfigError { name, reason: "must be between 1 and 3600 seconds".into() });
            }
            Ok(Duration::from_secs(secs))
        };
        Ok(Some(FilesConfig {
            endpoint,
            region: opt("S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            bucket: required("S3_BUCKET")?,
            access_key_id: required("S3_ACCESS_KEY_ID")?,
            secret_access_key: SecretString::from(required("S3_SECRET_ACCESS_KEY")?),
            url_style,
            upload_ttl: ttl("FILES_UPLOAD_URL_TTL_SECONDS")?,
            download_ttl: ttl("FILES_DOWNLOAD_URL_TTL_SECONDS")?,
        }))
    }
}

/// A presigned request: where, how, with which headers, until when.
#[derive(Debug, Clone)]
pub struct Presigned {
    pub method: &'static str,
    pub url: String,
    /// Headers the request must carry exactly as given (they are part of the signature).
    pub headers: Vec<(&'static str, String)>,
    pub expires_at: DateTime<Utc>,
}

/// What the store holds for an object, read back in full.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub size: i64,
    pub content_type: Option<String>,
    pub etag: Option<String>,
    pub sha256: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store holds more than {0} bytes for the object")]
    TooLarge(i64),
    #[error("the store answered {0}")]
    Status(reqwest::StatusCode),
    #[error("the store could not be reached: {0}")]
    Unreachable(reqwest::Error),
}

impl From<reqwest::Error> for StoreError {
    /// Without the URL: it names the object (a file name may be PHI) and carries a signature.
    fn from(e: reqwest::Error) -> Self {
        StoreError::Unreachable(e.without_url())
    }
}

/// The S3-compatible store.
pub struct Store {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
    pub upload_ttl: Duration,
    pub download_ttl: Duration,
}

/// How long the companion's own requests to the store are signed for.
const OWN_REQUEST_TTL: Duration = Duration::from_secs(60);

impl Store {
    pub fn new(config: &FilesConfig) -> Result<Self, ConfigError> {
        let bucket = Bucket::new(config.endpoint.clone(), config.url_style, config.bucket.clone(), config.region.clone())
            .map_err(|e| ConfigError { name: "S3_BUCKET", reason: e.to_string() })?;
        let credentials = Credentials::new(config.access_key_id.clone(), config.secret_access_key.expose_secret().to_owned());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ConfigError { name: "S3_ENDPOINT", reason: e.to_string() })?;
        Ok(Store { bucket, credentials, http, upload_ttl: config.upload_ttl, download_ttl: config.download_ttl })
    }

    /// The S3 key of a Storage object.
    pub fn key(storage_bucket: &str, object_name: &str) -> String {
        format!("{storage_bucket}/{object_name}")
    }

    /// A presigned `PUT` that the store accepts only with this exact `Content-Type` and
    /// `Content-Length`: both are signed headers (SigV4 `X-Amz-SignedHeaders`), so another size
    /// or type no longer matches the signature. They are also signed query parameters, which
    /// is how stores that do not check signed headers (moto) compare them to the request.
    pub fn presign_upload(&self, key: &str, content_type: &str, size: i64) -> Presigned {
        let size = size.to_string();
        let mut action = PutObject::new(&self.bucket, Some(&self.credentials), key);
        action.headers_mut().insert("content-length", size.clone());
        action.headers_mut().insert("content-type", content_type.to_owned());
        action.query_mut().insert("content-length", size.clone());
        action.query_mut().insert("content-type", content_type.to_owned());
        Presigned {
            method: "PUT",
            url: action.sign(self.upload_ttl).to_string(),
            headers: vec![("Content-Type", content_type.to_owned()), ("Content-Length", size)],
            expires_at: expires_at(self.upload_ttl),
        }
    }

    /// A presigned `GET` that downloads the object as an attachment named `file_name` (never
    /// rendered inline by the store's origin).
    pub fn presign_download(&self, key: &str, file_name: &str) -> Presigned {
        let mut action = GetObject::new(&self.bucket, Some(&self.credentials), key);
        action.query_mut().insert("response-content-disposition", format!("attachment; filename=\"{file_name}\""));
        Presigned {
            method: "GET",
            url: action.sign(self.download_ttl).to_string(),
            headers: Vec::new(),
            expires_at: expires_at(self.download_ttl),
        }
    }

    /// Reads the object back: `Ok(None)` when there is none; its size, type, ETag and SHA-256
    /// otherwise. Stops reading past `max_size` bytes.
    pub async fn read_back(&self, key: &str, max_size: i64) -> Result<Option<StoredObject>, StoreError> {
        let url = GetObject::new(&self.bucket, Some(&self.credentials), key).sign(OWN_REQUEST_TTL);
        let mut response = self.http.get(url).send().await?;
        match response.status() {
            s if s.is_success() => {}
            reqwest::StatusCode::NOT_FOUND => return Ok(None),
            s => return Err(StoreError::Status(s)),
        }
        let header = |name: reqwest::header::HeaderName| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let etag = header(reqwest::header::ETAG);
        let mut hasher = Sha256::new();
        let mut size: i64 = 0;
        while let Some(chunk) = response.chunk().await? {
            size = size.saturating_add(i64::try_from(chunk.len()).unwrap_or(i64::MAX));
            if size > max_size {
                return Err(StoreError::TooLarge(max_size));
            }
            hasher.update(&chunk);
        }
        Ok(Some(StoredObject { size, content_type, etag, sha256: hasher.finalize().into() }))
    }

    /// Removes an object (an upload that is not what was declared).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let url = DeleteObject::new(&self.bucket, Some(&self.credentials), key).sign(OWN_REQUEST_TTL);
        let response = self.http.delete(url).send().await?;
        if response.status().is_success() || response.status() == reqwest::StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(StoreError::Status(response.status()))
        }
    }
}

fn expires_at(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::TimeDelta::from_std(ttl).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Option<FilesConfig>, ConfigError> {
        let map: std::collections::HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        FilesConfig::from_lookup(&|name: &str| map.get(name).cloned())
    }

    const FULL: &[(&str, &str)] = &[
        ("S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("S3_BUCKET", "careplane-files"),
        ("S3_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("S3_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
    ];

    #[test]
    fn without_endpoint_files_are_not_configured() {
        assert!(config(&[]).unwrap().is_none());
    }

    #[test]
    fn endpoint_without_credentials_names_what_is_missing() {
        let err = config(&FULL[..2]).unwrap_err();
        assert_eq!(err.name, "S3_ACCESS_KEY_ID");
    }

    #[test]
    fn ttl_bounds_enforced() {
        let mut pairs = FULL.to_vec();
        pairs.push(("FILES_DOWNLOAD_URL_TTL_SECONDS", "0"));
        assert_eq!(config(&pairs).unwrap_err().name, "FILES_DOWNLOAD_URL_TTL_SECONDS");
        let ok = config(FULL).unwrap().unwrap();
        assert_eq!(ok.upload_ttl, Duration::from_secs(300));
        assert_eq!(ok.download_ttl, Duration::from_secs(300));
    }

    #[test]
    fn upload_url_signs_size_and_type() {
        let store = Store::new(&config(FULL).unwrap().unwrap()).unwrap();
        let signed = store.presign_upload("medical-records/p/a/lab.pdf", "application/pdf", 1234);
        let url = url::Url::parse(&signed.url).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["X-Amz-SignedHeaders"], "content-length;content-type;host");
        assert_eq!(q["X-Amz-Expires"], "300");
        assert_eq!(q["content-length"], "1234");
        assert_eq!(q["content-type"], "application/pdf");
        assert_eq!(url.path(), "/careplane-files/medical-records/p/a/lab.pdf");
        assert!(!signed.url.contains("wJalrXUtnFEMI"), "the secret never appears in a URL");
    }
}
