//! Exporting a list view (its filters and sort) or a whole record type as
//! CSV (RFC 4180), XLSX, JSON lines, vCard 4.0 (contacts) or iCalendar
//! (activities), streamed page by page so memory stays flat however many
//! records match, and never truncated.
//!
//! Each page goes through the same list service as the API: tenant scope,
//! record scope, hidden fields removed, sensitive values revealed only where
//! the caller may see them (each such read audited). The export itself is
//! audited when it starts.

mod xlsx;

use std::sync::Arc;

use axum::body::Bytes;
use futures_util::Stream;
use serde_json::{Value, json};

use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::crm::records::{self, Record};
use crate::error::{Error, Result};
use crate::permissions::{Action, FieldAccess, ObjectType};

/// Records fetched per page while streaming.
const PAGE: u32 = 200;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    /// An Excel workbook (Office Open XML), the columns of the CSV.
    Xlsx,
    JsonLines,
    /// vCard 4.0 (RFC 6350), contacts only.
    VCard,
    /// iCalendar (RFC 5545), activities only: tasks as to-dos, the rest as
    /// events; activities without a time are left out.
    ICalendar,
}

impl Format {
    /// The format asked for, if `object` can be exported in it.
    pub fn parse(s: Option<&str>, object: ObjectType) -> Result<Format> {
        let f = match s.unwrap_or("csv") {
            "csv" => Format::Csv,
            "xlsx" => Format::Xlsx,
            "jsonl" => Format::JsonLines,
            "vcf" | "vcard" if object == ObjectType::Contact => Format::VCard,
            "ics" | "ical" if object == ObjectType::Activity => Format::ICalendar,
            other => {
                let mut options = vec!["csv", "xlsx", "jsonl"];
                match object {
                    ObjectType::Contact => options.push("vcf"),
                    ObjectType::Activity => options.push("ics"),
                    _ => {}
                }
                return Err(Error::field(
                    "format",
                    "invalid_value",
                    format!("`{other}`: use {}", options.join(", ")),
                ));
            }
        };
        Ok(f)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::JsonLines => "application/x-ndjson",
            Format::VCard => "text/vcard; charset=utf-8",
            Format::ICalendar => "text/calendar; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::JsonLines => "jsonl",
            Format::VCard => "vcf",
            Format::ICalendar => "ics",
        }
    }
}

/// The list query of an export: the caller's filters and sort, without
/// paging (the export pages itself) and without `format`.
pub fn list_query(raw: Option<&str>) -> (Option<String>, String) {
    let mut format = None;
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "format" => format = Some(v.into_owned()),
            "limit" | "cursor" | "count" => {}
            _ => {
                q.append_pair(&k, &v);
            }
        }
    }
    (format, q.finish())
}

/// The CSV columns of a record type for the caller: built-in fields and
/// the tenant's custom fields, minus those hidden from it.
pub async fn columns<R: Record>(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
) -> Result<Vec<String>> {
    let mut cols: Vec<String> = ["id"]
        .into_iter()
        .chain(
            crate::plugins::grants::built_in_fields(R::OBJECT)
                .iter()
                .copied(),
        )
        .chain(["created_at", "updated_at", "version"])
        .map(str::to_owned)
        .collect();
    for d in crate::crm::custom_fields::definitions(db, ctx.tenant_id, R::OBJECT).await? {
        cols.push(format!("custom.{}", d.key));
    }
    cols.retain(|c| ctx.policy.field_access(R::OBJECT, c) != Some(FieldAccess::Hidden));
    Ok(cols)
}

/// A cell: text as it is, lists of text joined by `; `, numbers and
/// booleans as JSON, nested values as JSON text, absent as empty.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        // Joined only when no item holds the separator (else JSON, which
        // the import reads back as it was).
        Some(Value::Array(items))
            if items.iter().all(|i| {
                i.as_str()
                    .is_some_and(|s| !s.contains(';') && !s.starts_with('['))
            }) =>
        {
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        }
        Some(other) => other.to_string(),
    }
}

/// A workbook cell: numbers and booleans stay such, the rest is the CSV's
/// text.
fn xlsx_cell(v: Option<&Value>) -> Value {
    match v {
        Some(Value::Number(_) | Value::Bool(_)) => v.cloned().unwrap_or(Value::Null),
        other => Value::String(cell(other)),
    }
}

fn field<'a>(record: &'a Value, column: &str) -> Option<&'a Value> {
    match column.strip_prefix("custom.") {
        Some(k) => record.get("custom")?.get(k),
        None => record.get(column),
    }
}

/// One CSV record (RFC 4180: quoted where needed, CRLF) with `delimiter`.
pub fn csv_line(delimiter: u8, values: impl IntoIterator<Item = String>) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(values)
        .map_err(|e| Error::Internal(e.to_string()))?;
    w.into_inner().map_err(|e| Error::Internal(e.to_string()))
}

