//! Secrets in a plugin's configuration: the properties its `config_schema`
//! marks `"writeOnly": true` (JSON Schema's own word for "sent, never read
//! back"), such as an API's client secret.
//!
//! They are sealed with the tenant's current data key before the row is
//! written (`{"$sealed": "enc:v1:..."}`), shown to admins and written to the
//! audit trail only as [`MASK`], and opened only for the plugin, when it
//! reads its configuration. An admin who sends the mask back (or leaves the
//! property out) keeps the stored secret; `null` removes it.

use sea_orm::ConnectionTrait;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::crypto::field_key_version;
use crate::error::{Error, Result};
use crate::keys::Keyring;

/// What a secret reads as outside the plugin.
pub const MASK: &str = "********";
const SEALED: &str = "$sealed";
/// A secret in a tenant backup, in plaintext (as encrypted custom values
/// are: see docs/backup.md).
const IN_BACKUP: &str = "$secret";

/// The paths (property names from the root) the schema marks `writeOnly`.
fn secret_paths(schema: Option<&Value>) -> Vec<Vec<String>> {
    fn walk(s: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if !at.is_empty() && s.get("writeOnly").and_then(Value::as_bool) == Some(true) {
            out.push(at.clone());
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (k, sub) in props {
                at.push(k.clone());
                walk(sub, at, out);
                at.pop();
            }
        }
    }
    let mut out = Vec::new();
    if let Some(s) = schema {
        walk(s, &mut Vec::new(), &mut out);
    }
    out
}

/// The object holding the value at `path` (whose last name is the key).
fn parent_mut<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Map<String, Value>> {
    let (_, within) = path.split_last()?;
    let mut at = v;
    for k in within {
        at = at.get_mut(k.as_str())?;
    }
    at.as_object_mut()
}

fn get<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |at, k| at.get(k.as_str()))
}

fn is_sealed(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| o.len() == 1 && o.get(SEALED).is_some_and(Value::is_string))
}

/// Resolves what an admin sent against the stored configuration: a secret
/// sent as the mask, or left out, keeps its stored value; `null` drops it.
pub fn carry_over(schema: Option<&Value>, new: &mut Value, old: Option<&Value>) {
    for path in secret_paths(schema) {
        let Some(key) = path.last() else { continue };
        let stored = old.and_then(|o| get(o, &path)).filter(|v| is_sealed(v));
        let Some(parent) = parent_mut(new, &path) else {
            continue;
        };
        match parent.get(key.as_str()) {
            None => {
                if let Some(s) = stored {
                    parent.insert(key.clone(), s.clone());
                }
            }
            Some(Value::String(m)) if m == MASK => match stored {
                Some(s) => {
                    parent.insert(key.clone(), s.clone());
                }
                None => {
                    parent.remove(key.as_str());
                }
            },
            Some(Value::Null) => {
                parent.remove(key.as_str());
            }
            Some(_) => {}
        }
    }
}

/// The configuration as admins and the audit trail see it: every sealed
/// value as [`MASK`].
pub fn masked(config: &Value) -> Value {
    match config {
        v if is_sealed(v) => Value::String(MASK.to_owned()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), masked(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(masked).collect()),
        other => other.clone(),
    }
}

fn aad(tenant_id: Uuid, plugin_id: &str) -> Vec<u8> {
    format!("plugin-config/{tenant_id}/{plugin_id}").into_bytes()
}

/// `{"$sealed": ciphertext}` of one secret, under the tenant's current key.
async fn sealed<C: ConnectionTrait>(
    keyring: &Keyring,
    db: &C,
    (tenant_id, plugin_id): (Uuid, &str),
    plain: &str,
) -> Result<Value> {
    let keys = keyring.tenant(db, tenant_id).await?;
    let ct = keys
        .current_key()?
        .encrypt_field(keys.current, &aad(tenant_id, plugin_id), plain);
    let mut o = Map::new();
    o.insert(SEALED.to_owned(), Value::String(ct));
    Ok(Value::Object(o))
}

/// Seals the secrets `config` holds in plaintext.
pub async fn seal<C: ConnectionTrait>(
    keyring: &Keyring,
    db: &C,
    (tenant_id, plugin_id): (Uuid, &str),
    schema: Option<&Value>,
    config: &mut Value,
) -> Result<()> {
    for path in secret_paths(schema) {
        let Some(key) = path.last() else { continue };
        let Some(parent) = parent_mut(config, &path) else {
            continue;
        };
        let Some(Value::String(plain)) = parent.get(key.as_str()) else {
            continue;
        };
        let value = sealed(keyring, db, (tenant_id, plugin_id), plain).await?;
        parent.insert(key.clone(), value);
    }
    Ok(())
}

