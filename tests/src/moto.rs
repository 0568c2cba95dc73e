//! moto's S3 server (the `moto[server]` Python package, pinned in
//! scripts/moto-requirements.txt) as a child process on a free port: the S3-compatible store of
//! the file tests. `scripts/moto.sh` installs it into `target/moto-venv` the first time.
//!
//! What moto checks of a presigned request, and what it does not (read from moto 5.2.5's
//! `s3/responses.py` and `iam/access_control.py`, and shown by tests/tests/files.rs): for a
//! `PUT` of a new key it compares `content-type` / `content-length` query parameters with the
//! request's headers and refuses a difference (403 `SignatureDoesNotMatch`). It does not verify
//! SigV4 signatures of presigned URLs (its IAM check reads only the `Authorization` header), so
//! it checks neither signed headers nor `X-Amz-Expires`, and it does not enforce POST policies.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::workspace_root;

pub struct Moto {
    _child: Child,
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
}

impl Moto {
    /// Starts a server of the test's own (killed when dropped); the first start also installs
    /// moto, which takes about a minute.
    pub async fn start() -> anyhow::Result<Self> {
        let mut child = Command::new("bash")
            .arg(workspace_root().join("scripts/moto.sh"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("start scripts/moto.sh")?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let endpoint = tokio::time::timeout(Duration::from_secs(300), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.trim().strip_prefix("listening") {
                    return Ok(url.trim().to_owned());
                }
            }
            bail!("moto exited before it was listening")
        })
        .await
        .context("moto did not start within 300 s")??;
        Ok(Moto { _child: child, endpoint })
    }

    /// Creates a bucket (moto accepts an unsigned `CreateBucket`).
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
            ("S3_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE".into()),
            ("S3_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()),
        ]
    }
}
