//! The file formats an import reads, each turned into rows of text cells
//! under a header: CSV (RFC 4180 and the usual mess), XLSX, JSON lines
//! and vCard. A row keeps its original form too, for the error file.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{Error, Result};
use crate::imports::decode::{self, DecodingReader};
use crate::imports::vcard;

/// The formats an import reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Csv,
    Xlsx,
    Jsonl,
    Vcard,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Jsonl => "jsonl",
            Format::Vcard => "vcard",
        }
    }

    /// The format a name stands for (`csv`, `tsv`, `xlsx`, `jsonl`/`ndjson`,
    /// `vcf`/`vcard`), or the file name's extension.
    pub fn parse(s: &str) -> Option<Format> {
        let ext = s.rsplit('.').next().unwrap_or(s).to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "tsv" | "txt" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "vcf" | "vcard" => Some(Format::Vcard),
            _ => None,
        }
    }
}

/// What an uploaded file looks like.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Sniffed {
    /// The text encoding read (`UTF-8`, `UTF-16LE`, `windows-1252`...).
    #[serde(default)]
    pub encoding: Option<String>,
    /// The CSV delimiter found.
    #[serde(default)]
    pub delimiter: Option<char>,
    /// How the CSV's lines end, read from its first line break.
    #[serde(default)]
    pub line_ending: Option<LineEnding>,
    /// The CSV's last line, when no line break ends it.
    #[serde(default)]
    pub unterminated_line: Option<u64>,
    pub headers: Vec<String>,
    /// The first rows, for choosing a mapping.
    pub sample: Vec<Vec<String>>,
    pub total_rows: i64,
}

/// A row of the file.
#[derive(Debug, Clone)]
pub struct Row {
    /// 1 = the first row after the header.
    pub number: i64,
    /// The line of the file the row starts on (text formats).
    pub line: Option<u64>,
    /// One cell per header.
    pub cells: Vec<String>,
    /// The row as the file had it (cells, a JSON line, a card's text).
    pub raw: Value,
    /// Why the row cannot be read, when it cannot.
    pub problem: Option<String>,
}

fn bad_file(message: impl Into<String>) -> Error {
    Error::field("file", "unreadable", message)
}

fn io(e: std::io::Error) -> Error {
    bad_file(format!("the file cannot be read: {e}"))
}

/// Reads the whole file once: encoding, delimiter, headers, a sample and
/// the number of rows.
pub fn inspect(path: &Path, format: Format) -> Result<Sniffed> {
    let mut sniffed = Sniffed::default();
    if format != Format::Xlsx {
        let mut head = vec![0u8; decode::SNIFF_BYTES];
        let mut f = File::open(path).map_err(io)?;
        let mut n = 0;
        while n < head.len() {
            let got = f.read(&mut head[n..]).map_err(io)?;
            if got == 0 {
                break;
            }
            n += got;
        }
        head.truncate(n);
        let encoding = decode::detect(&head);
        sniffed.encoding = Some(encoding.name().to_owned());
        if format == Format::Csv {
            let text = decode::decode_head(&head, encoding);
            sniffed.delimiter = Some(sniff_delimiter(&text, n == decode::SNIFF_BYTES));
            sniffed.line_ending = Some(LineEnding::of(&text));
        }
    }
    if format == Format::Jsonl {
        sniffed.headers = jsonl_headers(path, &sniffed)?;
    }
    let mut rows = open(path, format, &sniffed)?;
    if format != Format::Jsonl {
        sniffed.headers = rows.headers.clone();
    }
    let mut total = 0;
    while let Some(row) = rows.next_row()? {
        if sniffed.sample.len() < 5 {
            sniffed.sample.push(row.cells);
        }
        total += 1;
    }
    sniffed.total_rows = total;
    if let Reader::Csv(r, _) = &rows.reader
        && !ends_with_break(path)?
    {
        sniffed.unterminated_line = Some(r.position().line());
    }
    if sniffed.headers.is_empty() {
        return Err(bad_file("the file has no header row (or no rows at all)"));
    }
    Ok(sniffed)
}

