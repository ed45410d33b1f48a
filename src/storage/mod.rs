//! Database connection, migrations and write transactions; the revocation cache; ceremony state.

mod ceremonies;
pub mod documents;
pub mod groups;
pub mod invitation_limits;
pub mod keyset;
mod lockouts;
pub mod mail_limits;
pub mod rate_limits;
mod redis;
pub mod request_look;
mod revocations;
pub mod session_leases;
mod unit_leases;
mod usage;
pub mod user_cache;

pub use self::redis::Redis;
pub use ceremonies::{CeremonyKind, CeremonyStore, MemoryCeremonyStore, RedisCeremonyStore, unavailable};
pub use lockouts::{LockoutStore, MemoryLockoutStore, RedisLockoutStore, Slot};
pub use revocations::{
    MemoryRevocationStore, RedisRevocationStore, RevocationStore, SessionCheck, UserStamp,
};
pub use usage::UsageThrottle;
pub use user_cache::UserCache;

use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

/// Counts every statement the database runs (tests assert constant query counts with it).
#[derive(Clone, Default)]
pub struct QueryCounter(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl QueryCounter {
    /// Statements run so far.
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Connects to `url` (SQLite or PostgreSQL). SQLite runs in WAL mode with a busy timeout so
/// readers never wait on the writer.
pub async fn connect(url: &str, schema: Option<&str>) -> anyhow::Result<DatabaseConnection> {
    connect_counted(url, schema, None, QueryCounter::default()).await
}

/// [`connect`], counting statements in `counter`.
pub async fn connect_counted(
    url: &str,
    schema: Option<&str>,
    max_connections: Option<u32>,
    counter: QueryCounter,
) -> anyhow::Result<DatabaseConnection> {
    create_sqlite_file_private(url)?;
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(10))
        .max_connections(max_connections.unwrap_or(if url.starts_with("sqlite") { 8 } else { 20 }))
        .min_connections(1);
    if let Some(schema) = schema {
        opts.set_schema_search_path(schema.to_owned());
    }
    opts.map_sqlx_sqlite_opts(|o| {
        use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
        o.journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true)
    });
    opts.map_sqlx_sqlite_pool_opts(|o| {
        o.after_release(|conn, _| {
            Box::pin(async move {
                use sea_orm::sqlx::{Connection, Executor};
                // A connection that comes back still inside a transaction (one SQLite kept
                // open after a COMMIT failed on a full disk, while the driver believes it
                // ended) would run the next write inside it and lose it: closing it rolls
                // that transaction back. `BEGIN` fails exactly when one is open (then the
                // `ROLLBACK` after it does not run); both go in one call to the connection.
                if conn.is_in_transaction() || conn.execute("BEGIN; ROLLBACK").await.is_err() {
                    tracing::warn!("a database connection came back inside a transaction; closed");
                    return Ok(false);
                }
                Ok(true)
            })
        })
    });
    let mut db = Database::connect(opts).await?;
    db.set_metric_callback(move |_info| {
        counter.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    Ok(db)
}

/// The file of an `sqlite:` URL, unless the database lives in memory.
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory");
    (!in_memory).then_some(path)
}

/// Creates a missing SQLite database file readable by its owner only (0600, like the master
/// key): it holds password hashes and sealed secrets. SQLite gives its `-wal` and `-shm` files
/// the database file's permissions.
fn create_sqlite_file_private(url: &str) -> std::io::Result<()> {
    let Some(path) = sqlite_file(url) else { return Ok(()) };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await?;
    Ok(())
}

/// Starts a transaction that will write. On SQLite it takes the write lock at `BEGIN`
/// (`BEGIN IMMEDIATE`), so a read-then-write transaction never fails with `SQLITE_BUSY`
/// when upgrading its lock.
///
/// A `BEGIN` that fails because the connection is gone (a terminated backend, a database
/// restarting) has written nothing, so it is retried on a fresh connection, a few times
/// within about a second, before the caller gets the 503. Nothing later in a transaction is
/// retried here: a statement that failed mid-transaction is rolled back with it, and a
/// `COMMIT` whose outcome is unknown must not be replayed blindly (the caller gets a 503 and
/// decides; see README "Faults").
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, sea_orm::DbErr> {
    let mode = (db.get_database_backend() == DbBackend::Sqlite).then_some(SqliteTransactionMode::Immediate);
    let opts = TransactionOptions { sqlite_transaction_mode: mode, ..Default::default() };
    let mut delay = Duration::from_millis(50);
    for _ in 0..BEGIN_RETRIES {
        match db.begin_with_options(opts).await {
            Err(e) if crate::error::db_fault(&e) == Some(crate::error::DbFault::Unavailable) => {
                tracing::warn!(error = %e, "BEGIN failed on a lost connection; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            r => return r,
        }
    }
    db.begin_with_options(opts).await
}

/// Write transactions of this process, one at a time on SQLite, in arrival order. SQLite admits
/// one writer; without the gate, the connections waiting for its lock poll in SQLite's busy
/// handler, which sleeps up to 100 ms between tries, so the lock sits idle after each commit
/// while waiting writers sleep. Through the gate, the next writer starts the moment the last one
/// ends. PostgreSQL needs no gate (it has none: `enter` is free). A writer that waited past the
/// busy timeout goes on without the gate (SQLite's own lock still decides), so a gate can never
/// hold a write forever.
///
/// On an SQLite file the gate also has a connection of its own that its writes begin on
/// ([`sqlite_writer`]): in the shared pool a write would wait for a free connection behind
/// every read queued before it (64 requests reading, 8 connections), holding up the one writer
/// all the others wait for.
#[derive(Clone)]
pub struct WriteGate(Option<std::sync::Arc<Gate>>);

struct Gate {
    turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    writer: Option<DatabaseConnection>,
}

/// A place in the [`WriteGate`], held until the transaction ends.
pub type GatePass = Option<tokio::sync::OwnedMutexGuard<()>>;

impl WriteGate {
    /// The gate for `db`: a real one on SQLite, none on PostgreSQL. Writes begin on `writer`
    /// when there is one (SQLite: [`sqlite_writer`]), else on `db`.
    pub fn for_database(db: &DatabaseConnection, writer: Option<DatabaseConnection>) -> Self {
        Self(
            (db.get_database_backend() == DbBackend::Sqlite)
                .then(|| std::sync::Arc::new(Gate { turn: std::sync::Arc::default(), writer })),
        )
    }

    /// Waits for this process's previous write transactions to end (SQLite).
    pub async fn enter(&self) -> GatePass {
        let gate = self.0.as_ref()?;
        tokio::time::timeout(SQLITE_BUSY_TIMEOUT, gate.turn.clone().lock_owned()).await.ok()
    }

    /// Waits for the gate ([`WriteGate::enter`]), then begins a write transaction
    /// ([`begin_write`]) on the gate's own connection, else on `db`.
    pub async fn begin(
        &self,
        db: &DatabaseConnection,
    ) -> Result<(GatePass, DatabaseTransaction), sea_orm::DbErr> {
        let pass = self.enter().await;
        let db = self.0.as_ref().and_then(|g| g.writer.as_ref()).unwrap_or(db);
        Ok((pass, begin_write(db).await?))
    }
}

impl Default for WriteGate {
    /// No gate: writes begin at once, on the connection they are given.
    fn default() -> Self {
        Self(None)
    }
}

/// Connections of the pool an SQLite file's readers share when the writes have one of their own
/// (the pool's default less that one: the same eight in all, each with its page cache).
const SQLITE_READERS: u32 = 7;

/// [`connect_counted`], and for an SQLite file also its write connection (a pool of one, opened
/// like the others: WAL, busy timeout, counted in `counter`) for [`WriteGate`]; the readers'
/// pool then has [`SQLITE_READERS`] connections unless `max_connections` says otherwise. No
/// write connection for PostgreSQL or an in-memory SQLite database (a second connection would
/// open a second database).
pub async fn connect_with_writer(
    url: &str,
    schema: Option<&str>,
    max_connections: Option<u32>,
    counter: QueryCounter,
) -> anyhow::Result<(DatabaseConnection, Option<DatabaseConnection>)> {
    let Some(_) = sqlite_file(url) else {
        return Ok((connect_counted(url, schema, max_connections, counter).await?, None));
    };
    let readers =
        connect_counted(url, schema, max_connections.or(Some(SQLITE_READERS)), counter.clone()).await?;
    let writer = connect_counted(url, None, Some(1), counter).await?;
    Ok((readers, Some(writer)))
}

/// How long SQLite waits for its write lock before answering `SQLITE_BUSY`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Retries of a `BEGIN` that met a lost connection (50 + 100 + 200 + 400 ms of waiting).
const BEGIN_RETRIES: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ConnectionTrait as _;

    /// Every reader's connection taken (held in open transactions, as 64 requests reading at
    /// once hold them): a write through the gate still begins at once, on its own connection,
    /// where one on the shared pool waits for a reader to finish.
    #[tokio::test]
    async fn an_sqlite_write_does_not_wait_for_the_readers_pool() {
        let dir = std::env::temp_dir().join(format!("janua-writer-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("w.db").display());
        let (db, writer) = connect_with_writer(&url, None, None, QueryCounter::default()).await.unwrap();
        assert!(writer.is_some(), "an SQLite file gets a write connection");
        let memory =
            connect_with_writer("sqlite::memory:", None, None, QueryCounter::default()).await.unwrap();
        assert!(memory.1.is_none(), "an in-memory database gets none");
        let gate = WriteGate::for_database(&db, writer);
        let mut readers = Vec::new();
        for _ in 0..SQLITE_READERS {
            readers.push(db.begin().await.unwrap());
        }
        let pool_write = tokio::time::timeout(Duration::from_millis(300), begin_write(&db)).await;
        assert!(pool_write.is_err(), "the readers' pool has no connection free");
        let (_pass, txn) = tokio::time::timeout(Duration::from_secs(2), gate.begin(&db))
            .await
            .expect("the write begins without waiting for a reader")
            .unwrap();
        txn.execute_unprepared("CREATE TABLE t (x INTEGER)").await.unwrap();
        txn.commit().await.unwrap();
        drop(readers);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_file("sqlite://janua.db?mode=rwc"), Some("janua.db"));
        assert_eq!(sqlite_file("sqlite:/var/lib/janua/j.db"), Some("/var/lib/janua/j.db"));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://x.db?mode=memory&cache=shared"), None);
        assert_eq!(sqlite_file("postgres://localhost/x"), None);
    }
}
