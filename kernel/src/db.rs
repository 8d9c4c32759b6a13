//! The database: connecting, migrating, and the few places where SQLite and
//! PostgreSQL need different SQL (JSON access, full-text search).

pub mod dialect;
pub mod search;

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use crate::error::{Error, Result};

/// Opens the pool for `url` and applies pending migrations.
///
/// SQLite gets WAL journaling, foreign keys on and a busy timeout, so several
/// connections of one process can write without `database is locked` errors.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection> {
    let backend = backend_of(url)?;
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    if backend == DbBackend::Sqlite {
        options.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // SQLite's default page cache is 2 MiB: a database of millions
                // of rows then reads its index pages through the kernel on
                // every insert. Measured with trellis-bench (docs/benchmarks.md).
                .pragma("cache_size", "-65536")
                .pragma("mmap_size", "1073741824")
                .pragma("temp_store", "memory")
        });
    }
    let db = Database::connect(options).await?;
    optimize(&db).await?;
    Ok(db)
}

/// Lets SQLite refresh its planner statistics where tables have grown
/// (`PRAGMA optimize`, every table, bounded work). Without them SQLite assumes an
/// equality on any index is selective: a tenant with a million contacts
/// then gets its `tenant_id` index walked where a primary-key lookup of a
/// hundred search hits would do (measured: 1.6 s against milliseconds;
/// docs/benchmarks.md). PostgreSQL's autovacuum analyses on its own.
pub async fn optimize(db: &DatabaseConnection) -> Result<()> {
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared("PRAGMA optimize=0x10002").await?;
    }
    Ok(())
}

/// Opens a transaction that will write. On SQLite it takes the write lock at
/// `BEGIN` (IMMEDIATE): a deferred transaction that reads and then writes can
/// fail with SQLITE_BUSY when another writer got in between, which waiting
/// cannot resolve. PostgreSQL ignores the mode.
pub async fn write_tx(db: &DatabaseConnection) -> Result<DatabaseTransaction> {
    Ok(db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?)
}

/// Opens a write transaction confined to the caller's tenant. On PostgreSQL
/// the transaction runs as the `trellis_tenant` role with the tenant set,
/// so row-level security admits that tenant's rows only (the second wall
/// behind every query's own `tenant_id` condition; see migration m0003).
/// One extra statement, in the same round trip as nothing else: measured in
/// `docs/benchmarks.md`.
pub async fn tenant_tx(
    db: &DatabaseConnection,
    ctx: &crate::context::RequestContext,
) -> Result<DatabaseTransaction> {
    let tx = write_tx(db).await?;
    if db.get_database_backend() == DbBackend::Postgres {
        // A UUID's text form is hex and dashes: safe to splice.
        tx.execute_unprepared(&format!(
            "SET LOCAL ROLE trellis_tenant; SELECT set_config('trellis.tenant_id', '{}', true)",
            ctx.tenant_id
        ))
        .await?;
    }
    Ok(tx)
}

/// Steps out of the tenant role for one query inside a tenant transaction
/// (PostgreSQL; a no-op elsewhere, or when the transaction is not in the
/// role); returns whether it did, for [`resume_tenant_role`].
///
/// Why: under row-level security PostgreSQL uses only leakproof operators
/// as index conditions, and the JSON `->>` of custom-field expression
/// indexes is not leakproof, so a look-up by a custom field (a unique
/// check) reads every row of the tenant's type instead of one index entry:
/// O(n) per write, an MLS import at 35 listings/s. The queries run this way
/// keep their own `tenant_id` condition (the first wall); only they leave
/// the second.
pub async fn leave_tenant_role<C: ConnectionTrait>(db: &C) -> Result<bool> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(false);
    }
    let in_role = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_user = 'trellis_tenant' AS in_role",
        ))
        .await?
        .map(|r| r.try_get::<bool>("", "in_role"))
        .transpose()?
        .unwrap_or(false);
    if in_role {
        db.execute_unprepared("RESET ROLE").await?;
    }
    Ok(in_role)
}

/// Returns to the tenant role left by [`leave_tenant_role`].
pub async fn resume_tenant_role<C: ConnectionTrait>(db: &C, left: bool) -> Result<()> {
    if left {
        db.execute_unprepared("SET LOCAL ROLE trellis_tenant")
            .await?;
    }
    Ok(())
}

/// Refreshes PostgreSQL's planner statistics of `tables` (names the code
/// chose, never input), for jobs that grow a table much faster than
/// autovacuum follows. SQLite plans from its indexes without them.
pub async fn analyze(db: &DatabaseConnection, tables: &[&str]) -> Result<()> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared(&format!("ANALYZE {}", tables.join(", ")))
            .await?;
    }
    Ok(())
}

/// Serialises the writers of one tenant's `scope` until the transaction
/// ends, for checks that read before they write (a unique value, a cycle in
/// the account tree). PostgreSQL takes a transaction-scoped advisory lock;
/// SQLite write transactions are serial already.
pub async fn lock_scope<C: ConnectionTrait>(
    db: &C,
    tenant_id: uuid::Uuid,
    scope: &str,
) -> Result<()> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_raw(sea_orm::Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [format!("{tenant_id}/{scope}").into()],
        ))
        .await?;
    }
    Ok(())
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<()> {
    trellis_migrations::up(db).await?;
    Ok(())
}

/// The backend named by a database URL's scheme.
pub fn backend_of(url: &str) -> Result<DbBackend> {
    if url.starts_with("sqlite:") {
        Ok(DbBackend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DbBackend::Postgres)
    } else {
        Err(Error::BadRequest(format!(
            "unsupported database URL `{url}`: use sqlite://PATH or postgres://..."
        )))
    }
}

/// The same PostgreSQL URL naming another database, query options kept
/// (`postgres://u@h:5432/postgres?sslmode=disable` → `.../NAME?sslmode=disable`).
pub fn with_database(url: &str, name: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let base = match main.find("://") {
        Some(i) => match main[i + 3..].find('/') {
            Some(j) => &main[..i + 3 + j],
            None => main,
        },
        None => main,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// True when the error is a unique-constraint violation, on either backend.
pub fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// True when the error is a foreign-key violation, on either backend.
pub fn is_foreign_key_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
    )
}

/// Quick liveness probe of the connection.
pub async fn ping(db: &DatabaseConnection) -> Result<()> {
    db.execute_unprepared("SELECT 1").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_keeps_options() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u@h:5432/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "t1"),
            "postgres://u@h:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u@h:5432", "t1"),
            "postgres://u@h:5432/t1"
        );
    }
}
