//! Brute-force protection: failed logins and MFA codes counted per account
//! and per IP address in the database (so the count holds across kernel
//! processes), with a lockout once a key fails too often within a window.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, Statement};

use crate::config::Config;
use crate::db::dialect::param;
use crate::error::{Error, Result};

/// The throttle key of an account (tenant + lower-cased email).
pub fn account_key(tenant_id: uuid::Uuid, email: &str) -> String {
    format!("acct:{tenant_id}:{}", email.trim().to_lowercase())
}

pub fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

pub fn mfa_key(user_id: uuid::Uuid) -> String {
    format!("mfa:{user_id}")
}

/// Fails with 429 while any of `keys` is locked out.
pub async fn check<C: ConnectionTrait>(db: &C, keys: &[String]) -> Result<()> {
    let backend = db.get_database_backend();
    let now = crate::clock::now();
    for key in keys {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT locked_until FROM auth_throttle WHERE key = {}",
                    param(backend, 1)
                ),
                [key.clone().into()],
            ))
            .await?;
        let locked: Option<DateTime<Utc>> = match row {
            Some(r) => r.try_get("", "locked_until")?,
            None => None,
        };
        if let Some(until) = locked.filter(|u| *u > now) {
            return Err(Error::TooManyAttempts {
                retry_after: (until - now).num_seconds().max(1) as u64,
            });
        }
    }
    Ok(())
}

/// Counts a failure against `key`, locking it once `max` failures fall in
/// one window. Runs in its own statement so a rolled-back request still
/// counts.
pub async fn fail<C: ConnectionTrait>(db: &C, config: &Config, key: &str, max: i32) -> Result<()> {
    let backend = db.get_database_backend();
    let now = crate::clock::now();
    let window_start = now - TimeDelta::seconds(config.login_window_seconds);
    let lock_until = now + TimeDelta::seconds(config.lockout_seconds);
    let p = |n| param(backend, n);
    // A failure outside the window starts a new one; the lock is set by the
    // same statement once the count reaches `max`.
    let sql = format!(
        "INSERT INTO auth_throttle (key, failures, window_started_at, locked_until) \
         VALUES ({k}, 1, {now}, CASE WHEN 1 >= {max} THEN {until} ELSE NULL END) \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN auth_throttle.window_started_at < {ws} THEN 1 ELSE auth_throttle.failures + 1 END, \
           window_started_at = CASE WHEN auth_throttle.window_started_at < {ws} THEN {now} ELSE auth_throttle.window_started_at END, \
           locked_until = CASE WHEN (CASE WHEN auth_throttle.window_started_at < {ws} THEN 1 ELSE auth_throttle.failures + 1 END) >= {max} \
                          THEN {until} ELSE auth_throttle.locked_until END",
        k = p(1),
        now = p(2),
        max = p(3),
        until = p(4),
        ws = p(5),
    );
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [
            key.into(),
            now.into(),
            max.into(),
            lock_until.into(),
            window_start.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Clears a key after a success.
pub async fn reset<C: ConnectionTrait>(db: &C, key: &str) -> Result<()> {
    let backend = db.get_database_backend();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "DELETE FROM auth_throttle WHERE key = {}",
            param(backend, 1)
        ),
        [key.into()],
    ))
    .await?;
    Ok(())
}
