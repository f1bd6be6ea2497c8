//! Where a click came from, offline: a MaxMind-format database file the operator
//! chooses (GeoLite2 Country or City, DB-IP Lite, the CC0/CC-BY files of the
//! ip-location-db project), read in the worker, never on the redirect path. Nothing is
//! ever downloaded. The country headers of a CDN in front are read on the redirect
//! path instead (see [`crate::limits::client`]) and win over the database.
//!
//! The worker looks up the click's anonymised network (the /24 of IPv4, the /48 of
//! IPv6), not the address: a /24 almost never spans two countries, so countries come
//! out as from the full address; cities are as good as the database's city for the
//! network's first address, which for a /24 is usually the right city and sometimes a
//! neighbouring one.
//!
//! The file is checked for a change every `geo.reload_check_s` seconds and read again
//! when it changed; a file that no longer reads keeps the previous data and is logged.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use std::time::SystemTime;

use maxminddb::Reader;
use serde::{Deserialize, Serialize};

use crate::domain::click::{clip_str, country_code, ClientNet, Place, MAX_CITY};

/// Location settings (`[geo]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoSettings {
    /// A MaxMind-format database (`.mmdb`): countries (and cities, if it has them) of
    /// client networks. Unset: only CDN headers place clicks. Configured but missing or
    /// unreadable: startup fails.
    pub database: Option<PathBuf>,
    /// More request headers that carry the client's country (ISO 3166-1 alpha-2),
    /// believed from trusted proxies only, besides `CF-IPCountry`,
    /// `CloudFront-Viewer-Country` and `X-Vercel-IP-Country`.
    pub headers: Vec<String>,
    /// More request headers that carry the client's city, besides `X-Vercel-IP-City`,
    /// `CloudFront-Viewer-City` and `CF-IPCity`.
    pub city_headers: Vec<String>,
    /// How often the database file is checked for a change, in seconds.
    #[serde(with = "crate::duration::secs")]
    pub reload_check_s: Duration,
}

impl Default for GeoSettings {
    fn default() -> Self {
        Self {
            database: None,
            headers: Vec::new(),
            city_headers: Vec::new(),
            reload_check_s: Duration::from_secs(10),
        }
    }
}

/// The parts of a record this service reads, in the shapes the known databases use.
#[derive(Deserialize)]
struct Record {
    /// GeoLite2, DB-IP: `country.iso_code`.
    country: Option<Country>,
    /// ip-location-db: `country_code`.
    country_code: Option<String>,
    /// GeoLite2 City, DB-IP City: `city.names.en`; ip-location-db: `city`.
    city: Option<City>,
}

#[derive(Deserialize)]
struct Country {
    iso_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum City {
    Name(String),
    Names { names: BTreeMap<String, String> },
}

/// The loaded database, reloaded in place when its file changes.
pub struct GeoDb {
    path: PathBuf,
    reader: RwLock<Arc<Reader<Vec<u8>>>>,
    /// The file's modification time and length when it was read.
    stamp: Mutex<(Option<SystemTime>, u64)>,
    /// Bumped at each reload: lookups cached under an older one are stale.
    generation: AtomicU64,
    /// Successful reloads.
    pub reloads: AtomicU64,
    /// Reloads that failed (the previous data stayed).
    pub reload_failures: AtomicU64,
}

fn stamp_of(path: &Path) -> std::io::Result<(Option<SystemTime>, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.modified().ok(), meta.len()))
}

/// Opens and checks a database file.
///
/// # Errors
/// Naming the file, when it is missing or not a MaxMind database.
pub fn open_reader(path: &Path) -> anyhow::Result<Reader<Vec<u8>>> {
    Reader::open_readfile(path).map_err(|e| anyhow::anyhow!("geo.database {}: {e}", path.display()))
}

/// The database `settings` name, opened, with how often to check its file.
///
/// # Errors
/// When a configured database is missing or not a MaxMind database.
pub fn open_configured(
    settings: &GeoSettings,
) -> anyhow::Result<Option<(Arc<GeoDb>, std::time::Duration)>> {
    let Some(path) = &settings.database else {
        return Ok(None);
    };
    let every = settings
        .reload_check_s
        .max(std::time::Duration::from_secs(1));
    Ok(Some((Arc::new(GeoDb::open(path)?), every)))
}

