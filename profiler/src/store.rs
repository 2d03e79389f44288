//! The profile store: one profile per image in an SQLite database shared by every shim of the
//! node (ADR 0007).
//!
//! A profile is the image's merged n-gram counts (the model codec's bytes), its mode, how many
//! containers and events were learned, the history of learning runs (for convergence) and the
//! held-out window maxima its detection threshold is calibrated on. Shims merge into it
//! concurrently: every merge is one `BEGIN IMMEDIATE` transaction (read, add, write), so SQLite's
//! write lock serializes them and no count is lost; WAL keeps readers off the writers' backs and
//! makes an interrupted write roll back on the next open.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chaperone_config::{Mode, PromotionPolicy};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

mod files;

use crate::detector::stats;
use crate::model::{codec, ModelError, NgramCounts, BOS};
use crate::supervisor::{window_threshold, Learned, Piece};
use crate::syscalls::Sym;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: u32 = 5;

/// The schema a store has, and the oldest schema whose builds can still use it, from its
/// `PRAGMA user_version`: the schema in the low 16 bits; in the high 16, when a later schema
/// only adds what earlier builds can ignore (a table, a column with a default), the schema
/// those builds have (0: none older than its own). So a build reads and writes a store of a
/// newer schema that declares it compatible, and a newer CLI that migrated a node's store
/// does not lock the node's older shims out. Schema 5 declares schema 4 compatible (it adds
/// two columns that schema 4's builds leave empty); builds before 2026-12-07 read the whole
/// value as the schema.
fn schema_of(user_version: u32) -> (u32, u32) {
    let schema = user_version & 0xffff;
    let oldest = match user_version >> 16 {
        0 => schema,
        oldest => oldest,
    };
    (schema, oldest)
}
/// How long a writer waits for another shim's transaction before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Held-out maxima kept per profile (the newest; older ones came from a less converged model).
pub const CALIBRATION_KEEP: usize = 4096;
/// Recorded events kept per profile (the newest runs that fit; always the newest run), from
/// which the tiered filter's projected model is trained. Two bytes each.
pub const TRACE_KEEP_EVENTS: u64 = 2 << 20;
/// Kubernetes workloads remembered per profile (the most recently seen).
pub const WORKLOADS_KEEP: u64 = 100;

/// Errors of the store. Each names the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory or file could not be created or opened.
    #[error("cannot open the profile store {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The file is not an SQLite database, or it is damaged. The message names the `-wal` and
    /// `-shm` files to move with it: the `-wal` may hold its newest committed changes, which
    /// a store moved without it loses.
    #[error(
        "the profile store {path} is corrupt ({reason}); to start afresh, move it aside together with {path}-wal and {path}-shm where they exist (the -wal may hold its newest changes)"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite said: one line.
        reason: String,
    },
    /// A `-wal` holding committed changes is beside a missing or empty store: the store was
    /// moved or lost without it. SQLite would delete it on making a new store there, so none
    /// is made.
    #[error(
        "the profile store {path} is missing or empty, but {path}-wal beside it holds committed changes of a store, moved or lost without it; to keep them, put the store back, or move {path}-wal and {path}-shm beside the store under its name; to start afresh, move them aside too"
    )]
    OrphanWal {
        /// The database file.
        path: PathBuf,
    },
    /// This user may not write the store: the file, its `-wal` or `-shm`, or its directory,
    /// where SQLite makes those; or it is on a read-only file system.
    #[error(
        "cannot write the profile store {path}: {cause}; the reading commands (`chaperone profile list`, `show`, `export`) can still read it"
    )]
    NotWritable {
        /// The database file.
        path: PathBuf,
        /// Which file or directory, and why.
        cause: String,
        /// What SQLite (or the file system) said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store cannot be read here: SQLite cannot make the file it shares readers with
    /// (`-shm`, beside the store), and committed changes wait in its `-wal`, which only a
    /// shared read applies.
    #[error(
        "cannot read the profile store {path} here: its -shm file cannot be made beside it, and its -wal holds changes only a reader that can make it would see; read it as a user who may write its directory, or copy it with its -wal somewhere writable"
    )]
    Unshared {
        /// The database file.
        path: PathBuf,
    },
    /// A reading command found a store of an older schema, which it does not migrate.
    #[error(
        "the profile store {path} has schema version {found}, older than this build's {SCHEMA_VERSION}; reading does not migrate it: run a command that writes to it (such as `chaperone profile mode`), or let a shim of this version open it"
    )]
    OlderSchema {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: u32,
    },
    /// The database was written by a newer chaperone.
    #[error(
        "the profile store {path} has schema version {found}, newer than this build's {SCHEMA_VERSION}; upgrade chaperone"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: u32,
    },
    /// A query failed.
    #[error("profile store {path}: {op} failed")]
    Sql {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// Why.
        source: rusqlite::Error,
    },
    /// A stored model could not be decoded, or counts could not be merged.
    #[error("profile store {path}: profile {key:?} has an unusable model")]
    Model {
        /// The database file.
        path: PathBuf,
        /// The profile.
        key: String,
        /// Why.
        source: ModelError,
    },
    /// A stored mode name is not one this build knows.
    #[error(
        "profile store {path}: profile {key:?} has an unknown mode {mode:?}; a newer chaperone may have written it (upgrade), or set a known one with `chaperone profile mode`"
    )]
    BadMode {
        /// The database file.
        path: PathBuf,
        /// The profile.
        key: String,
        /// The stored text.
        mode: String,
    },
    /// No profile has this key.
    #[error("no profile {key:?} in {path}")]
    NoProfile {
        /// The database file.
        path: PathBuf,
        /// The key asked for.
        key: String,
    },
}

/// `Result` with [`StoreError`].
pub type Result<T> = std::result::Result<T, StoreError>;

/// What one container (or one learning run) adds to a profile.
#[derive(Debug, Clone)]
pub struct Learning {
    /// The n-gram counts it saw.
    pub counts: NgramCounts,
    /// Containers it stands for (1 for a container run).
    pub containers: u64,
    /// Per-thread maximum window scores against the profile as it was before this run
    /// (held-out data for calibration; empty when the profile was empty).
    pub maxima: Vec<f32>,
    /// The run's threads as recorded, each its syscalls in order (may be empty: nothing is
    /// then kept for the tiered model).
    pub threads: Vec<Piece>,
    /// The container it came from (its id), when a container ran it: the tiered model's
    /// calibration holds one container's runs out together.
    pub container: Option<String>,
    /// The Kubernetes workload the container belonged to, when CRI named it.
    pub workload: Option<Workload>,
}

/// A recorded learning run, as [`Store::runs`] reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Run {
    /// The container it came from (`None`: not a container's, or recorded by a build before
    /// schema 5, 2026-12-07).
    pub container: Option<String>,
    /// Its threads, each its syscalls in order.
    pub threads: Vec<Piece>,
}

/// Where a container ran in Kubernetes: its pod's namespace and name, and its own name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Workload {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container's name in the pod.
    pub container: String,
}

/// A workload that learned into a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The workload.
    pub workload: Workload,
    /// Learning runs it merged.
    pub runs: u64,
    /// Unix time of its last merge.
    pub last: u64,
}

impl Learning {
    /// What a learning supervisor learned, for `containers` containers.
    pub fn new(learned: Learned, containers: u64) -> Self {
        Self {
            counts: learned.counts,
            containers,
            maxima: learned.maxima,
            threads: learned.threads,
            container: None,
            workload: None,
        }
    }
}

/// A profile's summary (no model bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Image digest or name.
    pub key: String,
    /// The per-image mode, if one was set (else the config default applies).
    pub mode: Option<Mode>,
    /// Containers learned.
    pub containers: u64,
    /// Events learned.
    pub events: u64,
    /// Distinct n-grams in the model.
    pub grams: u64,
    /// Held-out maxima available for calibration.
    pub calibration: u64,
    /// New n-grams per 1,000 events over the newest runs holding half the profile's events
    /// (at most 50,000; `None` before anything was learned).
    pub new_per_1000: Option<f64>,
    /// Unix time of the last change.
    pub updated: u64,
}

/// A profile's row as far as it can be read, for commands that show what they can
/// ([`Store::rows`], [`Store::row`]): one unreadable part does not hide the rest.
#[derive(Debug)]
pub struct Row {
    /// The profile's key.
    pub key: String,
    /// Its summary, or why its figures cannot be read (a damaged row). Its `mode` is `None`
    /// when [`Row::mode_error`] is set, which does not mean the config's default.
    pub summary: Result<Summary>,
    /// Why its mode cannot be read: a name this build does not know (written by hand, or by a
    /// newer build), or a value that is not text.
    pub mode_error: Option<StoreError>,
}

/// What a merge changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Merged {
    /// Events added.
    pub events: u64,
    /// n-grams the profile had not seen before.
    pub new_grams: u64,
    /// The mode the promotion policy moved the profile to, if it did.
    pub promoted: Option<Mode>,
}

/// What [`Store::allow_alert`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Allowed {
    /// The alert's window was merged now.
    Merged(Merged),
    /// The alert was allowed before, at this Unix time: nothing was merged again.
    Before {
        /// When it was allowed.
        at: u64,
    },
}

/// A loaded profile, ready to score with.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Its summary.
    pub summary: Summary,
    /// The merged counts.
    pub counts: NgramCounts,
}

/// How much of the file [`Store::open_checked`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Every page (`PRAGMA quick_check`).
    Whole,
    /// Every page only when opening writes (a migration).
    BeforeWrites,
}

