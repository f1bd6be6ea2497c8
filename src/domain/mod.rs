//! The domain: IDs, codes, URLs and links, with no I/O.

pub mod cipher;
pub mod click;
pub mod clock;
pub mod codes;
pub mod ids;
pub mod link;
pub mod query;
pub mod target_url;
pub mod visitor;

pub use clock::{Clock, ManualClock, SystemClock};
pub use codes::{Alias, AliasError, LinkKey};
pub use ids::{IdError, Snowflake, SnowflakeGenerator, WorkerSlot};
pub use link::{Link, LinkState, NewLink, RedirectKind, TenantId};
pub use query::{Cursor, DayRange, PageLimit, QueryError};
pub use target_url::{TargetUrl, UrlError, UrlPolicy};
