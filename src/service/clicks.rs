//! The click side of the service: a redirect's click offered to the queue without
//! waiting, and a link's counts read back for the stats.

use std::borrow::Cow;
use std::net::IpAddr;

use std::sync::Arc;

use super::Links;
use crate::analytics::event::clip;
use crate::analytics::queue::ClickQueue;
use crate::analytics::rollup::Stats;
use crate::auth::Caller;
use crate::domain::click::{
    ClickExtra, ClientNet, RawClick, MAX_QUERY, MAX_REFERRER_HEADER, MAX_USER_AGENT,
};
use crate::domain::visitor::VisitorSalts;
use crate::domain::SnowflakeGenerator;
use crate::domain::{DayRange, Link, Snowflake};
use crate::error::ApiError;
use crate::store::clicks::ClickStore;

/// What a redirect request says about its click.
#[derive(Debug, Clone, Default)]
pub struct ClickInfo<'a> {
    /// The `Referer` header.
    pub referrer: Option<&'a str>,
    /// The `User-Agent` header.
    pub user_agent: Option<&'a str>,
    /// The client's address (hashed into the visitor and anonymised before it is
    /// queued; never queued itself).
    pub client: Option<IpAddr>,
    /// The short URL's query string (empty for none).
    pub query: &'a str,
    /// The country a trusted CDN header named.
    pub country: Option<String>,
    /// The city a trusted CDN header named.
    pub city: Option<Cow<'a, str>>,
}

/// Counts clicks: a redirect's click offered to the queue (when clicks are counted),
/// and a link's counts read back for its stats.
pub struct Clicks {
    links: Arc<Links>,
    store: Arc<dyn ClickStore>,
    /// Event IDs (and so each click's time).
    ids: Arc<SnowflakeGenerator>,
    queue: Option<Arc<dyn ClickQueue>>,
    /// The day salts of visitor hashes.
    salts: Arc<VisitorSalts>,
}

impl Clicks {
    /// Counts in `store` for the links of `links`, offering clicks to `queue` (`None`:
    /// clicks are not counted), each named by an ID of `ids` and its visitor hashed
    /// with `salts` (shared with the task that keeps them in step with the other
    /// instances).
    pub fn new(
        links: Arc<Links>,
        store: Arc<dyn ClickStore>,
        ids: Arc<SnowflakeGenerator>,
        queue: Option<Arc<dyn ClickQueue>>,
        salts: Arc<VisitorSalts>,
    ) -> Self {
        Self {
            links,
            store,
            ids,
            queue,
            salts,
        }
    }

    /// The click queue, when clicks are counted.
    pub fn queue(&self) -> Option<&Arc<dyn ClickQueue>> {
        self.queue.as_ref()
    }

    /// Offers a click on `link` to the queue, when clicks are counted; `info` is asked
    /// only then (with clicks off a redirect reads no header for them). Never waits: a
    /// full queue, or an ID clock being waited out, drops the click and counts it. No
    /// parsing here: the worker reduces the referrer to its host, the user agent to
    /// browser, OS, device and bot flag, the query to its campaign; the address is
    /// hashed with the user agent into the day's visitor and anonymised right away.
    pub fn offer_click<'a>(&self, link: Snowflake, info: impl FnOnce() -> ClickInfo<'a>) {
        let Some(queue) = &self.queue else {
            return;
        };
        let Some(event_id) = self.ids.try_next_id() else {
            // The clock is being waited out: drop the click rather than delay the redirect.
            queue.count_dropped();
            return;
        };
        let info = info();
        let at_ms = event_id.unix_ms();
        let user_agent = clip(info.user_agent.unwrap_or_default(), MAX_USER_AGENT);
        let visitor = info
            .client
            .map_or(0, |ip| self.salts.hash(at_ms, ip, &user_agent));
        queue.offer(RawClick {
            event_id,
            link_id: link,
            at_ms,
            referrer: clip(info.referrer.unwrap_or_default(), MAX_REFERRER_HEADER),
            user_agent,
            client: info.client.map(ClientNet::of).unwrap_or_default(),
            visitor,
            extra: ClickExtra::of(
                clip(info.query, MAX_QUERY),
                info.country.unwrap_or_default(),
                info.city.map(Cow::into_owned).unwrap_or_default(),
            ),
        });
    }

    /// The link a code names and its clicks over `range` (totals, every day, top
    /// values), if `caller` may read it: like the link itself, also when expired, 410
    /// once deleted.
    ///
    /// # Errors
    /// 404 unknown or not the caller's; 410 deleted; 503 when its shard is unavailable.
    pub async fn clicks(
        &self,
        caller: &Caller,
        code: &str,
        range: DayRange,
    ) -> Result<(Link, Stats), ApiError> {
        let link = self.links.show(caller, code).await?;
        let days = self.store.days(link.id, range).await?;
        Ok((link, Stats::build(range.from(), range.to(), days)))
    }
}