/// One state of the store that its reads share: see [`Store::snapshot`]. Dropping it ends
/// the read transaction (nothing was written through it).
#[derive(Debug)]
#[must_use = "the reads share one state only while the snapshot lives"]
pub struct Snapshot<'a> {
    /// Held for its drop, which ends the transaction; `None` inside another snapshot.
    _tx: Option<rusqlite::Transaction<'a>>,
}

/// A connection to the profile store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed, with its directory) the store at `path` and brings its schema
    /// up to date. A damaged file or a newer schema is an error; nothing is overwritten. A new
    /// store is made whole beside the path and linked into place, so no opener finds it empty;
    /// an empty file there, or a `-wal` holding changes beside a missing or empty store (one
    /// moved away without it), is an error, which every open shares.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_checked(path, Check::Whole)
    }

    /// Opens the store like [`Store::open`] for reading, checking the header and the schema
    /// version but not every page: `PRAGMA quick_check` reads the whole file (about 1 ms for
    /// 450 kB, 9 ms for 20 MB on the 2-core test machine), and the shim reads a profile on the
    /// path of every container's start. A damaged page that a read touches is still a
    /// [`StoreError::Corrupt`]. A store that needs a migration, which writes, is checked whole
    /// first; writers (a container's learning) open it with [`Store::open`].
    pub fn open_to_read(path: &Path) -> Result<Self> {
        Self::open_checked(path, Check::BeforeWrites)
    }

    /// Opens the store to read only, as the CLI's reading commands do: nothing is created,
    /// migrated or switched (WAL stays as it is), so a store on a read-only mount or one the
    /// user may only read opens, and a newer CLI leaves a node's store to its shims. When
    /// SQLite cannot open it for shared reading (its `-shm` file cannot be made beside it), it
    /// is read as an immutable snapshot of its main file, without locks, unless its `-wal`
    /// holds changes, which such a read would miss ([`StoreError::Unshared`]). Every page is
    /// checked. A store of an older schema is [`StoreError::OlderSchema`].
    pub fn open_read_only(path: &Path) -> Result<Self> {
        files::look(path)?;
        let open = |uri: bool| -> Result<Self> {
            let (name, mut flags) = if uri {
                let mut name = std::ffi::OsString::from("file:");
                name.push(uri_path(path));
                name.push("?immutable=1");
                (PathBuf::from(name), OpenFlags::SQLITE_OPEN_URI)
            } else {
                (path.to_owned(), OpenFlags::empty())
            };
            flags |= OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = Connection::open_with_flags(&name, flags).map_err(|e| StoreError::Open {
                path: path.to_owned(),
                source: Box::new(e),
            })?;
            let store = Self {
                conn,
                path: path.to_owned(),
            };
            store.check_read_only()?;
            Ok(store)
        };
        match open(false) {
            Err(e) if cannot_share(&e) => {
                immutable_sees_all(path)?;
                open(true)
            }
            done => done,
        }
    }

    /// Whether a store is at `path`, for commands that need one: `false` when nothing is
    /// there, [`StoreError::OrphanWal`] when only a `-wal` holding changes is, and
    /// [`StoreError::Corrupt`] for an empty file.
    pub fn exists(path: &Path) -> Result<bool> {
        Ok(files::look(path)? == files::Found::Present)
    }

    fn check_read_only(&self) -> Result<()> {
        let version = self.usable_schema()?;
        // Pages before the version: a damaged header can read as schema 0, which would tell
        // the user to migrate it, while the writers' open calls it corrupt.
        self.check_pages()?;
        if version < SCHEMA_VERSION {
            return Err(StoreError::OlderSchema {
                path: self.path.clone(),
                found: version,
            });
        }
        Ok(())
    }

    /// Sets the busy timeout and reads the store's schema: a newer one that does not declare
    /// this build's compatible is [`StoreError::NewerSchema`]. Reading the header first also
    /// turns "not a database" into a clear error before anything is written.
    fn usable_schema(&self) -> Result<u32> {
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(self.sql("set the busy timeout"))?;
        let (version, oldest) = schema_of(
            self.conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(self.sql("read the schema version"))?,
        );
        if oldest > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found: version,
            });
        }
        Ok(version)
    }

    /// `PRAGMA quick_check`: every page.
    fn check_pages(&self) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA quick_check")
            .map_err(self.sql("check the database"))?;
        let mut rows = Vec::new();
        for row in stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.sql("check the database"))?
        {
            match row.map_err(self.sql("check the database")) {
                Ok(row) => rows.push(row),
                // The check can fail part-way on what it found: that is one more problem.
                Err(StoreError::Corrupt { reason, .. }) => {
                    rows.push(reason);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if rows != ["ok"] {
            return Err(StoreError::Corrupt {
                path: self.path.clone(),
                reason: first_problem(&rows),
            });
        }
        Ok(())
    }

    fn open_checked(path: &Path, check: Check) -> Result<Self> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(Box::new(e)))?;
        }
        if files::look(path)? == files::Found::Missing {
            // Made whole beside it: errors name the store, not the temporary file.
            files::create(path, |temp| {
                Self::connect(temp, path)?.init(Check::BeforeWrites)
            })?;
            if files::look(path)? == files::Found::Missing {
                return Err(open_err(
                    "the store was made, but nothing is at its path (was it removed at once?)"
                        .into(),
                ));
            }
        }
        let store = Self::connect(path, path)?;
        store.init(check)?;
        Ok(store)
    }

    /// Opens the existing file `file` to read and write, as the store at `path`.
    fn connect(file: &Path, path: &Path) -> Result<Self> {
        let conn = Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Open {
            path: path.to_owned(),
            source: Box::new(e),
        })?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| classify(&self.path, op, source)
    }

    /// Switches the file to WAL (a no-op once it is: a store this build makes is WAL before it
    /// is in place, but one an earlier build made may not be yet). The switch needs the write
    /// lock while this connection holds a read lock; when another connection is doing the same
    /// (a node's first containers starting together), SQLite answers one of them `SQLITE_BUSY`
    /// at once, without the busy handler, to avoid a deadlock. That answer is retried here,
    /// as the busy handler would wait, for up to [`BUSY_TIMEOUT`].
    fn enable_wal(&self) -> Result<()> {
        use rusqlite::ffi::ErrorCode;
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match self.conn.pragma_update(None, "journal_mode", "WAL") {
                Err(e)
                    if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
                done => return done.map_err(self.sql("enable WAL")),
            }
        }
    }

    fn init(&self, check: Check) -> Result<()> {
        let version = self.usable_schema()?;
        if check == Check::Whole || version < SCHEMA_VERSION {
            self.check_pages()?;
        }
        self.enable_wal()?;
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(self.sql("set synchronous"))?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(self.sql("enable foreign keys"))?;
        if version < SCHEMA_VERSION {
            self.migrate()?;
        }
        Ok(())
    }

    /// Applies the migrations after the stored version, each in one transaction. Another shim
    /// may be migrating at the same time: the version is re-read under the write lock.
    fn migrate(&self) -> Result<()> {
        let tx = self.immediate()?;
        let (version, _) = schema_of(
            tx.query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(self.sql("read the schema version"))?,
        );
        for (to, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)
                .map_err(self.sql("migrate the schema"))?;
            // The schema has a handful of versions: the index always fits.
            let oldest = COMPATIBLE_SINCE.get(to).copied().unwrap_or(0);
            let next = i64::from(oldest << 16) | i64::try_from(to + 1).unwrap_or(i64::MAX);
            tx.pragma_update(None, "user_version", next)
                .map_err(self.sql("record the schema version"))?;
        }
        tx.commit().map_err(self.sql("commit the migration"))
    }

    /// Begins a read transaction: while the returned [`Snapshot`] lives, every query of this
    /// store sees one committed state of the file, whatever other connections commit
    /// meanwhile (a WAL reader keeps what it saw at its first read). Taken while one is open,
    /// it is a no-op: the outer one holds the state. Methods that write must not be called
    /// while it lives.
    pub fn snapshot(&self) -> Result<Snapshot<'_>> {
        if !self.conn.is_autocommit() {
            return Ok(Snapshot { _tx: None });
        }
        // Unchecked for the same reason as `immediate`.
        rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Deferred)
            .map(|tx| Snapshot { _tx: Some(tx) })
            .map_err(self.sql("begin a read transaction"))
    }

    fn immediate(&self) -> Result<rusqlite::Transaction<'_>> {
        // Unchecked: it works on `&Connection`, and no transaction is ever nested on one.
        rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(self.sql("begin a write transaction"))
    }

    /// Merges one learning run into profile `key` (created on first use) and, when `policy`
    /// says the profile has converged, promotes it. All in one transaction.
    pub fn merge(
        &self,
        key: &str,
        learning: &Learning,
        policy: Option<&PromotionPolicy>,
    ) -> Result<Merged> {
        let tx = self.immediate()?;
        let merged = self.merge_in(&tx, key, learning, policy)?;
        tx.commit().map_err(self.sql("commit the merge"))?;
        Ok(merged)
    }

    /// Merges alert `alert`'s syscall window (`learning`) into profile `key`, once: an alert
    /// allowed before is not merged again, and what is returned says when it was. The check,
    /// the merge and the record of the alert are one transaction.
    pub fn allow_alert(&self, key: &str, alert: &str, learning: &Learning) -> Result<Allowed> {
        let sql = |op| self.sql(op);
        let tx = self.immediate()?;
        let before: Option<i64> = tx
            .query_row(
                "SELECT at FROM allowed_alerts WHERE key = ?1 AND alert = ?2",
                [key, alert],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("read the allowed alerts"))?;
        if let Some(at) = before {
            return Ok(Allowed::Before { at: to_u64(at) });
        }
        let merged = self.merge_in(&tx, key, learning, None)?;
        tx.execute(
            "INSERT INTO allowed_alerts (key, alert, at) VALUES (?1, ?2, ?3)",
            params![key, alert, to_i64(unix_now())],
        )
        .map_err(sql("record the allowed alert"))?;
        tx.commit().map_err(sql("commit the merge"))?;
        Ok(Allowed::Merged(merged))
    }

    /// [`Store::merge`] inside the write transaction `tx`, which the caller commits.
    fn merge_in(
        &self,
        tx: &rusqlite::Transaction<'_>,
        key: &str,
        learning: &Learning,
        policy: Option<&PromotionPolicy>,
    ) -> Result<Merged> {
        let sql = |op| self.sql(op);
        let row: Option<(Vec<u8>, Option<String>)> = tx
            .query_row(
                "SELECT model, mode FROM profiles WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql("read the profile"))?;
        let model_err = |source| StoreError::Model {
            path: self.path.clone(),
            key: key.to_owned(),
            source,
        };
        let (mut counts, stored_mode) = match row {
            Some((bytes, mode)) => (codec::decode(&bytes).map_err(model_err)?, mode),
            None => (
                NgramCounts::new(learning.counts.order()).map_err(model_err)?,
                None,
            ),
        };
        let before = counts.distinct() as u64;
        counts.merge(&learning.counts).map_err(model_err)?;
        let new_grams = (counts.distinct() as u64).saturating_sub(before);
        let now = unix_now();
        let bytes = codec::encode(&counts);
        tx.execute(
            "INSERT INTO profiles (key, mode, model, containers, events, grams, created, updated)
             VALUES (?1, NULL, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT(key) DO UPDATE SET model = ?2, containers = containers + ?3,
               events = ?4, grams = ?5, updated = ?6",
            params![
                key,
                bytes,
                to_i64(learning.containers),
                to_i64(counts.events()),
                to_i64(counts.distinct() as u64),
                to_i64(now)
            ],
        )
        .map_err(sql("write the profile"))?;
        tx.execute(
            "INSERT INTO learning (key, at, events, new_grams, containers) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                key,
                to_i64(now),
                to_i64(learning.counts.events()),
                to_i64(new_grams),
                to_i64(learning.containers)
            ],
        )
        .map_err(sql("record the learning run"))?;
        let run = tx.last_insert_rowid();
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO calibration (key, score) VALUES (?1, ?2)")
                .map_err(sql("prepare the calibration insert"))?;
            for m in learning.maxima.iter().filter(|m| m.is_finite()) {
                insert
                    .execute(params![key, f64::from(*m)])
                    .map_err(sql("record calibration data"))?;
            }
        }
        tx.execute(
            "DELETE FROM calibration WHERE key = ?1 AND seq NOT IN
               (SELECT seq FROM calibration WHERE key = ?1 ORDER BY seq DESC LIMIT ?2)",
            params![key, to_i64(CALIBRATION_KEEP as u64)],
        )
        .map_err(sql("trim calibration data"))?;
        let recorded: u64 = learning.threads.iter().map(|t| t.syms.len() as u64).sum();
        if recorded > 0 {
            tx.execute(
                "INSERT INTO traces (key, events, data, container, continued)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    key,
                    to_i64(recorded),
                    encode_threads(&learning.threads),
                    learning.container,
                    encode_continued(&learning.threads),
                ],
            )
            .map_err(sql("record the run's threads"))?;
            // Keep the newest runs within TRACE_KEEP_EVENTS (the newest one always).
            tx.execute(
                "DELETE FROM traces WHERE key = ?1 AND seq < (
                   SELECT seq FROM (
                     SELECT seq, SUM(events) OVER (ORDER BY seq DESC) AS newer
                     FROM traces WHERE key = ?1)
                   WHERE newer <= ?2 OR seq = (SELECT MAX(seq) FROM traces WHERE key = ?1)
                   ORDER BY seq LIMIT 1)",
                params![key, to_i64(TRACE_KEEP_EVENTS)],
            )
            .map_err(sql("trim recorded threads"))?;
        }
        if let Some(w) = &learning.workload {
            tx.execute(
                "INSERT INTO workloads (key, namespace, pod, container, runs, last, run)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)
                 ON CONFLICT(key, namespace, pod, container)
                 DO UPDATE SET runs = runs + 1, last = ?5, run = ?6",
                params![key, w.namespace, w.pod, w.container, to_i64(now), run],
            )
            .map_err(sql("record the workload"))?;
            // Pods come and go under generated names: keep the newest WORKLOADS_KEEP.
            tx.execute(
                "DELETE FROM workloads WHERE key = ?1 AND rowid NOT IN
                   (SELECT rowid FROM workloads WHERE key = ?1 ORDER BY run DESC LIMIT ?2)",
                params![key, to_i64(WORKLOADS_KEEP)],
            )
            .map_err(sql("trim workloads"))?;
        }

        let mut promoted = None;
        if let Some(policy) = policy {
            let current = stored_mode.map(|m| self.mode_of(key, m)).transpose()?;
            let learning_now = matches!(current, None | Some(Mode::Learn));
            if learning_now {
                let (containers, events): (i64, i64) = tx
                    .query_row(
                        "SELECT containers, events FROM profiles WHERE key = ?1",
                        [key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(sql("read the profile"))?;
                let rate =
                    new_rate(tx, key, policy.window_events).map_err(sql("read learning runs"))?;
                if converged(policy, to_u64(containers), to_u64(events), rate) {
                    tx.execute(
                        "UPDATE profiles SET mode = ?2 WHERE key = ?1",
                        params![key, policy.to.as_str()],
                    )
                    .map_err(sql("promote the profile"))?;
                    promoted = Some(policy.to);
                }
            }
        }
        Ok(Merged {
            events: learning.counts.events(),
            new_grams,
            promoted,
        })
    }

    /// The summaries of every profile, by key. A profile that cannot be read whole makes it an
    /// error: [`Store::rows`] gives the others too.
    pub fn list(&self) -> Result<Vec<Summary>> {
        self.rows()?
            .into_iter()
            .map(|row| match row.mode_error {
                Some(e) => Err(e),
                None => row.summary,
            })
            .collect()
    }

    /// Every profile, by key, each as far as it can be read: a listing that one damaged row,
    /// or a mode a newer build wrote, does not empty.
    pub fn rows(&self) -> Result<Vec<Row>> {
        let _one_state = self.snapshot()?;
        let keys: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT key FROM profiles ORDER BY key")
                .map_err(self.sql("list profiles"))?;
            let rows = stmt
                .query_map([], |r| r.get(0))
                .map_err(self.sql("list profiles"))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(self.sql("list profiles"))?
        };
        keys.iter()
            .map(|k| {
                self.row(k)?.ok_or_else(|| StoreError::NoProfile {
                    path: self.path.clone(),
                    key: k.clone(),
                })
            })
            .collect()
    }

    /// New n-grams per event of profile `key` over its newest learning runs holding at least
    /// `window` events: the figure the promotion policy compares (with `window_events`), `None`
    /// until the profile has learned that many.
    pub fn new_rate(&self, key: &str, window: u64) -> Result<Option<f64>> {
        new_rate(&self.conn, key, window).map_err(self.sql("read learning runs"))
    }

    /// The summary of profile `key`, if it exists. A mode this build does not know is an
    /// error, as is a figure that cannot be read: [`Store::row`] gives what can be.
    pub fn summary(&self, key: &str) -> Result<Option<Summary>> {
        let Some(row) = self.row(key)? else {
            return Ok(None);
        };
        match row.mode_error {
            Some(e) => Err(e),
            None => row.summary.map(Some),
        }
    }

    /// Profile `key`'s row as far as it can be read, if the profile exists.
    pub fn row(&self, key: &str) -> Result<Option<Row>> {
        // Its figures come from three queries: of one state, or a merge between them would
        // pair one run's totals with another's calibration data.
        let _one_state = self.snapshot()?;
        type Columns = (rusqlite::Result<Option<String>>, rusqlite::Result<Figures>);
        let columns: Option<Columns> = self
            .conn
            .query_row(
                "SELECT mode, containers, events, grams, updated FROM profiles WHERE key = ?1",
                [key],
                |r| Ok((r.get(0), figures(r))),
            )
            .optional()
            .map_err(self.sql("read the profile"))?;
        let Some((mode, figures)) = columns else {
            return Ok(None);
        };
        let mode = mode
            .map_err(self.sql("read the profile's mode"))
            .and_then(|m| m.map(|m| self.mode_of(key, m)).transpose());
        let (mode, mode_error) = match mode {
            Ok(mode) => (mode, None),
            Err(e) => (None, Some(e)),
        };
        let summary = figures
            .map_err(self.sql("read the profile"))
            .and_then(|figures| self.summary_of(key, mode, figures));
        Ok(Some(Row {
            key: key.to_owned(),
            summary,
            mode_error,
        }))
    }

    /// A stored mode name as a [`Mode`].
    fn mode_of(&self, key: &str, mode: String) -> Result<Mode> {
        Mode::from_str(&mode).map_err(|_| StoreError::BadMode {
            path: self.path.clone(),
            key: key.to_owned(),
            mode,
        })
    }

    /// Profile `key`'s summary from its row's `figures` and the queries of its other tables.
    fn summary_of(&self, key: &str, mode: Option<Mode>, figures: Figures) -> Result<Summary> {
        let (containers, events, grams, updated) = figures;
        let calibration: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM calibration WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .map_err(self.sql("count calibration data"))?;
        // Over the newest runs holding half the events (at most 50,000): the recent rate.
        let window = (to_u64(events) / 2).clamp(1, 50_000);
        let new_per_1000 = new_rate(&self.conn, key, window)
            .map_err(self.sql("read learning runs"))?
            .map(|r| r * 1000.0);
        Ok(Summary {
            key: key.to_owned(),
            mode,
            containers: to_u64(containers),
            events: to_u64(events),
            grams: to_u64(grams),
            calibration: to_u64(calibration),
            new_per_1000,
            updated: to_u64(updated),
        })
    }

    /// Profile `key` with its model, if it exists.
    pub fn load(&self, key: &str) -> Result<Option<Profile>> {
        let _one_state = self.snapshot()?;
        let Some(summary) = self.summary(key)? else {
            return Ok(None);
        };
        let counts = self.model(key)?.ok_or_else(|| StoreError::NoProfile {
            path: self.path.clone(),
            key: key.to_owned(),
        })?;
        Ok(Some(Profile { summary, counts }))
    }

    /// The model of profile `key` alone (no summary queries), if the profile exists.
    pub fn model(&self, key: &str) -> Result<Option<NgramCounts>> {
        let bytes: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT model FROM profiles WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.sql("read the model"))?;
        bytes
            .map(|b| {
                codec::decode(&b).map_err(|source| StoreError::Model {
                    path: self.path.clone(),
                    key: key.to_owned(),
                    source,
                })
            })
            .transpose()
    }

    /// The detection threshold of profile `key` at false-alarm rate `far`: `stats::calibrate` of
    /// its held-out window maxima, as a [`window_threshold`]. `None` without calibration data.
    pub fn threshold(&self, key: &str, far: f64) -> Result<Option<f32>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT score FROM calibration WHERE key = ?1")
            .map_err(self.sql("read calibration data"))?;
        let maxima: Vec<f64> = stmt
            .query_map([key], |r| r.get(0))
            .map_err(self.sql("read calibration data"))?
            .collect::<std::result::Result<_, _>>()
            .map_err(self.sql("read calibration data"))?;
        Ok(stats::calibrate(&maxima, far).map(window_threshold))
    }

    /// The recorded runs of profile `key`, oldest first.
    pub fn runs(&self, key: &str) -> Result<Vec<Run>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT data, container, continued FROM traces WHERE key = ?1 ORDER BY seq",
            )
            .map_err(self.sql("read recorded threads"))?;
        let rows: Vec<StoredRun> = stmt
            .query_map([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(self.sql("read recorded threads"))?
            .collect::<std::result::Result<_, _>>()
            .map_err(self.sql("read recorded threads"))?;
        rows.into_iter()
            .map(|(data, container, continued)| {
                let threads = decode_threads(&data)
                    .and_then(|t| with_continued(t, continued.as_deref()))
                    .map_err(|source| StoreError::Model {
                        path: self.path.clone(),
                        key: key.to_owned(),
                        source,
                    })?;
                Ok(Run { container, threads })
            })
            .collect()
    }

    /// The Kubernetes workloads that learned into profile `key`, most recent first.
    pub fn workloads(&self, key: &str) -> Result<Vec<Seen>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT namespace, pod, container, runs, last FROM workloads WHERE key = ?1
                 ORDER BY run DESC",
            )
            .map_err(self.sql("read workloads"))?;
        let rows = stmt
            .query_map([key], |r| {
                Ok(Seen {
                    workload: Workload {
                        namespace: r.get(0)?,
                        pod: r.get(1)?,
                        container: r.get(2)?,
                    },
                    runs: to_u64(r.get(3)?),
                    last: to_u64(r.get(4)?),
                })
            })
            .map_err(self.sql("read workloads"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.sql("read workloads"))
    }

    /// Sets (or with `None` clears) the per-image mode of profile `key`.
    pub fn set_mode(&self, key: &str, mode: Option<Mode>) -> Result<()> {
        let changed = self
            .conn
            .execute(
                "UPDATE profiles SET mode = ?2, updated = ?3 WHERE key = ?1",
                params![key, mode.map(Mode::as_str), to_i64(unix_now())],
            )
            .map_err(self.sql("set the mode"))?;
        self.found(key, changed)
    }

    /// Deletes profile `key` and its history.
    pub fn reset(&self, key: &str) -> Result<()> {
        let tx = self.immediate()?;
        tx.execute("DELETE FROM calibration WHERE key = ?1", [key])
            .map_err(self.sql("reset calibration data"))?;
        tx.execute("DELETE FROM learning WHERE key = ?1", [key])
            .map_err(self.sql("reset learning runs"))?;
        tx.execute("DELETE FROM traces WHERE key = ?1", [key])
            .map_err(self.sql("reset recorded threads"))?;
        tx.execute("DELETE FROM workloads WHERE key = ?1", [key])
            .map_err(self.sql("reset workloads"))?;
        tx.execute("DELETE FROM allowed_alerts WHERE key = ?1", [key])
            .map_err(self.sql("reset allowed alerts"))?;
        let changed = tx
            .execute("DELETE FROM profiles WHERE key = ?1", [key])
            .map_err(self.sql("reset the profile"))?;
        self.found(key, changed)?;
        tx.commit().map_err(self.sql("commit the reset"))
    }

    fn found(&self, key: &str, changed: usize) -> Result<()> {
        if changed == 0 {
            return Err(StoreError::NoProfile {
                path: self.path.clone(),
                key: key.to_owned(),
            });
        }
        Ok(())
    }
}

