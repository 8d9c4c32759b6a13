//! Time-based one-time passwords (RFC 6238) through the totp-rs crate, and
//! recovery codes.
//!
//! Codes are six digits over 30-second steps with HMAC-SHA1: what every
//! authenticator app supports. One step of clock skew either way is
//! accepted, as RFC 6238 section 5.2 recommends.

use rand::Rng;
use totp_rs::{Algorithm, Builder, Secret};

pub const STEP: u64 = 30;
pub const DIGITS: usize = 6;

fn totp(secret: &[u8]) -> totp_rs::Totp {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_skew(1)
        .with_step_duration(STEP)
        .with_secret(secret.to_vec())
        .build_noncompliant()
}

/// A new 160-bit secret (RFC 4226's recommended length).
pub fn generate_secret() -> Vec<u8> {
    let mut s = vec![0u8; 20];
    rand::rng().fill(&mut s[..]);
    s
}

/// The `otpauth://` URI authenticator apps read from a QR code (Google's
/// Key Uri Format).
pub fn provisioning_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let b32 = Secret::from(secret.to_vec()).to_base32();
    let b32 = b32.trim_end_matches('=');
    let label = format!("{}:{}", percent(issuer), percent(account));
    format!(
        "otpauth://totp/{label}?secret={b32}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        percent(issuer)
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The code for `unix_time`.
pub fn code_at(secret: &[u8], unix_time: u64) -> String {
    totp(secret).generate(unix_time).to_string()
}

/// The matched time step when `code` is right for `unix_time` or one step
/// either side.
pub fn verify(secret: &[u8], code: &str, unix_time: u64) -> Option<u64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret).check(code, unix_time)
}

/// Letters and digits that cannot be misread (no 0/o, 1/l/i).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// `n` recovery codes like `k7mq-x2pa-9rtd`: 12 characters from a
/// 31-letter alphabet, about 59 bits each.
pub fn generate_recovery_codes(n: usize) -> Vec<String> {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| {
            let chars: Vec<char> = (0..12)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            chars
                .chunks(4)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// The form a recovery code is hashed in: lower case, no spaces or dashes.
pub fn normalize_recovery_code(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, all eighteen vectors (8 digits).
    #[test]
    fn rfc_6238_appendix_b_test_vectors() {
        let sha1 = b"12345678901234567890".to_vec();
        let sha256 = b"12345678901234567890123456789012".to_vec();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".to_vec();
        let vectors: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (time, c1, c256, c512) in vectors {
            for (alg, secret, expected) in [
                (Algorithm::SHA1, &sha1, c1),
                (Algorithm::SHA256, &sha256, c256),
                (Algorithm::SHA512, &sha512, c512),
            ] {
                let t = Builder::new()
                    .with_algorithm(alg)
                    .with_digits(8)
                    .with_step_duration(30)
                    .with_secret(secret.clone())
                    .build_noncompliant();
                assert_eq!(t.generate(time).to_string(), expected, "{alg:?} at {time}");
            }
        }
    }

    #[test]
    fn one_step_of_skew_is_accepted_two_are_not() {
        let s = generate_secret();
        let now = 1_700_000_000;
        let code = code_at(&s, now);
        assert_eq!(code.len(), 6);
        assert_eq!(verify(&s, &code, now), Some(now / STEP));
        assert!(verify(&s, &code, now + STEP).is_some());
        assert!(verify(&s, &code, now - STEP).is_some());
        assert!(verify(&s, &code, now + 2 * STEP).is_none());
        assert!(verify(&s, &code, now - 2 * STEP).is_none());
        assert!(verify(&s, "12345", now).is_none());
        assert!(verify(&s, "abcdef", now).is_none());
    }

    #[test]
    fn uri_carries_secret_issuer_and_account() {
        let s = b"12345678901234567890".to_vec();
        let uri = provisioning_uri(&s, "Trellis (Acme)", "ann@example.com");
        assert!(
            uri.starts_with("otpauth://totp/Trellis%20%28Acme%29:ann%40example.com?"),
            "{uri}"
        );
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(uri.contains("issuer=Trellis%20%28Acme%29"));
    }

    #[test]
    fn recovery_codes_are_distinct_and_typed_loosely() {
        let codes = generate_recovery_codes(10);
        assert_eq!(codes.len(), 10);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), 10);
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 14 && c.matches('-').count() == 2)
        );
        assert_eq!(normalize_recovery_code(" K7MQ-x2pa 9rtd "), "k7mqx2pa9rtd");
    }
}
