//! Field checks shared by the record types. Each collects its failures into
//! a list so that one response names every bad field at once.

use sea_orm::{ConnectionTrait, Statement};
use uuid::Uuid;

use crate::context::RequestContext;
use crate::db::dialect::param;
use crate::error::{Error, FieldError, Result};
use crate::permissions::ObjectType;

/// Collected field failures of one write.
#[derive(Debug, Default)]
pub struct Checks(pub Vec<FieldError>);

impl Checks {
    pub fn fail(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, code, message));
    }

    /// Trims text, turns blank into `None`, and bounds its length.
    pub fn text(&mut self, field: &str, value: Option<String>, max: usize) -> Option<String> {
        let v = value
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())?;
        if v.chars().count() > max {
            self.fail(field, "too_long", format!("at most {max} characters"));
        }
        Some(v)
    }

    /// Like [`Checks::text`] for a field that must not be blank.
    pub fn required_text(&mut self, field: &str, value: String, max: usize) -> String {
        match self.text(field, Some(value), max) {
            Some(v) => v,
            None => {
                self.fail(field, "required", format!("{field} is required"));
                String::new()
            }
        }
    }

    /// Checks that `id` is a record of `object` in the caller's tenant.
    pub async fn exists<C: ConnectionTrait>(
        &mut self,
        db: &C,
        ctx: &RequestContext,
        field: &str,
        object: ObjectType,
        id: Option<Uuid>,
    ) -> Result<()> {
        if let Some(id) = id
            && !record_exists(db, ctx, object.table(), id).await?
        {
            self.fail(
                field,
                "not_found",
                format!("no {} with this id", object.as_str()),
            );
        }
        Ok(())
    }

    /// Checks the owner and the linked records of a write, each named by its
    /// field: `(field, object type, id)`.
    pub async fn links<C: ConnectionTrait>(
        &mut self,
        db: &C,
        ctx: &RequestContext,
        owner_id: Option<Uuid>,
        records: &[(&str, ObjectType, Option<Uuid>)],
    ) -> Result<()> {
        self.user_exists(db, ctx, "owner_id", owner_id).await?;
        for (field, object, id) in records {
            self.exists(db, ctx, field, *object, *id).await?;
        }
        Ok(())
    }

    /// Checks that `id` is a user of the caller's tenant.
    pub async fn user_exists<C: ConnectionTrait>(
        &mut self,
        db: &C,
        ctx: &RequestContext,
        field: &str,
        id: Option<Uuid>,
    ) -> Result<()> {
        if let Some(id) = id
            && !record_exists(db, ctx, "users", id).await?
        {
            self.fail(field, "not_found", "no user with this id");
        }
        Ok(())
    }

    /// Ends the checks: an error naming every failed field, if any.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.0))
        }
    }
}

/// Whether `table` holds a row `id` of the caller's tenant.
pub(crate) async fn record_exists<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    table: &str,
    id: Uuid,
) -> Result<bool> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT 1 AS hit FROM {table} WHERE tenant_id = {} AND id = {}",
        param(backend, 1),
        param(backend, 2)
    );
    Ok(db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            vec![ctx.tenant_id.into(), id.into()],
        ))
        .await?
        .is_some())
}

/// A machine name (role key, consent purpose or source): 1-64 lower-case
/// letters, digits and `_`.
pub fn identifier(field: &str, v: &str) -> Result<()> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::field(
            field,
            "invalid_format",
            "use 1-64 lower-case letters, digits and `_`",
        ))
    }
}
