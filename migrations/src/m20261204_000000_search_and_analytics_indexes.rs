//! User search and analytics at a million users (issue 19, item 5).
//!
//! - Search: PostgreSQL gets `pg_trgm` GIN indexes on `email` and `lower(name)`, which serve the
//!   `LIKE '%…%'` the search runs; SQLite gets `users_search`, an external-content FTS5 table
//!   with the trigram tokenizer over `users.email` and `users.name`, keyed by the users' rowid
//!   and kept in step by triggers (rowids of `users` survive `VACUUM`; should the index ever be
//!   doubted, `INSERT INTO users_search(users_search) VALUES('rebuild')` rebuilds it).
//! - Analytics: `user_counts_hourly` counts users by the UTC hour of `created_at`
//!   (`YYYY-MM-DDTHH`): `created` all of them, `live` those not deleted, kept exact by triggers
//!   on every insert, delete and change of status in the same transaction as the write.
//!   Indexes serve the other windowed counts: sign-ins by action and time, users by last
//!   sign-in, live sessions by expiry.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE users_search USING fts5(email, name, content='users', content_rowid='rowid', \
     tokenize='trigram')",
    "INSERT INTO users_search(users_search) VALUES('rebuild')",
    "CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN \
     INSERT INTO users_search(rowid, email, name) VALUES (new.rowid, new.email, new.name); END",
    "CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN \
     INSERT INTO users_search(users_search, rowid, email, name) VALUES ('delete', old.rowid, old.email, old.name); END",
    "CREATE TRIGGER users_search_update AFTER UPDATE OF email, name ON users BEGIN \
     INSERT INTO users_search(users_search, rowid, email, name) VALUES ('delete', old.rowid, old.email, old.name); \
     INSERT INTO users_search(rowid, email, name) VALUES (new.rowid, new.email, new.name); END",
    "CREATE TABLE user_counts_hourly (hour VARCHAR(13) NOT NULL PRIMARY KEY, \
     created BIGINT NOT NULL DEFAULT 0, live BIGINT NOT NULL DEFAULT 0)",
    "INSERT INTO user_counts_hourly (hour, created, live) \
     SELECT strftime('%Y-%m-%dT%H', created_at), COUNT(*), SUM(status <> 'deleted') FROM users GROUP BY 1",
    "CREATE TRIGGER users_count_insert AFTER INSERT ON users BEGIN \
     INSERT INTO user_counts_hourly (hour, created, live) \
     VALUES (strftime('%Y-%m-%dT%H', new.created_at), 1, new.status <> 'deleted') \
     ON CONFLICT (hour) DO UPDATE SET created = created + 1, live = live + excluded.live; END",
    "CREATE TRIGGER users_count_delete AFTER DELETE ON users BEGIN \
     UPDATE user_counts_hourly SET created = created - 1, live = live - (old.status <> 'deleted') \
     WHERE hour = strftime('%Y-%m-%dT%H', old.created_at); END",
    "CREATE TRIGGER users_count_update AFTER UPDATE OF status, created_at ON users BEGIN \
     UPDATE user_counts_hourly SET created = created - 1, live = live - (old.status <> 'deleted') \
     WHERE hour = strftime('%Y-%m-%dT%H', old.created_at); \
     INSERT INTO user_counts_hourly (hour, created, live) \
     VALUES (strftime('%Y-%m-%dT%H', new.created_at), 1, new.status <> 'deleted') \
     ON CONFLICT (hour) DO UPDATE SET created = created + 1, live = live + excluded.live; END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER users_count_update",
    "DROP TRIGGER users_count_delete",
    "DROP TRIGGER users_count_insert",
    "DROP TABLE user_counts_hourly",
    "DROP TRIGGER users_search_update",
    "DROP TRIGGER users_search_delete",
    "DROP TRIGGER users_search_insert",
    "DROP TABLE users_search",
];

/// `pg_trgm` is created once per database (in `public`), and several schemas' migrations may
/// race to create it: the loser's error is swallowed.
const PG_EXTENSION: &str = "DO $$ BEGIN CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public; \
     EXCEPTION WHEN unique_violation OR duplicate_object THEN NULL; END $$";