/// A `profiles` row's containers, events, n-grams and time of its last change.
type Figures = (i64, i64, i64, i64);

/// The [`Figures`] of a `profiles` row read from its columns 1 to 4.
fn figures(r: &rusqlite::Row<'_>) -> rusqlite::Result<Figures> {
    Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

/// Whether a profile with these totals and newest-runs rate of new n-grams per event meets the
/// policy.
pub fn converged(
    policy: &PromotionPolicy,
    containers: u64,
    events: u64,
    rate: Option<f64>,
) -> bool {
    containers >= policy.min_containers
        && events >= policy.min_events
        && rate.is_some_and(|r| r * 10_000.0 < policy.max_new_per_10k)
}

/// New n-grams per event over the newest learning runs that together hold at least `window`
/// events (`None` until there are that many events).
fn new_rate(conn: &Connection, key: &str, window: u64) -> rusqlite::Result<Option<f64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT events, new_grams FROM learning WHERE key = ?1 ORDER BY seq DESC",
    )?;
    let mut rows = stmt.query([key])?;
    let (mut events, mut new) = (0_u64, 0_u64);
    while let Some(row) = rows.next()? {
        // Saturating: a damaged row must not wrap the sums.
        events = events.saturating_add(to_u64(row.get(0)?));
        new = new.saturating_add(to_u64(row.get(1)?));
        if events >= window.max(1) {
            #[allow(clippy::cast_precision_loss)] // a rate
            return Ok(Some(new as f64 / events as f64));
        }
    }
    Ok(None)
}

