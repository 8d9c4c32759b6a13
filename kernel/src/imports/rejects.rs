//! The rows an import rejected: as a list with the reasons, and as an
//! error file in the upload's own format (the original columns plus
//! `Import errors`), ready to fix and import again. A mapping suggested
//! for the error file ignores that last column.

use futures_util::Stream;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::entities::import_reject;
use crate::error::Result;
use crate::imports::sources::{Format, Sniffed};
use crate::imports::transform::RowError;

/// The header of the error file's added column.
pub const ERRORS_COLUMN: &str = "Import errors";

/// A rejected row.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reject {
    /// The row's number (1 = the first row after the header).
    pub row: i64,
    /// The line of the file it starts on (text formats).
    pub line: Option<u64>,
    pub errors: Vec<RowError>,
}

fn errors_of(m: &import_reject::Model) -> (Option<u64>, Vec<RowError>) {
    let line = m.errors.get("line").and_then(Value::as_u64);
    let errors = m
        .errors
        .get("errors")
        .cloned()
        .and_then(|e| serde_json::from_value(e).ok())
        .unwrap_or_default();
    (line, errors)
}

/// Up to `limit` rejected rows after row `after`.
pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    import_id: Uuid,
    after: i64,
    limit: u64,
) -> Result<Vec<Reject>> {
    crate::imports::load(db, ctx, import_id).await?;
    let rows = import_reject::Entity::find()
        .filter(import_reject::Column::TenantId.eq(ctx.tenant_id))
        .filter(import_reject::Column::ImportId.eq(import_id))
        .filter(import_reject::Column::RowNumber.gt(after))
        .order_by_asc(import_reject::Column::RowNumber)
        .limit(limit.clamp(1, 1000))
        .all(db)
        .await?;
    Ok(rows
        .iter()
        .map(|m| {
            let (line, errors) = errors_of(m);
            Reject {
                row: m.row_number,
                line,
                errors,
            }
        })
        .collect())
}

/// The reasons as one cell: `Email: not a valid email address; ...`.
fn summary(errors: &[RowError]) -> String {
    errors
        .iter()
        .map(|e| match (&e.column, &e.field) {
            (Some(c), _) => format!("{c}: {}", e.message),
            (None, Some(f)) => format!("{f}: {}", e.message),
            _ => e.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The error file's media type and extension for an upload's format (an
/// XLSX upload gets a CSV error file).
pub fn file_type(format: Format) -> (&'static str, &'static str) {
    match format {
        Format::Csv | Format::Xlsx => ("text/csv; charset=utf-8", "csv"),
        Format::Jsonl => ("application/x-ndjson", "jsonl"),
        Format::Vcard => ("text/vcard; charset=utf-8", "vcf"),
    }
}

fn render(format: Format, source: &Sniffed, m: &import_reject::Model) -> Result<Vec<u8>> {
    let (_, errors) = errors_of(m);
    let why = summary(&errors);
    Ok(match format {
        Format::Csv | Format::Xlsx => {
            let mut cells: Vec<String> = match &m.raw {
                Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
                    .collect(),
                _ => Vec::new(),
            };
            cells.resize(source.headers.len().max(cells.len()), String::new());
            cells.truncate(source.headers.len());
            cells.push(why);
            let d = if format == Format::Csv {
                source.delimiter.unwrap_or(',') as u8
            } else {
                b','
            };
            crate::crm::export::csv_line(d, cells)?
        }
        Format::Jsonl => {
            let line = match &m.raw {
                Value::Object(map) => {
                    let mut map = map.clone();
                    map.insert(ERRORS_COLUMN.to_owned(), Value::String(why));
                    Value::Object(map).to_string()
                }
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{line}\n").into_bytes()
        }
        Format::Vcard => {
            let card = m.raw.as_str().unwrap_or_default();
            let mut note = String::new();
            crate::crm::cards::line(
                &mut note,
                "X-TRELLIS-IMPORT-ERRORS",
                &crate::crm::cards::escape(&why),
            );
            match card.rfind("END:VCARD") {
                Some(at) => format!("{}{note}{}", &card[..at], &card[at..]).into_bytes(),
                None => format!("{card}{note}").into_bytes(),
            }
        }
    })
}

/// The error file, streamed page by page.
pub async fn file(
    db: DatabaseConnection,
    ctx: RequestContext,
    import_id: Uuid,
) -> Result<(
    Format,
    String,
    impl Stream<Item = std::result::Result<axum::body::Bytes, std::io::Error>>,
)> {
    let m = crate::imports::load(&db, &ctx, import_id).await?;
    let format = Format::parse(&m.format).unwrap_or(Format::Csv);
    let source: Sniffed = serde_json::from_value(m.source.clone()).unwrap_or_default();
    let head = match format {
        Format::Csv | Format::Xlsx => {
            let mut headers = source.headers.clone();
            headers.push(ERRORS_COLUMN.to_owned());
            let d = if format == Format::Csv {
                source.delimiter.unwrap_or(',') as u8
            } else {
                b','
            };
            crate::crm::export::csv_line(d, headers.iter().cloned())?
        }
        _ => Vec::new(),
    };
    let stem = m
        .filename
        .rsplit_once('.')
        .map(|(s, _)| s.to_owned())
        .unwrap_or_else(|| m.filename.clone());
    let name = format!("{stem}-errors.{}", file_type(format).1);
    let tenant = ctx.tenant_id;
    let state = (db, Some(head), 0i64, false);
    let stream = futures_util::stream::unfold(state, move |(db, head, after, done)| {
        let source = source.clone();
        async move {
            if let Some(h) = head {
                return Some((Ok(axum::body::Bytes::from(h)), (db, None, after, done)));
            }
            if done {
                return None;
            }
            let page = import_reject::Entity::find()
                .filter(import_reject::Column::TenantId.eq(tenant))
                .filter(import_reject::Column::ImportId.eq(import_id))
                .filter(import_reject::Column::RowNumber.gt(after))
                .order_by_asc(import_reject::Column::RowNumber)
                .limit(1000)
                .all(&db)
                .await;
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    return Some((
                        Err(std::io::Error::other(e.to_string())),
                        (db, None, after, true),
                    ));
                }
            };
            if page.is_empty() {
                return None;
            }
            let last = page.last().map(|r| r.row_number).unwrap_or(after);
            let mut out = Vec::new();
            for r in &page {
                match render(format, &source, r) {
                    Ok(bytes) => out.extend(bytes),
                    Err(e) => {
                        return Some((
                            Err(std::io::Error::other(e.to_string())),
                            (db, None, last, true),
                        ));
                    }
                }
            }
            let done = page.len() < 1000;
            Some((Ok(axum::body::Bytes::from(out)), (db, None, last, done)))
        }
    });
    Ok((format, name, stream))
}