/// The delimiter that splits the sample's records into the same number of
/// fields most consistently (a comma when nothing does better).
fn sniff_delimiter(sample: &str, truncated: bool) -> char {
    let mut best = (',', 0usize, 0usize);
    for d in [',', ';', '\t', '|'] {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(d as u8)
            .from_reader(sample.as_bytes());
        let mut counts: Vec<usize> = reader
            .records()
            .take(100)
            .filter_map(std::result::Result::ok)
            .map(|r| r.len())
            .collect();
        if truncated {
            // The sample may end inside a record.
            counts.pop();
        }
        let Some(&width) = counts.first() else {
            continue;
        };
        if width < 2 {
            continue;
        }
        let agreeing = counts.iter().filter(|c| **c == width).count();
        // Agreement first, then more columns.
        if (agreeing, width) > (best.1, best.2) {
            best = (d, agreeing, width);
        }
    }
    best.0
}

fn jsonl_headers(path: &Path, sniffed: &Sniffed) -> Result<Vec<String>> {
    let mut headers: Vec<String> = Vec::new();
    let mut rows = open(path, Format::Jsonl, sniffed)?;
    let mut seen = 0;
    while let Some(row) = rows.next_row()? {
        if let Value::Object(map) = &row.raw {
            for (k, v) in map {
                // An object's members are columns of their own (`custom`
                // values as `custom.<key>`, as the CSV export names them).
                let names: Vec<String> = match v {
                    Value::Object(inner) => inner.keys().map(|i| format!("{k}.{i}")).collect(),
                    _ => vec![k.clone()],
                };
                for name in names {
                    if !headers.contains(&name) {
                        headers.push(name);
                    }
                }
            }
        }
        seen += 1;
        if seen >= 1000 {
            break;
        }
    }
    Ok(headers)
}

type Decoded = DecodingReader<BufReader<File>>;

enum Reader {
    Csv(csv::Reader<Decoded>, Lines),
    Lines(BufReader<Decoded>, u64),
    Cards(vcard::Cards<BufReader<Decoded>>),
    Sheet(std::vec::IntoIter<Vec<String>>),
}

/// The rows of a file, in order.
pub struct Rows {
    reader: Reader,
    pub headers: Vec<String>,
    number: i64,
}

/// A JSON line's value for a column: a member, or a member's member
/// (`custom.tier`).
fn json_member<'a>(map: &'a serde_json::Map<String, Value>, column: &str) -> Option<&'a Value> {
    map.get(column).or_else(|| {
        let (outer, inner) = column.split_once('.')?;
        map.get(outer)?.as_object()?.get(inner)
    })
}

/// Whether the file's last character is a line feed (in any of the
/// encodings read: one byte, or two for UTF-16 either way round).
fn ends_with_break(path: &Path) -> Result<bool> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let take = len.min(2);
    f.seek(SeekFrom::Start(len - take)).map_err(io)?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).map_err(io)?;
    Ok(matches!(tail.as_slice(), [.., b'\n'] | [b'\n', 0]))
}

/// How a text file's lines end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LineEnding {
    Lf,
    Crlf,
    /// Classic Mac OS (and some Excel exports): lines end in a lone CR.
    Cr,
}

impl LineEnding {
    /// The ending of the sample's first line break.
    fn of(sample: &str) -> Self {
        match sample.find(['\r', '\n']) {
            Some(i) if sample[i..].starts_with("\r\n") => Self::Crlf,
            Some(i) if sample[i..].starts_with('\r') => Self::Cr,
            _ => Self::Lf,
        }
    }
}

/// Works out the line each CSV record starts on.
///
/// The csv crate counts `\n` bytes, but the position it stamps on a record
/// is taken before blank lines and the rest of a CRLF are skipped, so it is
/// off by the blank lines before the record (and by one for CRLF files).
/// The reader's position after the record is exact, though: the record
/// starts that many lines back, less the breaks inside its quoted values.
struct Lines {
    ending: LineEnding,
    /// The file's last line when no break ends it: a record ending there
    /// was ended by the end of the file, not by a `\n`.
    unterminated_line: Option<u64>,
}