/// Checks the caller may export, audits the export, and returns the stream
/// of the file's bytes.
pub async fn stream<R: Record>(
    db: sea_orm::DatabaseConnection,
    ctx: RequestContext,
    format: Format,
    query: String,
) -> Result<impl Stream<Item = std::result::Result<Bytes, std::io::Error>>> {
    ctx.require(R::OBJECT, Action::Export)?;
    ctx.require(R::OBJECT, Action::Read)?;
    // The first page runs now, so a bad filter is a 4xx, not a broken file.
    let first = records::list::<R>(&db, &ctx, Some(&page_query(&query, None))).await?;
    let cols = Arc::new(columns::<R>(&db, &ctx).await?);
    audit::record(
        &db,
        &ctx,
        vec![AuditEntry::new(
            R::OBJECT,
            ctx.tenant_id,
            AuditAction::Export,
            json!({"kind": "list_export", "format": format.extension(), "query": query}),
        )],
    )
    .await?;
    let header = match format {
        Format::Csv => Some(csv_line(b',', cols.iter().cloned())?),
        Format::ICalendar => Some(
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Trellis//Trellis CRM//EN\r\n".to_vec(),
        ),
        Format::JsonLines | Format::VCard | Format::Xlsx => None,
    };
    let book = match format {
        Format::Xlsx => Some(xlsx::Workbook::new(cols.as_ref().clone())?),
        _ => None,
    };
    struct State {
        db: sea_orm::DatabaseConnection,
        ctx: RequestContext,
        query: String,
        page: Option<records::Page<Value>>,
        header: Option<Vec<u8>>,
        book: Option<xlsx::Workbook>,
        done: bool,
    }
    let state = State {
        db,
        ctx,
        query,
        page: Some(first),
        header,
        book,
        done: false,
    };
    Ok(futures_util::stream::unfold(state, move |mut s| {
        let cols = cols.clone();
        async move {
            if s.done {
                return None;
            }
            let mut out = s.header.take().unwrap_or_default();
            let page = s.page.take()?;
            for record in &page.data {
                match format {
                    Format::Csv => {
                        let line = csv_line(b',', cols.iter().map(|c| cell(field(record, c))));
                        match line {
                            Ok(l) => out.extend(l),
                            Err(e) => return Some((Err(std::io::Error::other(e.to_string())), s)),
                        }
                    }
                    Format::Xlsx => {
                        let cells: Vec<Value> =
                            cols.iter().map(|c| xlsx_cell(field(record, c))).collect();
                        let written = match s.book.as_mut() {
                            Some(book) => book.row(&cells),
                            None => Err(Error::Internal("the workbook is gone".to_owned())),
                        };
                        if let Err(e) = written {
                            s.done = true;
                            return Some((Err(std::io::Error::other(e.to_string())), s));
                        }
                    }
                    Format::JsonLines => {
                        out.extend(record.to_string().into_bytes());
                        out.push(b'\n');
                    }
                    Format::VCard => out.extend(crate::crm::cards::vcard(record).into_bytes()),
                    Format::ICalendar => {
                        out.extend(crate::crm::cards::icalendar(record).into_bytes());
                    }
                }
            }
            if page.next_cursor.is_none() && format == Format::ICalendar {
                out.extend(b"END:VCALENDAR\r\n");
            }
            {
                // The workbook's bytes so far; all of them after the last page.
                let bytes = if page.next_cursor.is_none() {
                    s.book.take().map(xlsx::Workbook::finish)
                } else {
                    s.book.as_mut().map(xlsx::Workbook::take)
                };
                match bytes {
                    Some(Ok(b)) => out.extend(b),
                    Some(Err(e)) => {
                        s.done = true;
                        return Some((Err(std::io::Error::other(e.to_string())), s));
                    }
                    None => {}
                }
            }
            match page.next_cursor {
                Some(cursor) => {
                    let next = records::list::<R>(
                        &s.db,
                        &s.ctx,
                        Some(&page_query(&s.query, Some(&cursor))),
                    )
                    .await;
                    match next {
                        Ok(p) => s.page = Some(p),
                        // A failure mid-file ends the stream with an error,
                        // so the client sees a broken transfer, not a
                        // complete-looking short file.
                        Err(e) => {
                            s.done = true;
                            return Some((Err(std::io::Error::other(e.to_string())), s));
                        }
                    }
                }
                None => s.done = true,
            }
            Some((Ok(Bytes::from(out)), s))
        }
    }))
}

fn page_query(query: &str, cursor: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(query.to_owned());
    q.append_pair("limit", &PAGE.to_string());
    if let Some(c) = cursor {
        q.append_pair("cursor", c);
    }
    q.finish()
}
