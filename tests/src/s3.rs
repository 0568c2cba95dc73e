//! Local S3-compatible stores for the file tests, each a child process of the test on a free
//! port (killed when dropped). Neither verifies SigV4 signatures of presigned URLs; each checks
//! something the other does not:
//!
//! - **moto** (`moto[server]` 5.2.5 from PyPI, pinned in scripts/moto-requirements.txt,
//!   installed by scripts/moto.sh into `target/moto-venv`): for a `PUT` of a new key it compares
//!   `content-type` / `content-length` query parameters with the request's headers and refuses a
//!   difference (403 `SignatureDoesNotMatch`). Its IAM check reads only the `Authorization`
//!   header, so it checks neither signed headers nor `X-Amz-Expires`, and it ignores POST
//!   policies (moto 5.2.5's `s3/responses.py`, `iam/access_control.py`).
//! - **s3rver** (3.7.1 from npm, pinned in tests/s3rver/package-lock.json, installed by
//!   scripts/s3rver.sh into `target/s3rver`): refuses a presigned v4 URL past `X-Amz-Date` +
//!   `X-Amz-Expires` (403 `AccessDenied`, "Request has expired"); its v4 signature check is
//!   unimplemented ("Signature version 4 calculation is unimplemented" in its
//!   `lib/middleware/authentication.js`). It knows one key pair, `S3RVER` / `S3RVER`.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::workspace_root;

pub struct LocalS3 {
    _child: Child,
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    access_key: &'static str,
    secret_key: &'static str,
}

impl LocalS3 {
    /// moto's S3 server; the first start also installs moto (about a minute).
    pub async fn moto() -> anyhow::Result<Self> {
        Self::start("scripts/moto.sh", &[], "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").await
    }

    /// s3rver with `bucket` already made; the first start also installs it (seconds).
    pub async fn s3rver(bucket: &str) -> anyhow::Result<Self> {
        Self::start("scripts/s3rver.sh", &[bucket], "S3RVER", "S3RVER").await
    }

    async fn start(script: &str, args: &[&str], access_key: &'static str, secret_key: &'static str) -> anyhow::Result<Self> {
        let mut child = Command::new("bash")
            .arg(workspace_root().join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {script}"))?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let endpoint = tokio::time::timeout(Duration::from_secs(300), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.trim().strip_prefix("listening") {
                    return Ok(url.trim().to_owned());
                }
            }
            bail!("{script} exited before it was listening")
        })
        .await
        .with_context(|| format!("{script} did not start within 300 s"))??;
        Ok(LocalS3 { _child: child, endpoint, access_key, secret_key })
    }

    /// Creates a bucket with an unsigned `CreateBucket` (moto accepts it).
    pub async fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        let response = reqwest::Client::new().put(format!("{}/{name}", self.endpoint)).send().await?;
        anyhow::ensure!(response.status().is_success(), "CreateBucket answered {}", response.status());
        Ok(())
    }

    /// The companion's settings for this store and `bucket`.
    pub fn companion_env(&self, bucket: &str) -> Vec<(&'static str, String)> {
        vec![
            ("S3_ENDPOINT", self.endpoint.clone()),
            ("S3_REGION", "us-east-1".into()),
            ("S3_BUCKET", bucket.into()),
            ("S3_ACCESS_KEY_ID", self.access_key.into()),
            ("S3_SECRET_ACCESS_KEY", self.secret_key.into()),
        ]
    }
}
