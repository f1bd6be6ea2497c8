//! The code key's life cycle, and the code scheme every instance of a deployment shares.
//!
//! - **Distributed mode:** `codes.key` is required (32 hexadecimal digits, the same on
//!   every instance; `shortener code-key` makes one). Config validation refuses a
//!   missing or malformed key.
//! - **Embedded mode:** without `codes.key`, the key is read from `{data_dir}/code.key`,
//!   and generated there (mode 0600) on the first start. Back it up with the database:
//!   without it, no generated code can be turned back into its link.
//! - **The scheme** ([`CodeScheme`]) is recorded in the directory by the first instance
//!   that starts: the key's check value, and `plain_below`. A deployment that has no
//!   links yet keys every code (`plain_below` = 0); one that was upgraded keeps its
//!   links' plain codes up to [`UPGRADE_GRACE`] after that first start, so instances
//!   of the old version still running during a rolling upgrade keep minting codes that
//!   resolve. An instance whose key does not match the recorded check value refuses to
//!   start: it would hand out codes that other instances read as other links.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::Stores;
use crate::config::{Mode, Settings};
use crate::domain::cipher::{CodeKey, CodeScheme, Codec};
use crate::domain::{Clock, Snowflake};

/// The embedded mode's key file, in `data_dir`.
pub const KEY_FILE: &str = "code.key";

/// How long after the first start with keyed codes links still get plain codes, when the
/// deployment already had links: the time a rolling upgrade has to replace every
/// instance of the old version.
pub const UPGRADE_GRACE: Duration = Duration::from_secs(15 * 60);

/// The codec this deployment's codes are made with: the key from the configuration (or
/// the embedded key file), the scheme from the directory (recorded now if none is).
///
/// # Errors
/// A missing or malformed key, a key that is not the one the deployment's codes were
/// made with, or a directory (or, on the first start, a shard) that does not answer.
pub async fn open_codec(
    settings: &Settings,
    stores: &Stores,
    clock: &dyn Clock,
) -> anyhow::Result<Arc<Codec>> {
    let (key, source) = code_key(settings)?;
    let scheme = match stores.directory.code_scheme().await {
        Ok(Some(scheme)) => scheme,
        Ok(None) => {
            let plain_below = if stores.links.has_links().await.map_err(|e| {
                anyhow::anyhow!("cannot tell whether links exist, to record the code scheme: {e}")
            })? {
                let grace = u64::try_from(UPGRADE_GRACE.as_millis()).unwrap_or(u64::MAX);
                let now = u64::try_from(clock.now().timestamp_millis()).unwrap_or(0);
                Snowflake::first_of_ms(now + grace)
            } else {
                Snowflake::from_u64(0).expect("0 fits")
            };
            let proposed = CodeScheme {
                key_check: key.check_value(),
                plain_below,
            };
            let recorded = stores.directory.record_code_scheme(&proposed).await?;
            if recorded == proposed {
                tracing::info!(
                    plain_below = plain_below.get(),
                    keyed_from = %plain_below.timestamp(),
                    "recorded the code scheme: links minted from then on get keyed codes"
                );
            }
            recorded
        }
        Err(e) => anyhow::bail!("cannot read the code scheme from the directory: {e}"),
    };
    if scheme.key_check != key.check_value() {
        anyhow::bail!(
            "the code key ({source}, check value {}) is not the key this deployment's codes \
             were made with (check value {}): every instance must use the same codes.key, \
             and the embedded mode the code.key file its database was made with",
            key.check_value(),
            scheme.key_check
        );
    }
    tracing::info!(
        key = source,
        key_check = %scheme.key_check,
        plain_below = scheme.plain_below.get(),
        "generated codes are keyed"
    );
    Ok(Arc::new(Codec::new(&key, scheme.plain_below)))
}

/// The configured key, or in the embedded mode the key file's (made when missing), with
/// where it came from (for messages; never the key itself).
fn code_key(settings: &Settings) -> anyhow::Result<(CodeKey, String)> {
    if let Some(text) = &settings.codes.key {
        let key = CodeKey::parse(text).map_err(|e| anyhow::anyhow!("codes.key: {e}"))?;
        return Ok((key, "codes.key".into()));
    }
    match settings.mode() {
        Mode::Distributed => anyhow::bail!(
            "codes.key is required in the distributed mode: every instance must share it \
             (make one with `shortener code-key`)"
        ),
        Mode::Embedded => {
            let path = settings.data_dir.join(KEY_FILE);
            let key = load_or_create_key(&path)?;
            Ok((key, path.display().to_string()))
        }
    }
}

/// Reads the key file, or writes a fresh random key there when there is none. The new
/// file appears whole or not at all (written aside, then hard-linked into place), so two
/// processes starting at once end up with the same key.
fn load_or_create_key(path: &Path) -> anyhow::Result<CodeKey> {
    let read = |path: &Path| -> anyhow::Result<CodeKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the code key {}: {e}", path.display()))?;
        CodeKey::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    if path.exists() {
        return read(path);
    }
    let key = CodeKey::from_bytes(rand::random());
    let aside = path.with_extension(format!("new-{:016x}", rand::random::<u64>()));
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&aside)?;
        writeln!(file, "{}", key.to_hex())?;
        file.sync_all()
    };
    let linked = write().and_then(|()| std::fs::hard_link(&aside, path));
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => {
            tracing::warn!(
                file = %path.display(),
                "generated a new code key: back it up with the database, codes cannot be \
                 read without it"
            );
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(anyhow::anyhow!(
            "cannot write the code key {}: {e}",
            path.display()
        )),
    }
}