impl Lines {
    fn start_of(&self, rec: &csv::StringRecord, end: u64) -> Option<u64> {
        let at_eof = self.unterminated_line == Some(end);
        let inside: u64 = rec
            .iter()
            .map(|f| f.bytes().filter(|b| *b == b'\n').count() as u64)
            .sum();
        let line = match self.ending {
            // The record's own `\n` has been read, unless the file ended.
            LineEnding::Lf if at_eof => end.saturating_sub(inside),
            LineEnding::Lf => end.saturating_sub(inside + 1),
            // The `\n` after the record's `\r` is read with the next record.
            LineEnding::Crlf => end.saturating_sub(inside),
            // Nothing counts lone CRs; the row number stands alone.
            LineEnding::Cr => return None,
        };
        Some(line)
    }
}

/// Opens a file for reading rows (after [`inspect`] told how).
pub fn open(path: &Path, format: Format, sniffed: &Sniffed) -> Result<Rows> {
    let decoded = || -> Result<Decoded> {
        let encoding = sniffed
            .encoding
            .as_deref()
            .and_then(|e| encoding_rs::Encoding::for_label(e.as_bytes()))
            .unwrap_or(encoding_rs::UTF_8);
        Ok(DecodingReader::new(
            BufReader::with_capacity(256 * 1024, File::open(path).map_err(io)?),
            encoding,
        ))
    };
    let mut rows = match format {
        Format::Csv => {
            let reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .delimiter(sniffed.delimiter.unwrap_or(',') as u8)
                .buffer_capacity(256 * 1024)
                .from_reader(decoded()?);
            Rows {
                reader: Reader::Csv(
                    reader,
                    Lines {
                        ending: sniffed.line_ending.unwrap_or(LineEnding::Lf),
                        unterminated_line: sniffed.unterminated_line,
                    },
                ),
                headers: Vec::new(),
                number: 0,
            }
        }
        Format::Jsonl => Rows {
            reader: Reader::Lines(BufReader::new(decoded()?), 0),
            headers: sniffed.headers.clone(),
            number: 0,
        },
        Format::Vcard => Rows {
            reader: Reader::Cards(vcard::Cards::new(BufReader::new(decoded()?))),
            headers: vcard::COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
            number: 0,
        },
        Format::Xlsx => Rows {
            reader: Reader::Sheet(read_sheet(path)?.into_iter()),
            headers: Vec::new(),
            number: 0,
        },
    };
    if matches!(format, Format::Csv | Format::Xlsx) {
        // The first row that is not blank names the columns.
        let headers = loop {
            match rows.raw_cells()? {
                None => break Vec::new(),
                Some((cells, _)) if blank(&cells) => continue,
                Some((cells, _)) => break cells,
            }
        };
        rows.headers = unique_headers(headers);
    }
    Ok(rows)
}

fn blank(cells: &[String]) -> bool {
    cells.iter().all(|c| c.trim().is_empty())
}

/// Headers trimmed, with repeats told apart (`Email`, `Email (2)`).
fn unique_headers(raw: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, h) in raw.into_iter().enumerate() {
        let base = match h.trim() {
            "" => format!("Column {}", i + 1),
            t => t.to_owned(),
        };
        let mut name = base.clone();
        let mut n = 2;
        while out.contains(&name) {
            name = format!("{base} ({n})");
            n += 1;
        }
        out.push(name);
    }
    out
}

