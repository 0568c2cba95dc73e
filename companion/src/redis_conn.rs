//! A Redis connection that is made on first use and re-made after Redis comes back.
//!
//! The companion must start and keep serving while Redis is down (health reports it), so the
//! connection is not made at start-up; `ConnectionManager` reconnects on its own afterwards.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisResult;
use tokio::sync::OnceCell;

pub struct Redis {
    client: redis::Client,
    timeout: Duration,
    manager: OnceCell<ConnectionManager>,
}

impl Redis {
    /// Parses the URL; does not connect.
    pub fn new(url: &str, timeout: Duration) -> RedisResult<Self> {
        Ok(Redis { client: redis::Client::open(url)?, timeout, manager: OnceCell::new() })
    }

    /// The client, for connections of their own (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// A shared, multiplexed connection (cheap to clone).
    pub async fn connection(&self) -> RedisResult<ConnectionManager> {
        self.manager
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await
            .cloned()
    }

    /// `PING`, bounded by the configured timeout.
    pub async fn ping(&self) -> Result<(), String> {
        let attempt = async {
            let mut conn = self.connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }
}