/// The schema, one migration per version (index 0 takes version 0 to 1). A migration that only
/// adds what older builds can ignore should also declare the oldest schema that can still use
/// the store ([`schema_of`]): its version recorded as `oldest << 16 | version`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE profiles (
        key        TEXT PRIMARY KEY,
        mode       TEXT,
        model      BLOB NOT NULL,
        containers INTEGER NOT NULL,
        events     INTEGER NOT NULL,
        grams      INTEGER NOT NULL,
        created    INTEGER NOT NULL,
        updated    INTEGER NOT NULL
    );
    CREATE TABLE learning (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        key        TEXT NOT NULL REFERENCES profiles(key),
        at         INTEGER NOT NULL,
        events     INTEGER NOT NULL,
        new_grams  INTEGER NOT NULL,
        containers INTEGER NOT NULL
    );
    CREATE INDEX learning_key ON learning(key, seq);
    CREATE TABLE calibration (
        seq   INTEGER PRIMARY KEY AUTOINCREMENT,
        key   TEXT NOT NULL REFERENCES profiles(key),
        score REAL NOT NULL
    );
    CREATE INDEX calibration_key ON calibration(key, seq);
",
    "
    CREATE TABLE traces (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        key    TEXT NOT NULL REFERENCES profiles(key),
        events INTEGER NOT NULL,
        data   BLOB NOT NULL
    );
    CREATE INDEX traces_key ON traces(key, seq);
",
    "
    CREATE TABLE workloads (
        key       TEXT NOT NULL REFERENCES profiles(key),
        namespace TEXT NOT NULL,
        pod       TEXT NOT NULL,
        container TEXT NOT NULL,
        runs      INTEGER NOT NULL,
        last      INTEGER NOT NULL,
        run       INTEGER NOT NULL, -- the learning run (seq) of its last merge: orders them
        PRIMARY KEY (key, namespace, pod, container)
    );
",
    "
    CREATE TABLE allowed_alerts (
        key   TEXT NOT NULL REFERENCES profiles(key),
        alert TEXT NOT NULL, -- chaperone.alert_id
        at    INTEGER NOT NULL,
        PRIMARY KEY (key, alert)
    );
",
    // Schema 4's builds leave both empty (NULL): a run of no known container, whole threads.
    "
    ALTER TABLE traces ADD COLUMN container TEXT;
    ALTER TABLE traces ADD COLUMN continued BLOB; -- per thread a byte, 1: a continuation
