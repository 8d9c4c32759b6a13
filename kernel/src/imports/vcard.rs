//! vCard 3.0 (RFC 2426) and 4.0 (RFC 6350) read as rows: each card becomes
//! one row of fixed columns, so a vCard import maps like a spreadsheet.

use std::io::BufRead;

/// The columns a card is read into.
pub const COLUMNS: &[&str] = &[
    "UID",
    "FN",
    "N.family",
    "N.given",
    "EMAIL",
    "TEL",
    "TITLE",
    "ORG",
    "CATEGORIES",
    "NOTE",
];

/// One property of a card: `group.NAME;PARAM=x:value`.
struct Property {
    name: String,
    params: Vec<(String, String)>,
    value: String,
}

fn parse_property(line: &str) -> Option<Property> {
    // The value starts at the first colon outside a quoted parameter value.
    let mut in_quotes = false;
    let mut split = None;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => {
                split = Some(i);
                break;
            }
            _ => {}
        }
    }
    let split = split?;
    let (head, value) = (&line[..split], &line[split + 1..]);
    let mut parts = head.split(';');
    let name = parts.next()?;
    let name = name.rsplit('.').next().unwrap_or(name).to_ascii_uppercase();
    let params = parts
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_ascii_uppercase(), v.trim_matches('"').to_owned()),
            // vCard 2.1/3.0 bare types: `TEL;CELL:...`.
            None => ("TYPE".to_owned(), p.to_owned()),
        })
        .collect();
    Some(Property {
        name,
        params,
        value: value.to_owned(),
    })
}

/// Splits a structured value at unescaped `sep` and unescapes each part.
fn components(value: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') | Some('N') => cur.push('\n'),
                Some(other) => cur.push(other),
                None => {}
            },
            c if c == sep => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn unescape(value: &str) -> String {
    components(value, '\u{0}').concat()
}

fn is_preferred(p: &Property) -> bool {
    p.params.iter().any(|(k, v)| {
        (k == "PREF" && v == "1")
            || (k == "TYPE" && v.split(',').any(|t| t.eq_ignore_ascii_case("pref")))
    })
}

/// A card's cells in [`COLUMNS`] order.
pub fn cells(card: &str) -> Vec<String> {
    let mut row = vec![String::new(); COLUMNS.len()];
    let mut emails: Vec<(bool, String)> = Vec::new();
    let mut phones: Vec<String> = Vec::new();
    let mut categories: Vec<String> = Vec::new();
    for line in card.lines() {
        let Some(p) = parse_property(line) else {
            continue;
        };
        match p.name.as_str() {
            "UID" => {
                row[0] = unescape(&p.value)
                    .trim_start_matches("urn:uuid:")
                    .to_owned()
            }
            "FN" => row[1] = unescape(&p.value),
            "N" => {
                let n = components(&p.value, ';');
                row[2] = n.first().cloned().unwrap_or_default();
                row[3] = n.get(1).cloned().unwrap_or_default();
            }
            "EMAIL" => emails.push((is_preferred(&p), unescape(&p.value))),
            "TEL" => phones.push(unescape(p.value.trim_start_matches("tel:"))),
            "TITLE" => row[6] = unescape(&p.value),
            "ORG" => {
                row[7] = components(&p.value, ';')
                    .into_iter()
                    .next()
                    .unwrap_or_default()
            }
            "CATEGORIES" => categories.extend(components(&p.value, ',')),
            "NOTE" => row[9] = unescape(&p.value),
            _ => {}
        }
    }
    // The preferred address first: it becomes the primary one.
    emails.sort_by_key(|(pref, _)| !*pref);
    row[4] = emails
        .into_iter()
        .map(|(_, e)| e)
        .collect::<Vec<_>>()
        .join("; ");
    row[5] = phones.join("; ");
    row[8] = categories
        .into_iter()
        .filter(|c| !c.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    row
}

/// Reads cards one at a time, unfolding continuation lines.
pub struct Cards<R> {
    inner: R,
    line: String,
    /// A logical line read ahead (the next physical line decides whether
    /// the current one continues).
    pending: Option<String>,
    /// The physical line the current card started on.
    pub start_line: u64,
    lines_read: u64,
}

impl<R: BufRead> Cards<R> {
    pub fn new(inner: R) -> Self {
        Cards {
            inner,
            line: String::new(),
            pending: None,
            start_line: 0,
            lines_read: 0,
        }
    }

    /// The next logical (unfolded) line, or none at the end.
    fn logical(&mut self) -> std::io::Result<Option<String>> {
        let mut current = match self.pending.take() {
            Some(l) => l,
            None => match self.physical()? {
                Some(l) => l,
                None => return Ok(None),
            },
        };
        loop {
            match self.physical()? {
                Some(next) if next.starts_with([' ', '\t']) => current.push_str(&next[1..]),
                Some(next) => {
                    self.pending = Some(next);
                    return Ok(Some(current));
                }
                None => return Ok(Some(current)),
            }
        }
    }

    fn physical(&mut self) -> std::io::Result<Option<String>> {
        self.line.clear();
        if self.inner.read_line(&mut self.line)? == 0 {
            return Ok(None);
        }
        self.lines_read += 1;
        Ok(Some(self.line.trim_end_matches(['\r', '\n']).to_owned()))
    }

    /// The next card's text (BEGIN to END, unfolded), or none at the end.
    pub fn next_card(&mut self) -> std::io::Result<Option<String>> {
        let mut card: Option<String> = None;
        while let Some(l) = self.logical()? {
            let upper = l.trim().to_ascii_uppercase();
            if upper == "BEGIN:VCARD" {
                self.start_line = self.lines_read - u64::from(self.pending.is_some());
                card = Some(String::new());
            }
            if let Some(c) = card.as_mut() {
                c.push_str(&l);
                c.push_str("\r\n");
            }
            if upper == "END:VCARD" && card.is_some() {
                return Ok(card);
            }
        }
        // An unfinished last card is still read.
        Ok(card)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_version_3_and_4_cards_with_folding_and_escapes() {
        let text = "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Doe;Jane;;;\r\nFN:Jane Doe\r\nORG:Acme\\, Inc.;Sales\r\nEMAIL;TYPE=INTERNET:jane@home.test\r\nEMAIL;TYPE=INTERNET,PREF:jane@acme.test\r\nTEL;TYPE=CELL:+1 555 0100\r\nNOTE:line one\\nline two with a long\r\n  folded tail\r\nEND:VCARD\r\nBEGIN:VCARD\nVERSION:4.0\nFN:Ann\nitem1.EMAIL;PREF=1:ann@x.test\nCATEGORIES:vip,golf\nEND:VCARD\n";
        let mut cards = Cards::new(text.as_bytes());
        let first = cells(&cards.next_card().unwrap().unwrap());
        assert_eq!(first[2], "Doe");
        assert_eq!(first[3], "Jane");
        assert_eq!(first[4], "jane@acme.test; jane@home.test");
        assert_eq!(first[5], "+1 555 0100");
        assert_eq!(first[7], "Acme, Inc.");
        assert_eq!(first[9], "line one\nline two with a long folded tail");
        assert_eq!(cards.start_line, 1);
        let second = cells(&cards.next_card().unwrap().unwrap());
        assert_eq!(second[1], "Ann");
        assert_eq!(second[4], "ann@x.test");
        assert_eq!(second[8], "vip; golf");
        assert!(cards.next_card().unwrap().is_none());
    }
}
