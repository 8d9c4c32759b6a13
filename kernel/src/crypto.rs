//! Envelope encryption for data at rest (AES-256-GCM) and blind indexes.
//!
//! A master key, from configuration, wraps one data key per tenant; the data
//! keys encrypt field values. Rotating the master key re-wraps the data keys
//! only, never the data. Every ciphertext carries a fresh random 96-bit nonce
//! and is bound to its context by associated data (the tenant and field), so
//! a value copied into another record or tenant does not decrypt.
//!
//! A blind index is an HMAC of a normalised value under a sub-key derived
//! from the data key: equal values give equal indexes (exact-match lookup
//! without decrypting), while the index reveals nothing else and cannot be
//! computed without the key. The sub-key keeps the HMAC key distinct from
//! the encryption key, and the field name in the message keeps equal values
//! of different fields apart.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Failures of key handling and decryption.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("decryption failed: wrong key, wrong context or altered data")]
    Decrypt,
    #[error("malformed ciphertext: {0}")]
    Encoding(String),
}

const NONCE_LEN: usize = 12;
const DEK_AAD: &[u8] = b"trellis:dek:v1";
const BLIND_INDEX_LABEL: &[u8] = b"trellis:blind-index:v1";

/// 32 secret bytes, wiped when dropped and never printed.
struct KeyBytes([u8; 32]);

impl Drop for KeyBytes {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::rng().fill_bytes(&mut k);
    k
}

fn seal_with(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    // Encryption with a valid key and nonce cannot fail for inputs below
    // AES-GCM's 64 GiB limit; an empty result would only fail to open.
    let ct = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_with(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(CryptoError::Encoding("too short".to_owned()));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| CryptoError::Encoding("bad nonce".to_owned()))?;
    Aes256Gcm::new(key.into())
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .map_err(|_| CryptoError::Decrypt)
}

fn decode(b64: &str) -> Result<Vec<u8>, CryptoError> {
    STANDARD
        .decode(b64.trim())
        .map_err(|e| CryptoError::Encoding(e.to_string()))
}

/// The master key: wraps data keys and other secrets.
pub struct MasterKey(KeyBytes);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

impl MasterKey {
    pub fn from_base64(s: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(s.trim())
            .map_err(|e| CryptoError::InvalidKey(format!("not base64: {e}")))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::InvalidKey("a master key is 32 bytes".to_owned()))?;
        Ok(MasterKey(KeyBytes(key)))
    }

    pub fn generate() -> Self {
        MasterKey(KeyBytes(random_key()))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.0)
    }

    /// Names the key without revealing it: the first 16 hex digits of its
    /// SHA-256.
    pub fn id(&self) -> String {
        Sha256::digest(self.0.0)
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn wrap(&self, dek: &DataKey) -> String {
        STANDARD.encode(seal_with(&self.0.0, &dek.0.0, DEK_AAD))
    }

    pub fn unwrap(&self, wrapped: &str) -> Result<DataKey, CryptoError> {
        let bytes = open_with(&self.0.0, &decode(wrapped)?, DEK_AAD)?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::InvalidKey("a data key is 32 bytes".to_owned()))?;
        Ok(DataKey(KeyBytes(key)))
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        STANDARD.encode(seal_with(&self.0.0, plaintext, aad))
    }

    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open_with(&self.0.0, &decode(sealed)?, aad)
    }
}