",
];

/// Per migration (by index, as [`MIGRATIONS`]), the oldest schema whose builds can still use
/// the store after it (0: only builds that know it).
const COMPATIBLE_SINCE: &[u32] = &[0, 0, 0, 0, 4];

/// A `traces` row: the threads' blob, the container and the continuation flags.
type StoredRun = (Vec<u8>, Option<String>, Option<Vec<u8>>);

/// Format version of a recorded run's blob.
const THREADS_VERSION: u8 = 1;

/// A run's threads as one blob: a version byte, then per thread its length (u32 LE) and its
/// syscalls (u16 LE each). Which are continuations is a column of its own
/// ([`encode_continued`]), so schema 4's builds read the blob as it always was.
fn encode_threads(threads: &[Piece]) -> Vec<u8> {
    let events: usize = threads.iter().map(|t| t.syms.len()).sum();
    let mut out = Vec::with_capacity(1 + 4 * threads.len() + 2 * events);
    out.push(THREADS_VERSION);
    for t in threads.iter().map(|t| &t.syms) {
        // A run records at most MAX_RECORDED_EVENTS (2^20) events.
        out.extend_from_slice(&u32::try_from(t.len()).unwrap_or(u32::MAX).to_le_bytes());
        for s in t {
            out.extend_from_slice(&s.to_le_bytes());
        }
    }
    out
}

/// Per thread a byte, 1 for a continuation; NULL when no thread is one.
fn encode_continued(threads: &[Piece]) -> Option<Vec<u8>> {
    threads
        .iter()
        .any(|t| t.continues)
        .then(|| threads.iter().map(|t| u8::from(t.continues)).collect())
}

/// The decoded threads as pieces, marked from the `continued` column.
fn with_continued(
    threads: Vec<Vec<Sym>>,
    continued: Option<&[u8]>,
) -> std::result::Result<Vec<Piece>, ModelError> {
    let corrupt = |reason| ModelError::Corrupt { offset: 0, reason };
    let flags = match continued {
        None => vec![0; threads.len()],
        Some(flags) if flags.len() == threads.len() => flags.to_vec(),
        Some(_) => return Err(corrupt("continuation flags for another number of threads")),
    };
    threads
        .into_iter()
        .zip(flags)
        .map(|(syms, flag)| match flag {
            0 => Ok(Piece::whole(syms)),
            1 => Ok(Piece::continuation(syms)),
            _ => Err(corrupt("a continuation flag neither 0 nor 1")),
        })
        .collect()
}

fn decode_threads(bytes: &[u8]) -> std::result::Result<Vec<Vec<Sym>>, ModelError> {
    let corrupt = |offset: usize, reason: &'static str| ModelError::Corrupt { offset, reason };
    match bytes.first() {
        Some(&THREADS_VERSION) => {}
        Some(&found) => {
            return Err(ModelError::Version {
                found: u16::from(found),
                supported: u16::from(THREADS_VERSION),
            })
        }
        None => return Err(corrupt(0, "empty recorded run")),
    }
    let mut threads = Vec::new();
    let mut at = 1;
    while at < bytes.len() {
        let len = bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| corrupt(at, "truncated thread length"))?;
        at += 4;
        let end = usize::try_from(len)
            .ok()
            .and_then(|n| n.checked_mul(2))
            .and_then(|n| n.checked_add(at))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| corrupt(at, "thread longer than the data"))?;
        let thread: Vec<Sym> = bytes[at..end]
            .chunks_exact(2)
            .map(|c| Sym::from_le_bytes([c[0], c[1]]))
            .collect();
        // No syscall is numbered at or past the start-of-thread marker: learning one would
        // spill into the next lane of the packed n-grams.
        if let Some(i) = thread.iter().position(|&s| s >= BOS) {
            return Err(corrupt(at + 2 * i, "a recorded syscall past the symbols"));
        }
        threads.push(thread);
        at = end;
    }
    Ok(threads)
}

/// What `PRAGMA quick_check` found, in one line for an error message: its first problem and
/// how many more it lists. Its rows may hold several lines each, and up to 100 of them, with
/// lines that only name the database (`*** in database main ***`), which would bury the
/// advice that follows the reason.
fn first_problem(rows: &[String]) -> String {
    let problems: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("*** in database"))
        .collect();
    match problems.as_slice() {
        [] => "PRAGMA quick_check found a problem it did not describe".to_owned(),
        [one] => (*one).to_owned(),
        [first, rest @ ..] => format!(
            "{first}, and {} more problems `PRAGMA quick_check` lists",
            rest.len()
        ),
    }
}

