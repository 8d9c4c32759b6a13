//! Access tokens as JWTs signed with Ed25519 (EdDSA), keys named by `kid`.
//!
//! Verification accepts exactly one algorithm, EdDSA, whatever the token's
//! header says: that defeats `alg: none` and the classic confusion where a
//! token is HMAC-signed with the server's public key. The `kid` must name a
//! key the verifier holds, so rotation is adding a key, and retiring one is
//! removing it.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("unknown signing key")]
    UnknownKey,
    #[error("invalid signature")]
    InvalidSignature,
    #[error("token expired")]
    Expired,
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    #[error("key error: {0}")]
    Key(String),
}

/// A signing key pair.
pub struct KeyPair {
    pub kid: String,
    pub private_pkcs8_der: Vec<u8>,
    pub public_key: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({})", self.kid)
    }
}

impl Drop for KeyPair {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private_pkcs8_der);
    }
}

impl KeyPair {
    pub fn generate() -> Result<KeyPair, JwtError> {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let signing = SigningKey::from_bytes(&seed);
        zeroize::Zeroize::zeroize(&mut seed);
        let der = signing
            .to_pkcs8_der()
            .map_err(|e| JwtError::Key(e.to_string()))?;
        Ok(KeyPair {
            kid: Uuid::now_v7().simple().to_string(),
            private_pkcs8_der: der.as_bytes().to_vec(),
            public_key: signing.verifying_key().to_bytes(),
        })
    }

    pub fn from_parts(kid: String, private_pkcs8_der: Vec<u8>, public_key: [u8; 32]) -> KeyPair {
        KeyPair {
            kid,
            private_pkcs8_der,
            public_key,
        }
    }
}

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user.
    pub sub: Uuid,
    /// The tenant.
    pub tid: Uuid,
    /// The browser session the token belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

pub fn sign(key: &KeyPair, claims: &Claims) -> Result<String, JwtError> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ed_der(&key.private_pkcs8_der),
    )
    .map_err(|e| JwtError::Key(e.to_string()))
}

/// Verifies tokens against a set of public keys.
pub struct Verifier {
    issuer: String,
    audience: String,
    leeway_seconds: u64,
    keys: HashMap<String, DecodingKey>,
}

impl Verifier {
    pub fn new(issuer: &str, audience: &str, leeway_seconds: u64) -> Self {
        Verifier {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway_seconds,
            keys: HashMap::new(),
        }
    }

    pub fn add_key(&mut self, kid: &str, public_key: &[u8; 32]) {
        self.keys
            .insert(kid.to_owned(), DecodingKey::from_ed_der(public_key));
    }

    pub fn remove_key(&mut self, kid: &str) {
        self.keys.remove(kid);
    }

    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        // The algorithm is checked on the raw header, before any parsing
        // that knows (or does not know) other algorithms' names.
        let raw_header: serde_json::Value = token
            .split('.')
            .next()
            .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        match raw_header.get("alg").and_then(|a| a.as_str()) {
            Some("EdDSA") => {}
            Some(other) => return Err(JwtError::UnsupportedAlgorithm(other.to_owned())),
            None => return Err(JwtError::Malformed),
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(JwtError::UnknownKey)?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.leeway = self.leeway_seconds;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, key, &v)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidSignature => JwtError::InvalidSignature,
                    K::ExpiredSignature => JwtError::Expired,
                    K::InvalidIssuer => JwtError::InvalidClaims("issuer".to_owned()),
                    K::InvalidAudience => JwtError::InvalidClaims("audience".to_owned()),
                    K::MissingRequiredClaim(c) => JwtError::InvalidClaims(format!("missing {c}")),
                    K::InvalidAlgorithm => JwtError::UnsupportedAlgorithm("mismatch".to_owned()),
                    _ => JwtError::Malformed,
                }
            })
    }
}

