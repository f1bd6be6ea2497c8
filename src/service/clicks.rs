//! The click side of the service: a redirect's click offered to the queue without
//! waiting, and a link's counts read back for the stats.

use std::borrow::Cow;
use std::net::IpAddr;

use super::LinkService;
use crate::analytics::event::clip;
use crate::analytics::rollup::Stats;
use crate::auth::Caller;
use crate::domain::click::{
    ClickExtra, ClientNet, RawClick, MAX_QUERY, MAX_REFERRER_HEADER, MAX_USER_AGENT,
};
use crate::domain::{DayRange, Link, Snowflake};
use crate::error::ApiError;

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

impl LinkService {
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
        let link = self.show(caller, code).await?;
        let days = self.clicks.days(link.id, range.from(), range.to()).await?;
        Ok((link, Stats::build(range.from(), range.to(), days)))
    }
}
