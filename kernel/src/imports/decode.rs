//! Text files as they come: UTF-8 with or without a byte-order mark,
//! UTF-16 (marked, or told apart by its zero bytes), or a legacy 8-bit
//! encoding, read as Windows-1252 (the WHATWG reading of Latin-1 too).
//! Everything after this module sees UTF-8.

use std::io::{BufRead, Read};

use encoding_rs::{Decoder, Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};

/// How much of a file is looked at to guess its encoding.
pub const SNIFF_BYTES: usize = 64 * 1024;

/// The encoding of a file, from its first bytes.
pub fn detect(head: &[u8]) -> &'static Encoding {
    if let Some((enc, _)) = Encoding::for_bom(head) {
        return enc;
    }
    // Unmarked UTF-16: text in Latin script has a zero in every other byte.
    let pairs = head.len() / 2;
    if pairs >= 2 {
        let even = head.iter().step_by(2).filter(|b| **b == 0).count();
        let odd = head.iter().skip(1).step_by(2).filter(|b| **b == 0).count();
        if odd * 3 > pairs && even * 10 < pairs {
            return UTF_16LE;
        }
        if even * 3 > pairs && odd * 10 < pairs {
            return UTF_16BE;
        }
    }
    match std::str::from_utf8(head) {
        Ok(_) => UTF_8,
        // A multi-byte character cut off by the end of the sample.
        Err(e) if e.error_len().is_none() => UTF_8,
        Err(_) => WINDOWS_1252,
    }
}

/// Reads UTF-8 out of bytes in `encoding`, dropping a byte-order mark.
pub struct DecodingReader<R> {
    inner: R,
    decoder: Decoder,
    /// Decoded bytes not yet handed out.
    out: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: BufRead> DecodingReader<R> {
    pub fn new(inner: R, encoding: &'static Encoding) -> Self {
        DecodingReader {
            inner,
            decoder: encoding.new_decoder_with_bom_removal(),
            out: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    fn fill(&mut self) -> std::io::Result<()> {
        self.out.clear();
        self.pos = 0;
        while self.out.is_empty() && !self.done {
            let input = self.inner.fill_buf()?;
            let last = input.is_empty();
            let cap = self
                .decoder
                .max_utf8_buffer_length(input.len())
                .unwrap_or(input.len() * 3 + 16);
            self.out.resize(cap, 0);
            let (_, read, written, _) = self.decoder.decode_to_utf8(input, &mut self.out, last);
            self.out.truncate(written);
            self.inner.consume(read);
            self.done = last;
        }
        Ok(())
    }
}

impl<R: BufRead> Read for DecodingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.out.len() {
            self.fill()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The first `SNIFF_BYTES` of a file, decoded (for sniffing delimiters and
/// headers).
pub fn decode_head(head: &[u8], encoding: &'static Encoding) -> String {
    let (text, _) = encoding.decode_with_bom_removal(head);
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> String {
        let enc = detect(&bytes[..bytes.len().min(SNIFF_BYTES)]);
        let mut s = String::new();
        DecodingReader::new(std::io::BufReader::with_capacity(7, bytes), enc)
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    #[test]
    fn reads_every_encoding_a_spreadsheet_writes() {
        let text = "name,city\nZoë,Málaga\n";
        assert_eq!(decode_all(text.as_bytes()), text);
        let bom: Vec<u8> = b"\xEF\xBB\xBF"
            .iter()
            .chain(text.as_bytes())
            .copied()
            .collect();
        assert_eq!(decode_all(&bom), text);
        let (latin1, _, _) = WINDOWS_1252.encode(text);
        assert_eq!(decode_all(&latin1), text);
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(decode_all(&le), text);
        let le_bom: Vec<u8> = [0xFF, 0xFE].into_iter().chain(le).collect();
        assert_eq!(decode_all(&le_bom), text);
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(decode_all(&be), text);
    }
}
