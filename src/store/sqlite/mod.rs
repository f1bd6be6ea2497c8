//! The embedded store: one SQLite file for links ([`links`]) and the directory
//! ([`directory`]), set up for a server (clicks have a file of their own:
//! [`SqliteClicks`]). This module is the plumbing both share: the writer thread, the
//! readers, the settings.
//!
//! - **WAL** journal, so readers never block the writer or each other.
//! - **One writer thread** owns the only writing connection. Writes arrive over a
//!   channel; the thread takes every write that is waiting (up to [`MAX_BATCH`]) and
//!   commits them in one transaction, each inside its own savepoint so that one failure
//!   (a taken alias) does not undo the others. With `synchronous = FULL` that is one
//!   fsync per batch instead of per link: group commit. There is never a second writer,
//!   so `SQLITE_BUSY` cannot reach a client.
//! - **Several read-only connections** in a small free list, used on tokio's blocking
//!   threads, for lookups.
//!
//! Each caller gets its answer only after the commit, so a code handed out always
//! resolves. [`SqliteStore::close`] stops the writer after the writes already queued,
//! checkpoints the WAL into the main file and closes every connection.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Semaphore};

use self::directory::apply_create_key;
use self::links::apply_insert;
use super::StoreError;
use crate::domain::{Link, Snowflake};
use crate::store::sql::MARK_DELETED;

mod clicks;
mod directory;
mod links;

pub use clicks::{SqliteClicks, CLICKS_FILE};

mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

/// Most writes committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// Writes that may wait for the writer before callers queue up in the channel.
const WRITE_QUEUE: usize = 4_096;
/// How long a connection waits on a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The file inside the data directory.
pub const DB_FILE: &str = "shortener.db";
const PART: &str = "sqlite";

/// How hard SQLite pushes commits to the disk.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync at every commit: a committed link survives power loss (the default).
    Full,
    /// fsync at checkpoints only: survives a crash of the process, not of the machine.
    Normal,
}

/// Settings of the embedded store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteSettings {
    /// Read-only connections for lookups.
    pub readers: usize,
    /// `full` (default) or `normal`.
    pub synchronous: Synchronous,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        Self {
            readers: 4,
            synchronous: Synchronous::Full,
        }
    }
}

enum Write {
    Insert(Link, oneshot::Sender<Result<(), StoreError>>),
    Delete(
        Snowflake,
        DateTime<Utc>,
        oneshot::Sender<Result<bool, StoreError>>,
    ),
    Bulk(Vec<Link>, oneshot::Sender<Result<(), StoreError>>),
    CreateKey {
        tenant: String,
        quota: Option<u32>,
        hash: Vec<u8>,
        at_ms: i64,
        reply: oneshot::Sender<Result<i64, StoreError>>,
    },
    /// One statement with its parameters; replies whether it changed exactly one row.
    Statement(
        &'static str,
        Vec<rusqlite::types::Value>,
        oneshot::Sender<Result<bool, StoreError>>,
    ),
}

impl Write {
    /// Answers the write's caller with `error` (its batch could not even begin).
    fn fail(self, error: StoreError) {
        match self {
            Self::Insert(_, reply) | Self::Bulk(_, reply) => {
                let _ = reply.send(Err(error));
            }
            Self::Delete(_, _, reply) | Self::Statement(_, _, reply) => {
                let _ = reply.send(Err(error));
            }
            Self::CreateKey { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// The embedded SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    writes: Mutex<Option<mpsc::Sender<Write>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    reader_permits: Arc<Semaphore>,
}

fn internal(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::internal(PART, e)
}

fn unavailable(msg: &'static str) -> StoreError {
    StoreError::unavailable(PART, anyhow::anyhow!(msg))
}

fn open_connection(
    path: &Path,
    synchronous: Synchronous,
    read_only: bool,
) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let sync = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16000;"
    ))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Creates `dir` when needed and opens `dir/file` for writing, in WAL mode.
fn open_writer(
    dir: &Path,
    file: &str,
    synchronous: Synchronous,
) -> anyhow::Result<(PathBuf, Connection)> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", dir.display()))?;
    let path = dir.join(file);
    let writer = open_connection(&path, synchronous, false)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "{} refused WAL mode ({mode})",
        path.display()
    );
    Ok((path, writer))
}

impl SqliteStore {
    /// Opens (creating when needed) `dir/shortener.db`, switches it to WAL, applies
    /// `migrations/sqlite`, and starts the writer.
    ///
    /// # Errors
    /// When the directory or file cannot be created or migrated.
    pub fn open(dir: &Path, settings: &SqliteSettings) -> anyhow::Result<Self> {
        let (path, mut writer) = open_writer(dir, DB_FILE, settings.synchronous)?;
        let report = embedded::migrations::runner().run(&mut writer)?;
        for m in report.applied_migrations() {
            tracing::info!(file = %path.display(), version = m.version(), name = m.name(), "applied migration");
        }
        let readers = (0..settings.readers.max(1))
            .map(|_| open_connection(&path, settings.synchronous, true))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(writer, rx))?;
        Ok(Self {
            path,
            reader_permits: Arc::new(Semaphore::new(readers.len())),
            readers: Arc::new(Mutex::new(readers)),
            writes: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(thread)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The latest schema version this binary carries for SQLite.
    pub fn latest_version() -> i64 {
        crate::store::newest_migration(&embedded::migrations::runner())
    }

    async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<T, StoreError> {
        let sender = self
            .writes
            .lock()
            .map_err(|_| unavailable("writer lock poisoned"))?
            .clone()
            .ok_or_else(|| unavailable("the store is closed"))?;
        let (tx, rx) = oneshot::channel();
        sender
            .send(make(tx))
            .await
            .map_err(|_| unavailable("the writer has stopped"))?;
        rx.await
            .map_err(|_| unavailable("the writer has stopped"))?
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _permit = self
            .reader_permits
            .acquire()
            .await
            .map_err(|_| unavailable("the store is closed"))?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers
                .lock()
                .map_err(|_| unavailable("reader lock poisoned"))?
                .pop()
                .ok_or_else(|| unavailable("no reader connection free"))?;
            let result = work(&conn).map_err(internal);
            if let Ok(mut free) = readers.lock() {
                free.push(conn);
            }
            result
        })
        .await
        .map_err(internal)?
    }