const PG_HOUR: &str = "to_char(%.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')";

fn pg_up(trgm_schema: &str) -> Vec<String> {
    let hour = |row: &str| PG_HOUR.replace('%', row);
    vec![
        format!("CREATE INDEX idx_users_email_trgm ON users USING gin (email {trgm_schema}.gin_trgm_ops)"),
        format!(
            "CREATE INDEX idx_users_name_trgm ON users USING gin (lower(name) {trgm_schema}.gin_trgm_ops)"
        ),
        "CREATE TABLE user_counts_hourly (hour VARCHAR(13) NOT NULL PRIMARY KEY, \
         created BIGINT NOT NULL DEFAULT 0, live BIGINT NOT NULL DEFAULT 0)"
            .into(),
        format!(
            "INSERT INTO user_counts_hourly (hour, created, live) \
             SELECT {}, COUNT(*), COUNT(*) FILTER (WHERE status <> 'deleted') FROM users GROUP BY 1",
            hour("users")
        ),
        format!(
            "CREATE FUNCTION users_count_hourly() RETURNS trigger LANGUAGE plpgsql \
             SET search_path FROM CURRENT AS $$ BEGIN \
             IF TG_OP <> 'INSERT' THEN \
               UPDATE user_counts_hourly SET created = created - 1, \
                 live = live - (OLD.status <> 'deleted')::int WHERE hour = {old}; \
             END IF; \
             IF TG_OP <> 'DELETE' THEN \
               INSERT INTO user_counts_hourly AS c (hour, created, live) \
                 VALUES ({new}, 1, (NEW.status <> 'deleted')::int) \
                 ON CONFLICT (hour) DO UPDATE SET created = c.created + 1, live = c.live + EXCLUDED.live; \
             END IF; \
             RETURN NULL; END $$",
            old = hour("OLD"),
            new = hour("NEW"),
        ),
        "CREATE TRIGGER users_count_hourly AFTER INSERT OR DELETE OR UPDATE OF status, created_at ON users \
         FOR EACH ROW EXECUTE FUNCTION users_count_hourly()"
            .into(),
    ]
}

const PG_DOWN: &[&str] = &[
    "DROP TRIGGER users_count_hourly ON users",
    "DROP FUNCTION users_count_hourly()",
    "DROP TABLE user_counts_hourly",
    "DROP INDEX idx_users_name_trgm",
    "DROP INDEX idx_users_email_trgm",
];

/// Indexes both engines share: (name, table, columns, partial condition).
const COMMON_INDEXES: &[(&str, &str, &str, &str)] = &[
    ("idx_audit_logs_action_created_at", "audit_logs", "action, created_at", ""),
    ("idx_users_last_signin_at", "users", "last_signin_at", ""),
    ("idx_sessions_live_expires_at", "sessions", "expires_at", " WHERE revoked_at IS NULL"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let statements: Vec<String> = match db.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(PG_EXTENSION).await?;
                let row = db
                    .query_one_raw(Statement::from_string(
                        DbBackend::Postgres,
                        "SELECT extnamespace::regnamespace::text AS ns FROM pg_extension WHERE extname = 'pg_trgm'",
                    ))
                    .await?
                    .ok_or_else(|| DbErr::Migration("the pg_trgm extension is missing".into()))?;
                pg_up(&row.try_get::<String>("", "ns")?)
            }
            _ => SQLITE_UP.iter().map(|s| String::from(*s)).collect(),
        };
        for s in statements {
            db.execute_unprepared(&s).await?;
        }
        for (name, table, cols, cond) in COMMON_INDEXES {
            db.execute_unprepared(&format!("CREATE INDEX {name} ON {table} ({cols}){cond}")).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        for (name, ..) in COMMON_INDEXES {
            db.execute_unprepared(&format!("DROP INDEX {name}")).await?;
        }
        let down = if db.get_database_backend() == DbBackend::Postgres { PG_DOWN } else { SQLITE_DOWN };
        for s in down {
            db.execute_unprepared(s).await?;
        }
        Ok(())
    }
}