/// The configuration with its secrets opened, for the plugin itself.
pub async fn reveal<C: ConnectionTrait>(
    keyring: &Keyring,
    db: &C,
    ids: (Uuid, &str),
    config: &Value,
) -> Result<Value> {
    open_all(keyring, db, ids, config, false).await
}

/// A tenant backup's copy: secrets opened (the tenant's keys do not travel
/// with it) and marked as secrets, so a restore seals them again.
pub async fn for_backup<C: ConnectionTrait>(
    keyring: &Keyring,
    db: &C,
    ids: (Uuid, &str),
    config: &Value,
) -> Result<Value> {
    open_all(keyring, db, ids, config, true).await
}

async fn open_all<C: ConnectionTrait>(
    keyring: &Keyring,
    db: &C,
    (tenant_id, plugin_id): (Uuid, &str),
    config: &Value,
    mark: bool,
) -> Result<Value> {
    // Most configurations hold no secret: no key look-up for them.
    if !config.to_string().contains(SEALED) {
        return Ok(config.clone());
    }
    let mut out = config.clone();
    let mut stack = vec![&mut out];
    while let Some(v) = stack.pop() {
        if is_sealed(v) {
            let ct = v.get(SEALED).and_then(Value::as_str).unwrap_or_default();
            let version = field_key_version(ct)
                .ok_or_else(|| Error::Internal("a sealed plugin secret names no key".to_owned()))?;
            let keys = keyring
                .tenant_covering(db, tenant_id, Some(version))
                .await?;
            let plain = keys
                .get(version)?
                .decrypt_field(&aad(tenant_id, plugin_id), ct)
                .map_err(|e| Error::Internal(format!("a plugin secret does not open: {e}")))?;
            *v = if mark {
                let mut o = Map::new();
                o.insert(IN_BACKUP.to_owned(), Value::String(plain));
                Value::Object(o)
            } else {
                Value::String(plain)
            };
            continue;
        }
        match v {
            Value::Object(o) => stack.extend(o.values_mut()),
            Value::Array(a) => stack.extend(a.iter_mut()),
            _ => {}
        }
    }
    Ok(out)
}

/// Seals the secrets a backup carried (see [`for_backup`]) for the tenant
/// the backup is restored into.
pub async fn from_backup<C: ConnectionTrait>(
    keyring: &Keyring,
    db: &C,
    (tenant_id, plugin_id): (Uuid, &str),
    config: &mut Value,
) -> Result<()> {
    let mut stack = vec![config];
    while let Some(v) = stack.pop() {
        let plain = v
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.get(IN_BACKUP))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(plain) = plain {
            *v = sealed(keyring, db, (tenant_id, plugin_id), &plain).await?;
            continue;
        }
        match v {
            Value::Object(o) => stack.extend(o.values_mut()),
            Value::Array(a) => stack.extend(a.iter_mut()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"mls": {"type": "object", "properties": {
            "url": {"type": "string"}, "client_secret": {"type": "string", "writeOnly": true}}}}})
    }

    #[test]
    fn write_only_properties_are_found_at_any_depth() {
        assert_eq!(
            secret_paths(Some(&schema())),
            vec![vec!["mls".to_owned(), "client_secret".to_owned()]]
        );
        assert!(secret_paths(None).is_empty());
    }

    #[test]
    fn a_mask_or_a_missing_secret_keeps_the_stored_one_and_null_drops_it() {
        let stored = json!({"mls": {"url": "u", "client_secret": {"$sealed": "enc:v1:xyz"}}});
        let mut sent = json!({"mls": {"url": "v", "client_secret": MASK}});
        carry_over(Some(&schema()), &mut sent, Some(&stored));
        assert_eq!(sent["mls"]["client_secret"], stored["mls"]["client_secret"]);
        let mut left_out = json!({"mls": {"url": "v"}});
        carry_over(Some(&schema()), &mut left_out, Some(&stored));
        assert_eq!(
            left_out["mls"]["client_secret"],
            stored["mls"]["client_secret"]
        );
        let mut cleared = json!({"mls": {"url": "v", "client_secret": null}});
        carry_over(Some(&schema()), &mut cleared, Some(&stored));
        assert!(cleared["mls"].get("client_secret").is_none());
        assert_eq!(masked(&stored)["mls"]["client_secret"], MASK);
        assert_eq!(masked(&stored)["mls"]["url"], "u");
    }
}