impl Rows {
    /// The next record's cells as the file has them, and its line.
    fn raw_cells(&mut self) -> Result<Option<(Vec<String>, Option<u64>)>> {
        match &mut self.reader {
            Reader::Csv(r, lines) => {
                let mut rec = csv::StringRecord::new();
                match r.read_record(&mut rec) {
                    Ok(false) => Ok(None),
                    Ok(true) => {
                        let end = r.position().line();
                        let line = lines.start_of(&rec, end);
                        Ok(Some((rec.iter().map(str::to_owned).collect(), line)))
                    }
                    Err(e) => Err(bad_file(format!("the CSV cannot be read: {e}"))),
                }
            }
            Reader::Sheet(rows) => Ok(rows.next().map(|r| (r, None))),
            Reader::Lines(..) | Reader::Cards(_) => Ok(None),
        }
    }

    /// The next row, or none at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<Row>> {
        loop {
            let (cells, raw, line, problem) = match &mut self.reader {
                Reader::Csv(..) | Reader::Sheet(_) => {
                    let Some((cells, line)) = self.raw_cells()? else {
                        return Ok(None);
                    };
                    if blank(&cells) {
                        continue;
                    }
                    let raw = Value::from(cells.clone());
                    let width = self.headers.len();
                    let extra = cells.iter().skip(width).any(|c| !c.trim().is_empty());
                    let problem = extra.then(|| {
                        format!(
                            "the row has {} values but the header names {width} columns",
                            cells.len()
                        )
                    });
                    let mut cells = cells;
                    cells.resize(width, String::new());
                    (cells, raw, line, problem)
                }
                Reader::Lines(r, line_no) => {
                    let mut line = String::new();
                    if r.read_line(&mut line).map_err(io)? == 0 {
                        return Ok(None);
                    }
                    *line_no += 1;
                    let text = line.trim_end_matches(['\r', '\n']);
                    if text.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Value>(text) {
                        Ok(Value::Object(map)) => {
                            let cells = self
                                .headers
                                .iter()
                                .map(|h| json_cell(json_member(&map, h)))
                                .collect();
                            (cells, Value::Object(map), Some(*line_no), None)
                        }
                        Ok(_) => (
                            vec![String::new(); self.headers.len()],
                            Value::String(text.to_owned()),
                            Some(*line_no),
                            Some("the line is not a JSON object".to_owned()),
                        ),
                        Err(e) => (
                            vec![String::new(); self.headers.len()],
                            Value::String(text.to_owned()),
                            Some(*line_no),
                            Some(format!("the line is not valid JSON: {e}")),
                        ),
                    }
                }
                Reader::Cards(cards) => {
                    let Some(card) = cards.next_card().map_err(io)? else {
                        return Ok(None);
                    };
                    let cells = vcard::cells(&card);
                    (cells, Value::String(card), Some(cards.start_line), None)
                }
            };
            self.number += 1;
            return Ok(Some(Row {
                number: self.number,
                line,
                cells,
                raw,
                problem,
            }));
        }
    }
}

