//! Password hashing with argon2id, with parameters from configuration.
//!
//! Hashes are PHC strings, so each carries its own parameters: raising the
//! configured cost takes effect for new hashes, and a login re-hashes a
//! password stored under older parameters ([`needs_rehash`]). A login for
//! an unknown account spends the same time on a dummy hash ([`burn`]), so
//! response time does not reveal which emails have accounts.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordParams {
    /// Memory per hash, in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordParams {
    /// OWASP's recommendation for argon2id: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        PasswordParams {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
}

fn hasher(params: &PasswordParams) -> Result<Argon2<'static>, PasswordError> {
    let p = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map_err(|e| PasswordError::Params(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
}

/// Hashes a password with a fresh random salt.
pub fn hash(params: &PasswordParams, password: &str) -> Result<String, PasswordError> {
    hasher(params)?
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored hash; false for any malformed hash.
pub fn verify(password: &str, phc: &str) -> bool {
    // The parameters come from the hash itself.
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// Whether a stored hash was made with other parameters or algorithm.
pub fn needs_rehash(params: &PasswordParams, phc: &str) -> bool {
    let mut parts = phc.split('$');
    let (Some(""), Some(alg), Some(_version), Some(list)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return true;
    };
    if alg != "argon2id" {
        return true;
    }
    let mut found = (None, None, None);
    for kv in list.split(',') {
        match kv.split_once('=') {
            Some(("m", v)) => found.0 = v.parse::<u32>().ok(),
            Some(("t", v)) => found.1 = v.parse::<u32>().ok(),
            Some(("p", v)) => found.2 = v.parse::<u32>().ok(),
            _ => {}
        }
    }
    found
        != (
            Some(params.memory_kib),
            Some(params.iterations),
            Some(params.parallelism),
        )
}

/// Spends the time of one verification, for logins of unknown accounts.
pub fn burn(params: &PasswordParams, password: &str) {
    static DUMMIES: OnceLock<Mutex<HashMap<PasswordParams, String>>> = OnceLock::new();
    let dummies = DUMMIES.get_or_init(|| Mutex::new(HashMap::new()));
    let dummy = dummies
        .lock()
        .ok()
        .and_then(|mut m| {
            if let Some(h) = m.get(params) {
                return Some(h.clone());
            }
            let h = hash(params, "trellis dummy password").ok()?;
            m.insert(*params, h.clone());
            Some(h)
        })
        .unwrap_or_default();
    let _ = verify(password, &dummy);
}

/// The password rules: at least 12 characters, at most 1,024 bytes, not one
/// character repeated.
pub fn check_policy(password: &str) -> Result<(), String> {
    if password.chars().count() < 12 {
        return Err("use at least 12 characters".to_owned());
    }
    if password.len() > 1024 {
        return Err("use at most 1,024 bytes".to_owned());
    }
    let mut chars = password.chars();
    if let Some(first) = chars.next()
        && chars.all(|c| c == first)
    {
        return Err("use more than one distinct character".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: PasswordParams = PasswordParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn hashes_verify_only_the_right_password() {
        let h = hash(&FAST, "correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("anything", "not a hash"));
        assert_ne!(h, hash(&FAST, "correct horse battery").unwrap());
    }

    #[test]
    fn other_parameters_call_for_a_rehash() {
        let h = hash(&FAST, "correct horse battery").unwrap();
        assert!(!needs_rehash(&FAST, &h));
        assert!(needs_rehash(&PasswordParams::default(), &h));
        assert!(needs_rehash(
            &FAST,
            "$argon2i$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA"
        ));
        assert!(needs_rehash(&FAST, "garbage"));
    }

    #[test]
    fn the_policy_names_what_is_wrong() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("aaaaaaaaaaaaaaaa").is_err());
        assert!(check_policy(&"x".repeat(1025)).is_err());
        assert!(check_policy("correct horse battery").is_ok());
        // Characters, not bytes: 12 accented letters pass.
        assert!(check_policy("éèêëéèêëéèêa").is_ok());
    }
}