impl GeoDb {
    /// Reads the database at `path`.
    ///
    /// # Errors
    /// When it is missing or not a MaxMind database.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let stamp =
            stamp_of(path).map_err(|e| anyhow::anyhow!("geo.database {}: {e}", path.display()))?;
        let reader = open_reader(path)?;
        let m = reader.metadata();
        tracing::info!(
            path = %path.display(),
            database_type = %m.database_type,
            build_epoch = m.build_epoch,
            nodes = m.node_count,
            "location database loaded"
        );
        Ok(Self {
            path: path.to_owned(),
            reader: RwLock::new(Arc::new(reader)),
            stamp: Mutex::new(stamp),
            generation: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        })
    }

    /// The data now (a reload does not disturb a lookup holding it).
    pub fn reader(&self) -> Arc<Reader<Vec<u8>>> {
        self.reader
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Which load of the file [`reader`](Self::reader) returns.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Reads the file again if its modification time or length changed since it was
    /// read. Blocking (it reads the whole file): call it off the async threads. A file
    /// that does not read is logged and the previous data kept; it is tried again at
    /// the next change.
    pub fn reload_if_changed(&self) {
        let Ok(mut stamp) = self.stamp.lock() else {
            return;
        };
        let now = match stamp_of(&self.path) {
            Ok(s) => s,
            Err(e) => {
                if stamp.1 != u64::MAX {
                    tracing::warn!(path = %self.path.display(), error = %e, "location database unreadable; keeping the loaded one");
                    self.reload_failures.fetch_add(1, Ordering::Relaxed);
                    *stamp = (None, u64::MAX);
                }
                return;
            }
        };
        if now == *stamp {
            return;
        }
        *stamp = now;
        match open_reader(&self.path) {
            Ok(reader) => {
                if let Ok(mut r) = self.reader.write() {
                    *r = Arc::new(reader);
                }
                self.generation.fetch_add(1, Ordering::AcqRel);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(path = %self.path.display(), "location database reloaded");
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %format!("{e:#}"), "location database changed but does not read; keeping the loaded one");
            }
        }
    }
}

/// The first address of a network, which the lookup uses.
fn address_of(net: ClientNet) -> Option<IpAddr> {
    match net {
        ClientNet::Unknown => None,
        ClientNet::V4([a, b, c]) => Some(IpAddr::V4(Ipv4Addr::new(a, b, c, 0))),
        ClientNet::V6([a, b, c]) => Some(IpAddr::V6(Ipv6Addr::new(a, b, c, 0, 0, 0, 0, 0))),
    }
}

/// The place of `net` in `reader`; unknown where the database has nothing. Networks
/// share records (a country database has a few hundred), so a record is decoded once:
/// `records` keeps the places by the record's offset in the file (empty it when the
/// file is reloaded).
pub fn lookup(
    reader: &Reader<Vec<u8>>,
    net: ClientNet,
    records: &mut HashMap<usize, Arc<Place>>,
) -> Option<Arc<Place>> {
    let ip = address_of(net)?;
    let result = reader.lookup(ip).ok()?;
    let offset = result.offset()?;
    if let Some(place) = records.get(&offset) {
        return Some(place.clone());
    }
    let record: Record = result.decode().ok().flatten()?;
    let place = Arc::new(place_of(record));
    records.insert(offset, place.clone());
    Some(place)
}

fn place_of(record: Record) -> Place {
    let country = record
        .country
        .and_then(|c| c.iso_code)
        .or(record.country_code)
        .and_then(|c| country_code(&c))
        .unwrap_or_default();
    let city = match record.city {
        Some(City::Name(n)) => Some(n),
        Some(City::Names { mut names }) => names.remove("en"),
        None => None,
    };
    Place {
        city: city.map(|c| city_label(&c, &country)).unwrap_or_default(),
        country,
    }
}

/// How a city is counted: `Paris, FR` (so that Paris, US is another city), or the name
/// alone when the country is unknown; cut to [`MAX_CITY`] bytes.
pub fn city_label(city: &str, country: &str) -> String {
    let city = clip_str(city.trim(), MAX_CITY);
    if city.is_empty() || country.is_empty() {
        city.to_owned()
    } else {
        format!("{city}, {country}")
    }
}