/// A JSON value as a cell: text as it is, other values as JSON.
fn json_cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The first worksheet of a workbook as text cells (dates as ISO 8601,
/// whole numbers without a decimal point).
/// The most unpacked XML an XLSX workbook may hold: its first sheet is read
/// whole into memory (calamine has no row-by-row reader), so a small file
/// that unpacks to gigabytes is refused before it is read.
const MAX_XLSX_UNPACKED: u64 = 512 << 20;

/// Refuses a workbook whose parts unpack to more than `limit` bytes (the
/// sizes its zip directory declares; the zip reader holds entries to them).
fn check_unpacked(path: &Path, limit: u64) -> Result<()> {
    let mut zip = zip::ZipArchive::new(File::open(path).map_err(io)?)
        .map_err(|e| bad_file(format!("not a readable XLSX workbook: {e}")))?;
    let mut unpacked: u64 = 0;
    for i in 0..zip.len() {
        let entry = zip
            .by_index_raw(i)
            .map_err(|e| bad_file(format!("not a readable XLSX workbook: {e}")))?;
        unpacked = unpacked.saturating_add(entry.size());
    }
    if unpacked > limit {
        return Err(bad_file(format!(
            "the workbook unpacks to {} MiB, more than the {} MiB an XLSX import reads; save it as CSV, which has no such limit",
            unpacked >> 20,
            limit >> 20
        )));
    }
    Ok(())
}

fn read_sheet(path: &Path) -> Result<Vec<Vec<String>>> {
    use calamine::{Data, Reader as _};
    check_unpacked(path, MAX_XLSX_UNPACKED)?;
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(path)
        .map_err(|e| bad_file(format!("not a readable XLSX workbook: {e}")))?;
    let range = book
        .worksheet_range_at(0)
        .ok_or_else(|| bad_file("the workbook has no worksheet"))?
        .map_err(|e| bad_file(format!("the first worksheet cannot be read: {e}")))?;
    let cell = |d: &Data| -> String {
        match d {
            Data::Empty => String::new(),
            Data::String(s) => s.clone(),
            Data::Int(i) => i.to_string(),
            Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            Data::Float(f) => f.to_string(),
            Data::Bool(b) => b.to_string(),
            Data::DateTime(dt) => match dt.as_datetime() {
                Some(t) if t.time() == chrono::NaiveTime::MIN => t.date().to_string(),
                Some(t) => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
                None => dt.as_f64().to_string(),
            },
            Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
            Data::Error(e) => format!("#{e:?}"),
        }
    };
    Ok(range
        .rows()
        .map(|r| {
            let mut cells: Vec<String> = r.iter().map(cell).collect();
            while cells.last().is_some_and(String::is_empty) {
                cells.pop();
            }
            cells
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delimiter_is_the_one_that_agrees() {
        assert_eq!(sniff_delimiter("a;b;c\n1;2,5;3\n4;5;6\n", false), ';');
        assert_eq!(sniff_delimiter("a\tb\n1\t2\n", false), '\t');
        assert_eq!(sniff_delimiter("a,b\n\"x;y\",2\n", false), ',');
        assert_eq!(sniff_delimiter("name\nAnn\n", false), ',');
    }

    #[test]
    fn repeated_and_blank_headers_get_names() {
        let h = unique_headers(vec!["Email".into(), " Email ".into(), "".into()]);
        assert_eq!(h, ["Email", "Email (2)", "Column 3"]);
    }

    /// The line each row starts on, as an editor numbers them, whatever
    /// the line ends, with blank lines, breaks inside quotes and a last
    /// line without its break.
    #[test]
    fn rows_know_the_line_they_start_on() {
        let body = "h1,h2\n\na,1\n\n\"b\nb\",2\nc,3\n\nd,4";
        for (text, want) in [
            (body.to_owned(), vec![Some(3), Some(5), Some(7), Some(9)]),
            (
                body.replace('\n', "\r\n"),
                vec![Some(3), Some(5), Some(7), Some(9)],
            ),
            (body.replace('\n', "\r"), vec![None, None, None, None]),
        ] {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &text).unwrap();
            let sniffed = inspect(file.path(), Format::Csv).unwrap();
            assert_eq!(sniffed.total_rows, 4, "{text:?}");
            let mut rows = open(file.path(), Format::Csv, &sniffed).unwrap();
            let mut got = Vec::new();
            while let Some(row) = rows.next_row().unwrap() {
                got.push(row.line);
            }
            assert_eq!(got, want, "{text:?}");
        }
    }

    /// A workbook that unpacks to more than the limit is refused before
    /// it is read.
    #[test]
    fn a_workbook_that_unpacks_too_far_is_refused() {
        use std::io::Write;
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut zip = zip::ZipWriter::new(std::fs::File::create(file.path()).unwrap());
        zip.start_file(
            "xl/worksheets/sheet1.xml",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(&vec![b' '; 3 << 20]).unwrap();
        zip.finish().unwrap();
        assert!(std::fs::metadata(file.path()).unwrap().len() < 100 << 10);
        assert!(check_unpacked(file.path(), 4 << 20).is_ok());
        let err = check_unpacked(file.path(), 2 << 20).unwrap_err();
        assert!(err.summary().contains("unpacks to 3 MiB"), "{err:?}");
    }
}