/// A tenant's data key: encrypts field values.
pub struct DataKey(KeyBytes);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    pub fn generate() -> Self {
        DataKey(KeyBytes(random_key()))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        DataKey(KeyBytes(bytes))
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        STANDARD.encode(seal_with(&self.0.0, plaintext, aad))
    }

    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open_with(&self.0.0, &decode(sealed)?, aad)
    }

    /// `enc:v{version}:{base64(nonce || ciphertext)}`: the version names the
    /// data key, so values survive key rotation.
    pub fn encrypt_field(&self, version: i32, aad: &[u8], plaintext: &str) -> String {
        format!("enc:v{version}:{}", self.seal(plaintext.as_bytes(), aad))
    }

    pub fn decrypt_field(&self, aad: &[u8], ciphertext: &str) -> Result<String, CryptoError> {
        let body = ciphertext
            .strip_prefix("enc:v")
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, b)| b)
            .ok_or_else(|| CryptoError::Encoding("not an encrypted field value".to_owned()))?;
        String::from_utf8(self.open(body, aad)?)
            .map_err(|_| CryptoError::Encoding("not UTF-8".to_owned()))
    }

    /// Hex HMAC-SHA256 of `field`, a zero byte and `normalized_value` under
    /// the blind-index sub-key.
    pub fn blind_index(&self, field: &str, normalized_value: &str) -> String {
        let sub = hmac_sha256(&self.0.0, BLIND_INDEX_LABEL);
        let mut msg = Vec::with_capacity(field.len() + 1 + normalized_value.len());
        msg.extend_from_slice(field.as_bytes());
        msg.push(0);
        msg.extend_from_slice(normalized_value.as_bytes());
        hmac_sha256(&sub, &msg)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; the error arm cannot happen.
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(msg);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0u8; 32],
    }
}

/// The data-key version an encrypted field value names.
pub fn field_key_version(ciphertext: &str) -> Option<i32> {
    ciphertext
        .strip_prefix("enc:v")?
        .split_once(':')?
        .0
        .parse()
        .ok()
}

/// The form a value is indexed in: trimmed, lower-cased, inner whitespace
/// collapsed, so "  Jane  DOE" and "jane doe" match.
pub fn normalize_for_index(value: &str) -> String {
    value
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_round_trip_through_the_master_key_and_only_it() {
        let master = MasterKey::generate();
        let dek = DataKey::generate();
        let wrapped = master.wrap(&dek);
        let back = master.unwrap(&wrapped).unwrap();
        let ct = dek.encrypt_field(3, b"t1:ssn", "123-45-6789");
        assert_eq!(field_key_version(&ct), Some(3));
        assert_eq!(back.decrypt_field(b"t1:ssn", &ct).unwrap(), "123-45-6789");
        assert!(MasterKey::generate().unwrap(&wrapped).is_err());
        let again = MasterKey::from_base64(&master.to_base64()).unwrap();
        assert_eq!(again.id(), master.id());
        assert!(again.unwrap(&wrapped).is_ok());
    }

    #[test]
    fn ciphertexts_are_bound_to_their_context_and_detect_tampering() {
        let dek = DataKey::generate();
        let ct = dek.encrypt_field(1, b"tenant-a:ssn", "secret");
        assert!(dek.decrypt_field(b"tenant-b:ssn", &ct).is_err());
        let mut bytes = ct.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(dek.decrypt_field(b"tenant-a:ssn", &tampered).is_err());
        assert!(
            DataKey::generate()
                .decrypt_field(b"tenant-a:ssn", &dek.encrypt_field(1, b"tenant-a:ssn", "x"))
                .is_err()
        );
        // Two encryptions of one value differ (fresh nonces).
        assert_ne!(
            dek.encrypt_field(1, b"a", "x"),
            dek.encrypt_field(1, b"a", "x")
        );
    }

    #[test]
    fn blind_indexes_match_equal_values_only_under_one_key_and_field() {
        let dek = DataKey::generate();
        let a = dek.blind_index("ssn", &normalize_for_index("  123 45  6789 "));
        assert_eq!(a, dek.blind_index("ssn", "123 45 6789"));
        assert_ne!(a, dek.blind_index("tax_id", "123 45 6789"));
        assert_ne!(a, DataKey::generate().blind_index("ssn", "123 45 6789"));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn keys_are_never_printed() {
        let master = MasterKey::generate();
        let printed = format!("{master:?} {:?}", DataKey::generate());
        assert!(!printed.contains(&master.to_base64()));
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