/// The public JWK of a key, for `/.well-known/jwks.json`.
pub fn jwk(kid: &str, public_key: &[u8; 32]) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(public_key),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_in: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            iss: "trellis".into(),
            aud: "trellis-api".into(),
            sub: Uuid::now_v7(),
            tid: Uuid::now_v7(),
            sid: None,
            iat: now,
            exp: now + exp_in,
            jti: Uuid::now_v7(),
        }
    }

    fn verifier(keys: &[&KeyPair]) -> Verifier {
        let mut v = Verifier::new("trellis", "trellis-api", 30);
        for k in keys {
            v.add_key(&k.kid, &k.public_key);
        }
        v
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn a_valid_token_verifies_and_a_tampered_one_does_not() {
        let k = KeyPair::generate().unwrap();
        let c = claims(600);
        let t = sign(&k, &c).unwrap();
        assert_eq!(verifier(&[&k]).verify(&t).unwrap(), c);
        let parts: Vec<&str> = t.split('.').collect();
        let mut forged = serde_json::to_value(&c).unwrap();
        forged["tid"] = serde_json::json!(Uuid::now_v7());
        let tampered = format!("{}.{}.{}", parts[0], b64(&forged), parts[2]);
        assert_eq!(
            verifier(&[&k]).verify(&tampered),
            Err(JwtError::InvalidSignature)
        );
    }

    #[test]
    fn expiry_honours_the_leeway_only() {
        let k = KeyPair::generate().unwrap();
        let v = verifier(&[&k]);
        assert!(v.verify(&sign(&k, &claims(-10)).unwrap()).is_ok());
        assert_eq!(
            v.verify(&sign(&k, &claims(-120)).unwrap()),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn none_hmac_and_foreign_algorithms_are_refused() {
        let k = KeyPair::generate().unwrap();
        let v = verifier(&[&k]);
        let payload = b64(&serde_json::to_value(claims(600)).unwrap());
        let none = format!(
            "{}.{payload}.",
            b64(&serde_json::json!({"alg": "none", "typ": "JWT", "kid": k.kid}))
        );
        assert!(
            matches!(v.verify(&none), Err(JwtError::UnsupportedAlgorithm(_))),
            "{:?}",
            v.verify(&none)
        );
        // HS256 keyed with the public key: the confusion attack.
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(k.kid.clone());
        let hs = jsonwebtoken::encode(&h, &claims(600), &EncodingKey::from_secret(&k.public_key))
            .unwrap();
        assert!(matches!(
            v.verify(&hs),
            Err(JwtError::UnsupportedAlgorithm(_))
        ));
        let rs = format!(
            "{}.{payload}.c2ln",
            b64(&serde_json::json!({"alg": "RS256", "kid": k.kid}))
        );
        assert!(matches!(
            v.verify(&rs),
            Err(JwtError::UnsupportedAlgorithm(_))
        ));
        assert_eq!(v.verify("garbage"), Err(JwtError::Malformed));
    }

    #[test]
    fn keys_are_matched_by_kid_and_rotation_keeps_the_previous_one() {
        let old = KeyPair::generate().unwrap();
        let new = KeyPair::generate().unwrap();
        let impostor = KeyPair::from_parts(
            old.kid.clone(),
            KeyPair::generate().unwrap().private_pkcs8_der.clone(),
            [0; 32],
        );
        let mut v = verifier(&[&old, &new]);
        let t_old = sign(&old, &claims(600)).unwrap();
        let t_new = sign(&new, &claims(600)).unwrap();
        assert!(v.verify(&t_old).is_ok() && v.verify(&t_new).is_ok());
        assert_eq!(
            v.verify(&sign(&impostor, &claims(600)).unwrap()),
            Err(JwtError::InvalidSignature)
        );
        v.remove_key(&old.kid);
        assert_eq!(v.verify(&t_old), Err(JwtError::UnknownKey));
        assert!(v.verify(&t_new).is_ok());
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let k = KeyPair::generate().unwrap();
        let mut c = claims(600);
        c.aud = "someone-else".into();
        assert!(matches!(
            verifier(&[&k]).verify(&sign(&k, &c).unwrap()),
            Err(JwtError::InvalidClaims(_))
        ));
        let mut c = claims(600);
        c.iss = "evil".into();
        assert!(matches!(
            verifier(&[&k]).verify(&sign(&k, &c).unwrap()),
            Err(JwtError::InvalidClaims(_))
        ));
    }
}