    /// Stops taking writes, lets the writer commit what is queued, checkpoints the WAL
    /// into the database file and closes every connection. Idempotent.
    pub async fn close(&self) {
        let sender = self.writes.lock().ok().and_then(|mut w| w.take());
        drop(sender);
        let thread = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.reader_permits.close();
        if let Ok(mut readers) = self.readers.lock() {
            readers.clear();
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Without an explicit close, still let the writer finish and checkpoint.
        if let Ok(mut w) = self.writes.lock() {
            w.take();
        }
        if let Some(thread) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = thread.join();
        }
    }
}

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut batch);
    }
    // The channel is closed and drained: fold the WAL into the main file.
    let started = Instant::now();
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(0) => tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sqlite checkpointed and closed"
        ),
        Ok(busy) => tracing::warn!(busy, "sqlite checkpoint incomplete"),
        Err(e) => tracing::warn!(error = %e, "sqlite checkpoint failed"),
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing sqlite failed");
    }
}

/// The outcome of one write inside the batch, held until the commit decides.
enum Outcome {
    Inserted(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
    Deleted(
        oneshot::Sender<Result<bool, StoreError>>,
        Result<bool, StoreError>,
    ),
    KeyCreated(
        oneshot::Sender<Result<i64, StoreError>>,
        Result<i64, StoreError>,
    ),
}

fn commit_batch(conn: &mut Connection, batch: &mut Vec<Write>) {
    // A batch that cannot begin (the file locked past the busy timeout, read-only, a
    // full disk) answers every one of its callers now: none waits for a later write.
    let mut tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, writes = batch.len(), "sqlite batch could not begin");
            let cause = Arc::new(e);
            for write in batch.drain(..) {
                let source = shared(&cause).context("the database cannot be written now");
                write.fail(StoreError::unavailable(PART, source));
            }
            return;
        }
    };
    let outcomes: Vec<Outcome> = batch.drain(..).map(|w| apply(&mut tx, w)).collect();
    match tx.commit() {
        Ok(()) => outcomes.into_iter().for_each(Outcome::answer),
        Err(e) => {
            tracing::error!(error = %e, "sqlite batch commit failed");
            let cause = Arc::new(e);
            for outcome in outcomes {
                outcome.fail(internal(shared(&cause).context("commit failed")));
            }
        }
    }
}

/// One error for many callers (rusqlite's error is not `Clone`): each gets the same
/// cause as its source.
fn shared(cause: &Arc<rusqlite::Error>) -> anyhow::Error {
    anyhow::Error::new(Arc::clone(cause))
}

/// Runs one write of a batch inside its transaction; its answer waits for the commit.
fn apply(tx: &mut rusqlite::Transaction<'_>, write: Write) -> Outcome {
    match write {
        Write::Insert(link, reply) => Outcome::Inserted(reply, apply_insert(tx, &link)),
        Write::Delete(id, at, reply) => {
            let r = tx
                .prepare_cached(MARK_DELETED)
                .and_then(|mut s| s.execute(params![at.timestamp_millis(), id.as_i64()]))
                .map(|n| n == 1)
                .map_err(internal);
            Outcome::Deleted(reply, r)
        }
        Write::Bulk(links, reply) => {
            let r = links.iter().try_for_each(|l| apply_insert(tx, l));
            Outcome::Inserted(reply, r)
        }
        Write::CreateKey {
            tenant,
            quota,
            hash,
            at_ms,
            reply,
        } => Outcome::KeyCreated(reply, apply_create_key(tx, &tenant, quota, &hash, at_ms)),
        Write::Statement(sql, values, reply) => {
            let r = tx
                .prepare_cached(sql)
                .and_then(|mut s| s.execute(rusqlite::params_from_iter(values)))
                .map(|n| n == 1)
                .map_err(internal);
            Outcome::Deleted(reply, r)
        }
    }
}

impl Outcome {
    /// The batch committed: each caller gets its own write's result.
    fn answer(self) {
        match self {
            Self::Inserted(reply, r) => drop(reply.send(r)),
            Self::Deleted(reply, r) => drop(reply.send(r)),
            Self::KeyCreated(reply, r) => drop(reply.send(r)),
        }
    }

    /// The batch did not commit: each caller gets `e`, whatever its write did.
    fn fail(self, e: StoreError) {
        match self {
            Self::Inserted(reply, _) => drop(reply.send(Err(e))),
            Self::Deleted(reply, _) => drop(reply.send(Err(e))),
            Self::KeyCreated(reply, _) => drop(reply.send(Err(e))),
        }
    }
}