/// An immutable read sees the main file only: when the store's `-wal` holds changes, they
/// would be missed without a word, so it is [`StoreError::Unshared`] instead.
fn immutable_sees_all(path: &Path) -> Result<()> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(StoreError::Unshared {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// Whether opening for shared reading failed for want of writing beside the file (a WAL
/// store's `-shm`), not for the file itself.
fn cannot_share(error: &StoreError) -> bool {
    use rusqlite::ffi::ErrorCode;
    match error {
        StoreError::NotWritable { .. } => true,
        StoreError::Sql { source, .. } => matches!(
            source.sqlite_error_code(),
            Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly)
        ),
        _ => false,
    }
}

/// `path` for an SQLite URI: absolute, with `%`, `?` and `#` escaped.
fn uri_path(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut out = String::new();
    for c in absolute.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

fn classify(path: &Path, op: &'static str, source: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    let code = source.sqlite_error_code();
    // SQLite's "attempt to write a readonly database" (or "unable to open database file")
    // says neither which file nor why: found here, it is the message.
    let not_writable = matches!(code, Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen))
        .then(|| files::why_not_writable(path))
        .flatten();
    if let Some(cause) = not_writable {
        return StoreError::NotWritable {
            path: path.to_owned(),
            cause,
            source: Box::new(source),
        };
    }
    match code {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.to_owned(),
            reason: source.to_string(),
        },
        _ => StoreError::Sql {
            path: path.to_owned(),
            op,
            source,
        },
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// SQLite integers are signed; counts never reach 2^63.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(seq: &[u16]) -> NgramCounts {
        let mut c = NgramCounts::new(3).unwrap();
        c.learn_sequence(seq);
        c
    }

    fn learning(seq: &[u16], maxima: &[f32]) -> Learning {
        Learning {
            counts: counts(seq),
            containers: 1,
            maxima: maxima.to_vec(),
            threads: vec![seq.to_vec().into()],
            container: None,
            workload: None,
        }
    }

    /// A target below one in the number of held-out maxima is beyond them: the threshold comes
    /// from their tail (ADR 0023), past the highest; a target within them is their quantile.
    #[test]
    fn a_threshold_past_the_held_out_maxima_is_extrapolated() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("profiles.db")).unwrap();
        // 100 maxima, 0.01 apart from 0.01 to 1.0, stored as the f32 the supervisor gives.
        let maxima: Vec<f32> = (1..=100_u16).map(|i| f32::from(i) / 100.0).collect();
        store
            .merge("img", &learning(&[1, 2, 3], &maxima), None)
            .unwrap();
        let within = store.threshold("img", 0.05).unwrap().unwrap();
        assert!((within - 0.95).abs() < 1e-6, "{within}");
        let past = store.threshold("img", 0.0001).unwrap().unwrap();
        let wide: Vec<f64> = maxima.iter().map(|&m| f64::from(m)).collect();
        #[allow(clippy::cast_possible_truncation)]
        let want = stats::calibrate(&wide, 0.0001).unwrap() as f32;
        assert!(past > 1.0 && (past - want).abs() < 1e-5, "{past} vs {want}");
    }

    /// Many first opens of one new file at once, as when a node's first containers start
    /// together: each switches the file to WAL, and none fails for the others' locks.
    #[test]
    fn concurrent_first_opens_of_a_new_store_all_succeed() {
        for round in 0..200 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("profiles.db");
            let barrier = std::sync::Barrier::new(16);
            let failures: Vec<String> = std::thread::scope(|scope| {
                let opens: Vec<_> = (0..16)
                    .map(|i| {
                        let (barrier, path) = (&barrier, &path);
                        scope.spawn(move || {
                            barrier.wait();
                            // The shim's readers (a container's start) and writers (learning).
                            let opened = if i % 2 == 0 {
                                Store::open_to_read(path)
                            } else {
                                Store::open(path)
                            };
                            opened.err().map(|e| e.to_string())
                        })
                    })
                    .collect();
                opens
                    .into_iter()
                    .filter_map(|o| o.join().unwrap())
                    .collect()
            });
            assert!(failures.is_empty(), "round {round}: {failures:?}");
            // Each made a store of its own beside it, and all but one of them were dropped.
            let left: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with("profiles.db"))
                .collect();
            assert!(left.is_empty(), "round {round}: {left:?}");
        }
    }

    /// Reads under a snapshot see one state while another connection merges between them;
    /// a snapshot inside another is the outer one; once it ends, the merge is seen.
    #[test]
    fn reads_under_a_snapshot_see_one_state() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("profiles.db");
        let writer = Store::open(&path).unwrap();
        writer
            .merge("img", &learning(&[1, 2, 3], &[0.5, 0.6]), None)
            .unwrap();
        let reader = Store::open_to_read(&path).unwrap();
        {
            let _outer = reader.snapshot().unwrap();
            let before = reader.summary("img").unwrap().unwrap();
            let threshold = reader.threshold("img", 0.0).unwrap();
            writer
                .merge("img", &learning(&[4, 5, 6, 7], &[9.0]), None)
                .unwrap();
            let _inner = reader.snapshot().unwrap();
            let p = reader.load("img").unwrap().unwrap();
            assert_eq!(p.summary, before);
            assert_eq!(p.counts.events(), 3);
            assert_eq!(reader.threshold("img", 0.0).unwrap(), threshold);
            assert_eq!(reader.runs("img").unwrap().len(), 1);
        }
        let after = reader.summary("img").unwrap().unwrap();
        assert_eq!((after.events, after.calibration), (7, 3));
        assert_eq!(reader.runs("img").unwrap().len(), 2);
    }

    #[test]
    fn merges_add_up_and_reload() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("sub/profiles.db");
        let store = Store::open(&path).unwrap();
        let a = learning(&[1, 2, 3, 1, 2], &[0.5]);
        let b = learning(&[1, 2, 4], &[0.7, 0.9]);
        assert_eq!(
            store.merge("img", &a, None).unwrap().new_grams,
            a.counts.distinct() as u64
        );
        let m = store.merge("img", &b, None).unwrap();
        assert!(m.new_grams > 0 && m.promoted.is_none());
        drop(store);

        let store = Store::open(&path).unwrap();
        let p = store.load("img").unwrap().unwrap();
        let mut want = a.counts.clone();
        want.merge(&b.counts).unwrap();
        assert_eq!(codec::encode(&p.counts), codec::encode(&want));
        assert_eq!(p.summary.containers, 2);
        assert_eq!(p.summary.calibration, 3);
        assert_eq!(p.summary.mode, None);
        assert_eq!(store.threshold("img", 0.0).unwrap(), Some(0.9));
        assert!(store.load("other").unwrap().is_none());
        assert!(store.model("other").unwrap().is_none());
        assert_eq!(
            codec::encode(&store.model("img").unwrap().unwrap()),
            codec::encode(&want)
        );
        assert_eq!(store.list().unwrap().len(), 1);
    }

    /// A row whose mode this build cannot read (a name it does not know), or whose figures it
    /// cannot read: `rows` still gives every profile, each with what could be read and why
    /// the rest could not; `summary` and `list`, which the shim's choices rest on, refuse.
    #[test]
    fn rows_give_every_profile_with_what_cannot_be_read_marked() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("p.db");
        let store = Store::open(&path).unwrap();
        for key in ["a", "b", "c"] {
            store.merge(key, &learning(&[1, 2], &[0.5]), None).unwrap();
        }
        store.set_mode("a", Some(Mode::Monitor)).unwrap();
        store
            .conn
            .execute_batch(
                "UPDATE profiles SET mode = 'Enforce' WHERE key = 'b';
                 UPDATE profiles SET events = 'many' WHERE key = 'c';",
            )
            .unwrap();
        let rows = store.rows().unwrap();
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        let a = rows[0].summary.as_ref().unwrap();
        assert_eq!((a.mode, a.containers), (Some(Mode::Monitor), 1));
        assert!(rows[0].mode_error.is_none());
        let b = rows[1].summary.as_ref().unwrap();
        assert_eq!((b.mode, b.calibration), (None, 1));
        let err = rows[1].mode_error.as_ref().unwrap();
        assert!(
            matches!(err, StoreError::BadMode { mode, .. } if mode == "Enforce"),
            "{err:?}"
        );
        assert!(rows[2].mode_error.is_none());
        let err = rows[2].summary.as_ref().unwrap_err();
        assert!(err.to_string().contains("read the profile"), "{err}");
        assert!(store.row("none").unwrap().is_none());

        let err = store.summary("b").unwrap_err();
        assert!(matches!(err, StoreError::BadMode { .. }), "{err:?}");
        store.summary("c").unwrap_err();
        store.list().unwrap_err();
        assert_eq!(store.summary("a").unwrap().as_ref(), Some(a));
    }

    #[test]
    fn concurrent_writers_lose_no_update() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("profiles.db");
        drop(Store::open(&path).unwrap());
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let store = Store::open(&path).unwrap();
                    for j in 0..10_u16 {
                        store
                            .merge("img", &learning(&[1, 2, i + 10, j + 100], &[]), None)
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let p = Store::open(&path).unwrap().load("img").unwrap().unwrap();
        assert_eq!(p.summary.containers, 80);
        assert_eq!(p.counts.events(), 80 * 4);
        assert_eq!(p.counts.count(crate::model::pack_symbols(&[1])), 80);
    }

    #[test]
    fn garbage_and_newer_schemas_are_clear_errors_and_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("profiles.db");
        std::fs::write(&path, b"this is not an sqlite database, not at all.......").unwrap();
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("profiles.db"), "{err}");
        assert!(std::fs::read(&path).unwrap().starts_with(b"this is not"));

        let path = tmp.path().join("newer.db");
        drop(Store::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = Store::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found: 99, .. }),
            "{err:?}"
        );
        // Schema 99 usable by builds of the next schema and later: still not this one.
        let set = |raw: u32| {
            Connection::open(&path)
                .unwrap()
                .pragma_update(None, "user_version", raw)
                .unwrap();
        };
        set((SCHEMA_VERSION + 1) << 16 | 99);
        let err = Store::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found: 99, .. }),
            "{err:?}"
        );
    }

    /// A store moved aside without its `-wal`, as "move it aside" once led users to: no new
    /// store is made beside that `-wal`, which SQLite would then delete with the moved store's
    /// newest changes, by any open; the message says how to keep them, and following it
    /// keeps them.
    #[test]
    fn no_store_is_made_beside_a_wal_whose_store_went_away() {
        let tmp = tempfile::tempdir().unwrap();
        let killed = tmp.path().join("killed");
        std::fs::create_dir(&killed).unwrap();
        {
            let store = Store::open(&tmp.path().join("profiles.db")).unwrap();
            store.merge("img", &learning(&[1, 2], &[]), None).unwrap();
            store
                .conn
                .pragma_update(None, "wal_autocheckpoint", 0)
                .unwrap();
            store.set_mode("img", Some(Mode::Enforce)).unwrap();
            // What a writer killed now leaves: the mode only in the `-wal`.
            for name in ["profiles.db", "profiles.db-wal"] {
                std::fs::copy(tmp.path().join(name), killed.join(name)).unwrap();
            }
        }
        let (path, wal) = (killed.join("profiles.db"), killed.join("profiles.db-wal"));
        let aside = killed.join("aside.db");
        std::fs::rename(&path, &aside).unwrap();
        let held = std::fs::read(&wal).unwrap();
        for empty in [false, true] {
            if empty {
                std::fs::write(&path, b"").unwrap();
            }
            for open in [Store::open, Store::open_to_read, Store::open_read_only] {
                let err = open(&path).unwrap_err();
                assert!(matches!(err, StoreError::OrphanWal { .. }), "{err:?}");
                let text = err.to_string();
                for file in [&wal, &killed.join("profiles.db-shm")] {
                    assert!(text.contains(&*file.to_string_lossy()), "{text}");
                }
            }
            let err = Store::exists(&path).unwrap_err();
            assert!(matches!(err, StoreError::OrphanWal { .. }), "{err:?}");
            assert_eq!(std::fs::read(&wal).unwrap(), held, "the -wal is kept");
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"", "nothing made");
        std::fs::remove_file(&path).unwrap();

        // As the message says: the `-wal` beside the store, under its name.
        std::fs::rename(&wal, killed.join("aside.db-wal")).unwrap();
        let store = Store::open(&aside).unwrap();
        let mode = store.summary("img").unwrap().unwrap().mode;
        assert_eq!(mode, Some(Mode::Enforce));
        assert!(!Store::exists(&path).unwrap());
        Store::open(&path).unwrap();
    }

    /// An empty file at the store's path (truncated, or never a store) is corrupt to readers
    /// and writers alike, never a new store to make there; so is one cut short inside its
    /// header, which reads as schema 0. Both are left as they are.
    #[test]
    fn an_empty_or_cut_short_store_is_corrupt_to_every_open() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("profiles.db");
        let store = Store::open(&path).unwrap();
        store.merge("img", &learning(&[1, 2], &[]), None).unwrap();
        store.set_mode("img", Some(Mode::Enforce)).unwrap();
        drop(store);
        for len in [0, 50] {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(len).unwrap();
            // Truncated a while ago: a younger empty file may be a store an older build is
            // still making, and is waited for (the next test).
            let a_minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
            file.set_modified(a_minute_ago).unwrap();
            drop(file);
            for open in [Store::open, Store::open_to_read, Store::open_read_only] {
                let err = open(&path).unwrap_err();
                assert!(matches!(err, StoreError::Corrupt { .. }), "{len}: {err:?}");
                assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "{err}");
            }
        }
    }

    /// An empty file just made at the store's path is a store an older build is making in place
    /// (it writes the first page a moment later): opens wait for it rather than call it
    /// corrupt (until a review of 2026-12-07 they failed, 37 times in 40 rounds of old and new
    /// openers together).
    #[test]
    fn an_empty_store_being_made_in_place_is_waited_for() {
        let tmp = tempfile::tempdir().unwrap();
        let made = tmp.path().join("made.db");
        Store::open(&made)
            .unwrap()
            .merge("img", &learning(&[1, 2], &[]), None)
            .unwrap();
        let bytes = std::fs::read(&made).unwrap();
        let path = tmp.path().join("profiles.db");
        std::fs::File::create(&path).unwrap();
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(200));
                std::fs::write(&path, bytes).unwrap();
            })
        };
        let store = Store::open(&path).unwrap();
        writer.join().unwrap();
        assert_eq!(store.summary("img").unwrap().unwrap().containers, 1);
    }

    /// A store path that is a chain of symbolic links to a store not made yet: the store is made
    /// where the chain ends, as before stores were linked into place (a review of 2026-12-07
    /// found that a link made the open fail); and a `-wal` left there by a store moved aside
    /// without it is seen through the links.
    #[test]
    fn a_store_path_linked_to_a_store_not_made_yet_makes_it_there() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("profiles.db");
        std::fs::create_dir(tmp.path().join("data")).unwrap();
        std::os::unix::fs::symlink("link2", &path).unwrap();
        std::os::unix::fs::symlink("data/real.db", tmp.path().join("link2")).unwrap();
        let real = tmp.path().join("data/real.db");
        Store::open(&path)
            .unwrap()
            .merge("img", &learning(&[1, 2], &[]), None)
            .unwrap();
        assert!(std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(
            Store::open_read_only(&real)
                .unwrap()
                .summary("img")
                .unwrap()
                .unwrap()
                .containers,
            1
        );
        std::fs::remove_file(&real).unwrap();
        std::fs::write(tmp.path().join("data/real.db-wal"), b"frames").unwrap();
        for open in [Store::open, Store::open_to_read, Store::open_read_only] {
            let err = open(&path).unwrap_err();
            assert!(matches!(err, StoreError::OrphanWal { .. }), "{err:?}");
        }
    }

    /// Only a regular file can be a store being made: an empty FIFO at the path is not waited
    /// for.
    #[test]
    fn a_fifo_at_the_store_path_is_not_waited_for() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("profiles.db");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let began = std::time::Instant::now();
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(
            began.elapsed() < std::time::Duration::from_secs(4),
            "it waited"
        );
    }

    /// A reading command's open creates, migrates and switches nothing, and reads a store it
    /// cannot share (here its `-shm` cannot be made: a directory has the name; on a
    /// read-only mount it cannot be created) as an immutable snapshot. An older schema is
    /// refused, untouched.
    #[test]
    fn reading_only_changes_nothing_and_reads_what_it_cannot_share() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("none/profiles.db");
        Store::open_read_only(&missing).unwrap_err();
        assert!(!missing.parent().unwrap().exists(), "nothing created");

        let path = tmp.path().join("profiles.db");
        Store::open(&path)
            .unwrap()
            .merge("img", &learning(&[1, 2], &[]), None)
            .unwrap();
        let read = Store::open_read_only(&path).unwrap();
        assert_eq!(read.summary("img").unwrap().unwrap().containers, 1);
        let err = read.merge("img", &learning(&[1], &[]), None).unwrap_err();
        assert!(err.to_string().contains("profiles.db"), "{err}");
        drop(read);

        let shm = tmp.path().join("profiles.db-shm");
        let _ = std::fs::remove_file(&shm);
        std::fs::create_dir(&shm).unwrap();
        let read = Store::open_read_only(&path).unwrap();
        assert_eq!(read.summary("img").unwrap().unwrap().containers, 1);
        drop(read);
        std::fs::remove_dir(&shm).unwrap();

        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 3)
            .unwrap();
        let err = Store::open_read_only(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::OlderSchema { found: 3, .. }),
            "{err:?}"
        );
        let version: u32 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 3, "not migrated");

        // Changes committed into the WAL and not yet copied back (a writer that died, or a
        // copy of a live store), and no `-shm` to share: an immutable read would miss them,
        // so it is refused, saying why.
        let path = tmp.path().join("wal.db");
        Store::open(&path)
            .unwrap()
            .merge("img", &learning(&[1, 2], &[]), None)
            .unwrap();
        let writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        writer
            .execute("UPDATE profiles SET containers = 7", [])
            .unwrap();
        // Left open for good, as by a writer killed: closing it would checkpoint the WAL.
        std::mem::forget(writer);
        // (A reader that cannot make the `-shm`: a user who may not write the directory; root
        // can, so the check is called as the fallback calls it.)
        assert!(
            std::fs::metadata(tmp.path().join("wal.db-wal"))
                .unwrap()
                .len()
                > 0
        );
        let err = immutable_sees_all(&path).unwrap_err();
        assert!(matches!(err, StoreError::Unshared { .. }), "{err:?}");
        assert!(err.to_string().contains("-wal holds changes"), "{err}");
        immutable_sees_all(&tmp.path().join("profiles.db")).unwrap();
    }

    /// A newer schema that declares this build's schema compatible (it only adds what this
    /// build can ignore) is used as it is: read, written, and not migrated back or forth.
    #[test]
    fn a_newer_schema_that_declares_this_one_compatible_is_used_as_it_is() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("profiles.db");
        Store::open(&path)
            .unwrap()
            .merge("img", &learning(&[1, 2], &[]), None)
            .unwrap();
        let raw = SCHEMA_VERSION << 16 | (SCHEMA_VERSION + 1);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE from_the_future (x INTEGER)")
                .unwrap();
            conn.pragma_update(None, "user_version", raw).unwrap();
        }
        for open in [Store::open, Store::open_to_read] {
            let store = open(&path).unwrap();
            store.merge("img", &learning(&[1, 2], &[]), None).unwrap();
            assert!(store.summary("img").unwrap().is_some());
        }
        let conn = Connection::open(&path).unwrap();
        let after: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(after, raw);
        assert_eq!(schema_of(raw), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        assert_eq!(schema_of(SCHEMA_VERSION), (SCHEMA_VERSION, SCHEMA_VERSION));
    }

    /// Breaks the b-tree root pages of `tables` in the store at `path` (not the header).
    fn break_tables(path: &Path, tables: &[&str]) {
        let conn = Connection::open(path).unwrap();
        let query = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        let page = query("PRAGMA page_size");
        let roots: Vec<i64> = tables
            .iter()
            .map(|t| {
                query(&format!(
                    "SELECT rootpage FROM sqlite_master WHERE name = '{t}'"
                ))
            })
            .collect();
        drop(conn);
        let mut bytes = std::fs::read(path).unwrap();
        for root in roots {
            let offset = usize::try_from((root - 1) * page).unwrap();
            bytes[offset..offset + 8].fill(0xff);
        }
        std::fs::write(path, &bytes).unwrap();
    }

    /// The message of a corrupt store is one line: `quick_check`'s first problem and how many
    /// more it lists. Moving the store aside without its `-wal` would lose the newest
    /// committed changes, so it names both files to move with it.
    #[test]
    fn a_corrupt_store_is_one_line_naming_the_files_to_move_with_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("profiles.db");
        Store::open(&path)
            .unwrap()
            .merge("img", &learning(&[1, 2], &[]), None)
            .unwrap();
        break_tables(&path, &["traces", "workloads", "calibration"]);
        let err = Store::open(&path).unwrap_err();
        let StoreError::Corrupt { reason, .. } = &err else {
            panic!("{err:?}");
        };
        let text = err.to_string();
        assert!(!text.contains('\n') && !text.contains("***"), "{text}");
        // Three broken tables: their pages, and what that breaks further on.
        assert!(reason.starts_with("Tree "), "{reason}");
        assert!(reason.contains("more problems"), "{reason}");
        let (wal, shm) = (
            format!("{}-wal", path.display()),
            format!("{}-shm", path.display()),
        );
        assert!(text.contains(&wal) && text.contains(&shm), "{text}");
        assert!(text.contains("move it aside"), "{text}");
    }

    #[test]
    fn reading_checks_the_pages_it_reads_and_writing_checks_them_all() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("profiles.db");
        let store = Store::open(&path).unwrap();
        let mut l = learning(&[1, 2], &[]);
        l.threads = vec![vec![1, 2, 3].into()];
        store.merge("img", &l, None).unwrap();
        drop(store);
        // Break the b-tree page of the recorded runs (not the header, not the profiles).
        let conn = Connection::open(&path).unwrap();
        let query = |sql| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        let root = query("SELECT rootpage FROM sqlite_master WHERE name = 'traces'");
        let offset = usize::try_from((root - 1) * query("PRAGMA page_size")).unwrap();
        drop(conn);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offset..offset + 8].fill(0xff);
        std::fs::write(&path, &bytes).unwrap();

        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        let reader = Store::open_to_read(&path).unwrap();
        assert!(reader.summary("img").unwrap().is_some(), "profiles intact");
        let err = reader.runs("img").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing rewritten");
    }

    #[test]
    fn recorded_runs_come_back_in_order_and_the_oldest_go_first() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("p.db")).unwrap();
        let mut l = learning(&[1, 2], &[]);
        let first = Run {
            container: Some("c1".into()),
            threads: vec![Piece::continuation(vec![1, 2]), Piece::whole(vec![7])],
        };
        (l.threads, l.container) = (first.threads.clone(), first.container.clone());
        store.merge("img", &l, None).unwrap();
        l.threads = Vec::new();
        store.merge("img", &l, None).unwrap();
        (l.threads, l.container) = (vec![vec![8].into()], None);
        store.merge("img", &l, None).unwrap();
        let second = Run {
            container: None,
            threads: vec![Piece::whole(vec![8])],
        };
        assert_eq!(store.runs("img").unwrap(), vec![first, second]);
        assert!(store.runs("other").unwrap().is_empty());

        // Runs of half the cap each: only the newest two fit.
        let half = usize::try_from(TRACE_KEEP_EVENTS / 2).unwrap();
        for sym in 10..13 {
            l.threads = vec![vec![sym; half].into()];
            store.merge("img", &l, None).unwrap();
        }
        let runs = store.runs("img").unwrap();
        assert_eq!(runs.len(), 2);
        let first_sym = |r: &Run| r.threads[0].syms[0];
        assert_eq!((first_sym(&runs[0]), first_sym(&runs[1])), (11, 12));
        // A run over the cap alone is still kept.
        l.threads = vec![vec![13; half * 3].into()];
        store.merge("img", &l, None).unwrap();
        assert_eq!(store.runs("img").unwrap().len(), 1);
        store.reset("img").unwrap();
        assert!(store.runs("img").unwrap().is_empty());
    }

    #[test]
    fn a_damaged_recorded_run_is_a_clear_error() {
        let threads: Vec<Vec<Sym>> = vec![vec![1, 2, 3], vec![], vec![65_000]];
        let pieces: Vec<Piece> = threads.iter().cloned().map(Piece::whole).collect();
        let blob = encode_threads(&pieces);
        assert_eq!(decode_threads(&blob).unwrap(), threads);
        for bad in [&blob[..blob.len() - 1], &blob[..3], &[][..], &[9, 0][..]] {
            assert!(decode_threads(bad).is_err(), "{bad:?}");
        }
        // A symbol at or past the start marker (65,534) would spill into the next lane of a
        // packed n-gram when learned.
        for past in [BOS, Sym::MAX] {
            let err = decode_threads(&encode_threads(&[vec![1, past].into()])).unwrap_err();
            assert!(err.to_string().contains("past the symbols"), "{err}");
        }
        // The continuation flags: one per thread, each 0 or 1.
        assert_eq!(encode_continued(&pieces), None);
        assert_eq!(with_continued(threads.clone(), None).unwrap(), pieces);
        assert_eq!(
            with_continued(threads.clone(), Some(&[0, 1, 0])).unwrap()[1],
            Piece::continuation(Vec::new())
        );
        for bad in [&[0, 1][..], &[0, 2, 0][..]] {
            let err = with_continued(threads.clone(), Some(bad)).unwrap_err();
            assert!(err.to_string().contains("continuation flag"), "{err}");
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("p.db");
        let store = Store::open(&path).unwrap();
        store.merge("img", &learning(&[1, 2], &[]), None).unwrap();
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE traces SET data = x'0107'", [])
            .unwrap();
        let err = store.runs("img").unwrap_err();
        assert!(matches!(err, StoreError::Model { .. }), "{err:?}");
        assert!(err.to_string().contains("img"), "names the profile: {err}");

        // `chaperone profile reset` clears it: the profile learns afresh.
        store.reset("img").unwrap();
        assert!(store.runs("img").unwrap().is_empty());
        store.merge("img", &learning(&[1, 2], &[]), None).unwrap();
        assert_eq!(store.runs("img").unwrap().len(), 1);
    }

    #[test]
    fn a_model_learning_cannot_make_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("p.db");
        let store = Store::open(&path).unwrap();
        store
            .merge("img", &learning(&[1, 2, 3], &[]), None)
            .unwrap();
        Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE profiles SET model = ?1",
                [crate::model::codec::tests::FORGED],
            )
            .unwrap();
        let err = store.model("img").unwrap_err();
        let StoreError::Model { source, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(
            source
                .to_string()
                .contains("counted more often than its suffix"),
            "{source}"
        );
        store.load("img").unwrap_err();
    }

    /// `chaperone alerts allow`: an alert's window merges once; the same alert again merges
    /// nothing and says when it was allowed; another alert merges; a reset forgets them.
    #[test]
    fn an_alert_is_allowed_once() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("p.db")).unwrap();
        store
            .merge("img", &learning(&[1, 2, 3], &[]), None)
            .unwrap();
        let window = learning(&[1, 7, 8], &[]);
        let Allowed::Merged(m) = store.allow_alert("img", "a1", &window).unwrap() else {
            panic!("the first allow merges");
        };
        assert_eq!(m.events, 3);
        let once = store.load("img").unwrap().unwrap();
        assert_eq!(once.summary.events, 6);
        let again = store.allow_alert("img", "a1", &window).unwrap();
        let Allowed::Before { at } = again else {
            panic!("the second allow merges nothing: {again:?}");
        };
        assert!(at > 0 && at <= unix_now());
        let twice = store.load("img").unwrap().unwrap();
        assert_eq!(twice.counts, once.counts);
        assert_eq!(twice.summary, once.summary);
        assert_eq!(store.runs("img").unwrap().len(), 2);
        let other = store.allow_alert("img", "a2", &window).unwrap();
        assert!(matches!(other, Allowed::Merged(_)), "{other:?}");
        assert_eq!(store.load("img").unwrap().unwrap().summary.events, 9);

        store.reset("img").unwrap();
        store
            .merge("img", &learning(&[1, 2, 3], &[]), None)
            .unwrap();
        let after_reset = store.allow_alert("img", "a1", &window).unwrap();
        assert!(matches!(after_reset, Allowed::Merged(_)), "{after_reset:?}");
    }

    #[test]
    fn a_version_1_store_is_migrated_and_keeps_its_profiles() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("p.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO profiles VALUES ('old', 'enforce', ?1, 3, 4, 5, 0, 0)",
                [codec::encode(&counts(&[1, 2, 3, 4]))],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let s = store.summary("old").unwrap().unwrap();
        assert_eq!((s.mode, s.containers), (Some(Mode::Enforce), 3));
        assert!(store.runs("old").unwrap().is_empty());
        store.merge("old", &learning(&[1, 2], &[]), None).unwrap();
        assert_eq!(store.runs("old").unwrap().len(), 1);
        let allowed = store
            .allow_alert("old", "a1", &learning(&[3, 4], &[]))
            .unwrap();
        assert!(matches!(allowed, Allowed::Merged(_)), "{allowed:?}");
        let version: u32 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        // Schema 5 declares schema 4's builds compatible.
        assert_eq!(version, 4 << 16 | SCHEMA_VERSION);
        assert_eq!(schema_of(version), (SCHEMA_VERSION, 4));
    }

    #[test]
    fn workloads_are_recorded_newest_first_and_reset_with_the_profile() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("p.db")).unwrap();
        let workload = |pod: &str| Workload {
            namespace: "shop".into(),
            pod: pod.into(),
            container: "web".into(),
        };
        for pod in ["a", "b", "a"] {
            let run = Learning {
                workload: Some(workload(pod)),
                ..learning(&[1, 2, 3], &[])
            };
            store.merge("img", &run, None).unwrap();
        }
        store
            .merge("img", &learning(&[1, 2, 3], &[]), None)
            .unwrap();
        let seen = store.workloads("img").unwrap();
        let pods: Vec<(&str, u64)> = seen
            .iter()
            .map(|s| (s.workload.pod.as_str(), s.runs))
            .collect();
        assert_eq!(pods, [("a", 2), ("b", 1)]);
        assert_eq!(seen[0].workload, workload("a"));
        assert!(store.workloads("other").unwrap().is_empty());
        store.reset("img").unwrap();
        assert!(store.workloads("img").unwrap().is_empty());
    }

    #[test]
    fn workloads_keep_the_newest() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("p.db")).unwrap();
        let total = WORKLOADS_KEEP + 5;
        for i in 0..total {
            let run = Learning {
                workload: Some(Workload {
                    namespace: "ns".into(),
                    pod: format!("pod-{i}"),
                    container: "c".into(),
                }),
                ..learning(&[1, 2], &[])
            };
            store.merge("img", &run, None).unwrap();
        }
        let seen = store.workloads("img").unwrap();
        assert_eq!(seen.len() as u64, WORKLOADS_KEEP);
        assert_eq!(seen[0].workload.pod, format!("pod-{}", total - 1));
        assert!(seen.iter().all(|s| s.workload.pod != "pod-0"));
    }

    #[test]
    fn policy_promotes_once_converged() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("p.db")).unwrap();
        let policy = PromotionPolicy {
            min_containers: 3,
            min_events: 30,
            max_new_per_10k: 1.0,
            window_events: 20,
            to: Mode::Enforce,
        };
        let seq: Vec<u16> = [1, 2, 3, 4].repeat(5);
        for _ in 0..2 {
            assert_eq!(
                store
                    .merge("img", &learning(&seq, &[]), Some(&policy))
                    .unwrap()
                    .promoted,
                None
            );
        }
        let m = store
            .merge("img", &learning(&seq, &[]), Some(&policy))
            .unwrap();
        assert_eq!(m.promoted, Some(Mode::Enforce));
        // The rate it compared: the newest run (20 events, the window) taught nothing new; all
        // three runs hold 60 events, so a wider window has no rate yet; the first run's new
        // n-grams count over the widest one there is.
        assert_eq!(store.new_rate("img", 20).unwrap(), Some(0.0));
        assert_eq!(store.new_rate("img", 61).unwrap(), None);
        assert!(store.new_rate("img", 60).unwrap().is_some_and(|r| r > 0.0));
        assert_eq!(
            store.summary("img").unwrap().unwrap().mode,
            Some(Mode::Enforce)
        );
        // An explicit mode is never overridden by the policy.
        store.set_mode("img", Some(Mode::Monitor)).unwrap();
        assert_eq!(
            store
                .merge("img", &learning(&seq, &[]), Some(&policy))
                .unwrap()
                .promoted,
            None
        );
        store.reset("img").unwrap();
        assert!(store.summary("img").unwrap().is_none());
        assert!(matches!(
            store.set_mode("img", None),
            Err(StoreError::NoProfile { .. })
        ));
    }
}
