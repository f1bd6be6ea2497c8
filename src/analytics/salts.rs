//! The visitor salts shared by every instance of the distributed mode: each UTC day's
//! salt is one Redis key (`{prefix}visitor-salt:{day}`) that expires a day after its
//! day ends, made by whichever instance asks first (`SET NX`) and read by the rest. It
//! is never written to a database or a file by this service. Today's and tomorrow's are
//! fetched every minute, so midnight costs the redirect path no round trip.
//!
//! Without Redis (the embedded mode), or while it is down, an instance draws its own
//! salt for the day: visitors are still counted once per day on that instance; two
//! instances that never agreed on a salt count a visitor who reaches both twice. An
//! instance that drew its own salt offers it with `SET NX` when Redis answers again, so
//! a lone instance keeps its day consistent.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::domain::visitor::{day_of, Salt, VisitorSalts, DAY_MS};
use crate::domain::Clock;
use crate::shutdown::Shutdown;

/// How often the salts of today and tomorrow are fetched.
pub const SYNC_EVERY: Duration = Duration::from_secs(60);

/// Where the salts are shared.
pub struct SaltSharing {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
}

fn to_hex(salt: &Salt) -> String {
    salt.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Salt> {
    if text.len() != 32 {
        return None;
    }
    let mut salt = [0u8; 16];
    for (i, byte) in salt.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(salt)
}

impl SaltSharing {
    /// Salts shared through the Redis at `url`, under `prefix`.
    ///
    /// # Errors
    /// When the URL is not a Redis URL.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            client: redis::Client::open(url)?,
            prefix: prefix.to_owned(),
            timeout,
        })
    }

    fn key(&self, day: u64) -> String {
        format!("{}visitor-salt:{day}", self.prefix)
    }

    /// Fetches (making it first if nobody has) the shared salt of each day in `days`
    /// and installs it.
    ///
    /// # Errors
    /// When Redis does not answer in time.
    pub async fn sync(&self, salts: &VisitorSalts, now_ms: u64) -> anyhow::Result<()> {
        let today = day_of(now_ms);
        let work = async {
            let mut conn = self.client.get_multiplexed_async_connection().await?;
            for day in [today, today + 1] {
                let offer = salts.get(day).unwrap_or_else(rand::random);
                // Kept a day past its own day, for clicks that are late.
                let ends_ms = (day + 2) * DAY_MS;
                let ttl_s = (ends_ms.saturating_sub(now_ms) / 1000).max(60);
                let key = self.key(day);
                let _: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(to_hex(&offer))
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_s)
                    .query_async(&mut conn)
                    .await?;
                let shared: Option<String> =
                    redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
                match shared.as_deref().and_then(from_hex) {
                    Some(salt) if salts.get(day) != Some(salt) => salts.set(day, &salt),
                    Some(_) => {}
                    None => anyhow::bail!("{key} does not hold a salt"),
                }
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| anyhow::anyhow!("Redis did not answer within {:?}", self.timeout))?
    }

    /// Syncs every [`SYNC_EVERY`] until the shutdown.
    pub fn spawn(
        self,
        salts: Arc<VisitorSalts>,
        clock: Arc<dyn Clock>,
        shutdown: &Shutdown,
    ) -> JoinHandle<()> {
        shutdown.spawn_until(async move {
            let mut tick = tokio::time::interval(SYNC_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = self.sync(&salts, clock.now_ms()).await {
                    tracing::warn!(error = %format!("{e:#}"), "visitor salts not shared this time");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salts_round_trip_through_hex() {
        let salt: Salt = rand::random();
        assert_eq!(from_hex(&to_hex(&salt)), Some(salt));
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(&"g".repeat(32)), None);
    }
}
