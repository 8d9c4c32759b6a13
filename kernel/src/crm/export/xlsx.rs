//! A streamed XLSX (Office Open XML) workbook: rows go into the sheet as
//! pages arrive and the zip's bytes are handed on after each page, so an
//! export of millions of records never holds the file in memory.
//!
//! Text is written as inline strings (a shared-string table would need
//! every string before the first row). A sheet holds at most 1,048,576
//! rows (Excel's limit), so a longer export continues on further sheets,
//! each with the header row; the workbook part naming the sheets is
//! written last, which the zip format allows.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

use crate::error::{Error, Result};

/// Rows per sheet, the header included (Excel's limit).
const SHEET_ROWS: usize = 1_048_576;

/// The bytes the zip has written and nobody has taken yet.
#[derive(Clone, Default)]
struct Pipe(Arc<Mutex<Vec<u8>>>);

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("the export buffer was poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct Workbook {
    zip: ZipWriter<StreamWriter<Pipe>>,
    pipe: Pipe,
    header: Vec<String>,
    sheets: usize,
    /// Rows in the open sheet, its header included.
    rows: usize,
}

fn zip_error(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("writing the XLSX file: {e}"))
}

impl Workbook {
    /// Starts the workbook and its first sheet with `header` as row 1.
    pub fn new(header: Vec<String>) -> Result<Workbook> {
        let pipe = Pipe::default();
        let mut book = Workbook {
            zip: ZipWriter::new_stream(pipe.clone()),
            pipe,
            header,
            sheets: 0,
            rows: 0,
        };
        book.start_sheet()?;
        Ok(book)
    }

    fn start_sheet(&mut self) -> Result<()> {
        if self.sheets > 0 {
            self.write(b"</sheetData></worksheet>")?;
        }
        self.sheets += 1;
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            // A sheet of a million wide rows can pass 4 GiB.
            .large_file(true);
        self.zip
            .start_file(format!("xl/worksheets/sheet{}.xml", self.sheets), options)
            .map_err(zip_error)?;
        self.write(
            br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
        )?;
        self.rows = 0;
        let header: Vec<Value> = self.header.iter().cloned().map(Value::String).collect();
        self.row(&header)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.zip.write_all(bytes).map_err(zip_error)
    }

    /// Appends a row: numbers and booleans as such, the rest as text.
    pub fn row(&mut self, cells: &[Value]) -> Result<()> {
        if self.rows == SHEET_ROWS {
            self.start_sheet()?;
        }
        self.rows += 1;
        let r = self.rows;
        let mut xml = format!(r#"<row r="{r}">"#);
        for (i, cell) in cells.iter().enumerate() {
            let at = format!("{}{r}", column_name(i));
            match cell {
                Value::Null => {}
                Value::Number(n) => xml.push_str(&format!(r#"<c r="{at}"><v>{n}</v></c>"#)),
                Value::Bool(b) => {
                    xml.push_str(&format!(r#"<c r="{at}" t="b"><v>{}</v></c>"#, u8::from(*b)));
                }
                Value::String(s) if s.is_empty() => {}
                Value::String(s) => xml.push_str(&format!(
                    r#"<c r="{at}" t="inlineStr"><is><t xml:space="preserve">{}</t></is></c>"#,
                    escape(s)
                )),
                other => xml.push_str(&format!(
                    r#"<c r="{at}" t="inlineStr"><is><t xml:space="preserve">{}</t></is></c>"#,
                    escape(&other.to_string())
                )),
            }
        }
        xml.push_str("</row>");
        self.write(xml.as_bytes())
    }

    /// The bytes written since the last call.
    pub fn take(&mut self) -> Result<Vec<u8>> {
        let mut buf = self
            .pipe
            .0
            .lock()
            .map_err(|_| Error::Internal("the export buffer was poisoned".to_owned()))?;
        Ok(std::mem::take(&mut *buf))
    }

    /// Closes the sheet, writes the parts that name the sheets, and the
    /// zip's directory; the last bytes of the file.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.write(b"</sheetData></worksheet>")?;
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        let sheets = 1..=self.sheets;
        let overrides: String = sheets
            .clone()
            .map(|n| {
                format!(
                    r#"<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#
                )
            })
            .collect();
        let names: String = sheets
            .clone()
            .map(|n| format!(r#"<sheet name="Sheet{n}" sheetId="{n}" r:id="rId{n}"/>"#))
            .collect();
        let rels: String = sheets
            .map(|n| {
                format!(
                    r#"<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{n}.xml"/>"#
                )
            })
            .collect();
        let parts = [
            (
                "xl/workbook.xml".to_owned(),
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>{names}</sheets></workbook>"#
                ),
            ),
            (
                "xl/_rels/workbook.xml.rels".to_owned(),
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>"#
                ),
            ),
            (
                "_rels/.rels".to_owned(),
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
                    .to_owned(),
            ),
            (
                "[Content_Types].xml".to_owned(),
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>{overrides}</Types>"#
                ),
            ),
        ];
        for (name, body) in parts {
            self.zip.start_file(name, options).map_err(zip_error)?;
            self.write(body.as_bytes())?;
        }
        let pipe = self.pipe.clone();
        self.zip.finish().map_err(zip_error)?;
        let mut bytes = pipe
            .0
            .lock()
            .map_err(|_| Error::Internal("the export buffer was poisoned".to_owned()))?;
        Ok(std::mem::take(&mut *bytes))
    }
}

/// `A`, `B`, ... `Z`, `AA`, `AB`... for a zero-based column index.
fn column_name(mut i: usize) -> String {
    let mut name = Vec::new();
    loop {
        name.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    name.reverse();
    String::from_utf8(name).unwrap_or_default()
}

/// Text as XML character data; characters XML 1.0 cannot hold are left out.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_named_as_spreadsheets_name_them() {
        let names: Vec<String> = [0, 1, 25, 26, 27, 51, 52, 701, 702]
            .into_iter()
            .map(column_name)
            .collect();
        assert_eq!(names, ["A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]);
    }

    #[test]
    fn text_is_escaped_for_xml() {
        assert_eq!(escape("a<b & \"c\"\u{1}\n"), "a&lt;b &amp; &quot;c&quot;\n");
    }
}
