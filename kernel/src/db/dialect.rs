//! SQL that differs between SQLite and PostgreSQL, kept in one place: access
//! to custom field values inside the JSON `custom` column.
//!
//! Custom field keys are validated (`^[a-z][a-z0-9_]*$`) before they reach
//! here, so they are spliced into the SQL as literals; that also keeps the
//! expression text stable, which expression indexes need.

use sea_orm::DbBackend;

/// How a JSON value is compared in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    Text,
    Integer,
    Decimal,
    Boolean,
}

/// The SQL dialect of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect(pub DbBackend);

impl Dialect {
    /// An SQL expression reading custom field `key` as a comparable scalar.
    pub fn custom_value(self, key: &str, kind: JsonKind) -> String {
        match self.0 {
            // Casts are guarded by the JSON type: another tenant may use the
            // same key with another type, and a failing cast on one of its
            // rows would fail this tenant's query.
            DbBackend::Postgres => match kind {
                JsonKind::Text => format!("(\"custom\" ->> '{key}')"),
                JsonKind::Integer => format!(
                    "(CASE WHEN jsonb_typeof(\"custom\" -> '{key}') = 'number' \
                     THEN (\"custom\" ->> '{key}')::numeric::bigint END)"
                ),
                JsonKind::Decimal => format!(
                    "(CASE WHEN (\"custom\" ->> '{key}') ~ '^-?[0-9]+(\\.[0-9]+)?$' \
                     THEN (\"custom\" ->> '{key}')::numeric END)"
                ),
                JsonKind::Boolean => format!(
                    "(CASE WHEN jsonb_typeof(\"custom\" -> '{key}') = 'boolean' \
                     THEN (\"custom\" ->> '{key}')::boolean END)"
                ),
            },
            _ => match kind {
                JsonKind::Decimal => format!("CAST(json_extract(\"custom\", '$.{key}') AS REAL)"),
                _ => format!("json_extract(\"custom\", '$.{key}')"),
            },
        }
    }

    /// An SQL expression reading member `member` of the JSON object in
    /// custom field `key` as text (the blind index of an encrypted value).
    pub fn custom_member(self, key: &str, member: &str) -> String {
        match self.0 {
            DbBackend::Postgres => format!("(\"custom\" -> '{key}' ->> '{member}')"),
            _ => format!("json_extract(\"custom\", '$.{key}.\"{member}\"')"),
        }
    }

    /// An SQL condition, with one placeholder, that holds when the JSON
    /// array in custom field `key` contains the bound text value.
    pub fn custom_array_contains(self, key: &str) -> String {
        match self.0 {
            DbBackend::Postgres => {
                format!("(\"custom\" -> '{key}') @> jsonb_build_array(CAST($1 AS text))")
            }
            _ => format!(
                "EXISTS (SELECT 1 FROM json_each(\"custom\", '$.{key}') WHERE json_each.value = ?)"
            ),
        }
    }

    /// An SQL condition, with one placeholder, that holds when the JSON
    /// array in a built-in column (tags) contains the bound text value.
    pub fn array_column_contains(self, column: &str) -> String {
        match self.0 {
            DbBackend::Postgres => format!("\"{column}\" @> jsonb_build_array(CAST($1 AS text))"),
            _ => {
                format!("EXISTS (SELECT 1 FROM json_each(\"{column}\") WHERE json_each.value = ?)")
            }
        }
    }

    /// The placeholder of the single bound value of a custom SQL expression
    /// (sea-query numbers PostgreSQL's, and counts SQLite's).
    pub fn placeholder(self) -> &'static str {
        match self.0 {
            DbBackend::Postgres => "$1",
            _ => "?",
        }
    }

    /// An SQL expression for the `custom` column without `key`, used when a
    /// custom field definition is deleted.
    pub fn custom_without(self, key: &str) -> String {
        match self.0 {
            DbBackend::Postgres => format!("(\"custom\" - '{key}')"),
            _ => format!("json_remove(\"custom\", '$.{key}')"),
        }
    }

    /// The `YYYY-MM` month of a date or timestamp column, for grouping by
    /// month (SQLite stores both as ISO text, which sorts and cuts the same).
    pub fn year_month(self, column: &str) -> String {
        match self.0 {
            DbBackend::Postgres => format!("to_char(\"{column}\", 'YYYY-MM')"),
            _ => format!("substr(\"{column}\", 1, 7)"),
        }
    }

    /// Case-insensitive "contains" / "starts with" on a text expression, with
    /// one `?` placeholder for the pattern.
    pub fn ilike(self, expr: &str) -> String {
        match self.0 {
            DbBackend::Postgres => format!("{expr} ILIKE $1 ESCAPE '\\'"),
            // SQLite's LIKE is already case-insensitive for ASCII.
            _ => format!("{expr} LIKE ? ESCAPE '\\'"),
        }
    }
}

/// The `n`th bind parameter (from 1) of hand-written SQL: `$n` on
/// PostgreSQL, `?n` on SQLite; numbered on both so one value can be used twice.
pub fn param(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    }
}

/// Escapes `%`, `_` and `\` so user text matches literally inside LIKE.
pub fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_escape("50%_a\\b"), "50\\%\\_a\\\\b");
    }
}
