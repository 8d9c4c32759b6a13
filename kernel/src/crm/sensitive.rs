//! Custom fields marked sensitive: encrypted at rest with the tenant's data
//! key, revealed only to callers who may see them, and every reveal audited.
//!
//! A stored value is `{"$enc": "enc:v<key version>:...", "$bidx": "<hex>"}`;
//! the plaintext is the value's JSON text, so its type survives. The
//! ciphertext is bound to tenant, object type and field. `$bidx`, present
//! when the field keeps a blind index, supports exact-match filters.
//! Unchanged values keep their ciphertext across updates, so the audit
//! trail's diffs show only real changes and never a plaintext.

use std::sync::Arc;

use sea_orm::ConnectionTrait;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::context::RequestContext;
use crate::crm::custom_fields::FieldDef;
use crate::crypto::{field_key_version, normalize_for_index};
use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::permissions::{FieldAccess, ObjectType};

pub const ENC: &str = "$enc";
pub const BIDX: &str = "$bidx";

fn aad(tenant_id: Uuid, object: ObjectType, key: &str) -> String {
    format!("{tenant_id}:{}:{key}", object.as_str())
}

/// The caller's tenant keys, when the caller can encrypt at all.
pub async fn keys<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
) -> Result<Option<Arc<TenantKeys>>> {
    keys_covering(db, ctx, None).await
}

/// The caller's tenant keys, holding every version the sealed values of
/// `custom` name (another process may have rotated since they were loaded).
pub async fn keys_covering<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    custom: Option<&Value>,
) -> Result<Option<Arc<TenantKeys>>> {
    let newest = custom
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|v| v.get(ENC).and_then(Value::as_str))
        .filter_map(field_key_version)
        .max();
    match &ctx.keyring {
        Some(k) => Ok(Some(k.tenant_covering(db, ctx.tenant_id, newest).await?)),
        None => Ok(None),
    }
}

/// Whether `keys` can open every sealed value of `custom`.
pub fn covers(keys: Option<&TenantKeys>, custom: &Value) -> bool {
    let Some(keys) = keys else { return true };
    custom
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|v| v.get(ENC).and_then(Value::as_str))
        .filter_map(field_key_version)
        .all(|v| keys.has(v))
}

/// The text a value is indexed by: strings as they are, others as JSON.
fn index_text(v: &Value) -> String {
    match v {
        Value::String(s) => normalize_for_index(s),
        other => normalize_for_index(&other.to_string()),
    }
}

/// The blind index of `value` for field `key`.
pub fn blind_index(keys: &TenantKeys, key: &str, value: &Value) -> Result<String> {
    Ok(keys.index_key()?.blind_index(key, &index_text(value)))
}

/// Whether a record's JSON holds any sealed custom value.
pub fn any_sealed(record: &Value) -> bool {
    record
        .get("custom")
        .and_then(Value::as_object)
        .is_some_and(|c| c.values().any(is_sealed))
}

fn is_sealed(v: &Value) -> bool {
    v.get(ENC).is_some_and(Value::is_string)
}

fn open_one(keys: &TenantKeys, aad: &str, sealed: &Value) -> Result<Value> {
    let ct = sealed
        .get(ENC)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Internal("malformed encrypted value".to_owned()))?;
    let version = field_key_version(ct)
        .ok_or_else(|| Error::Internal("encrypted value names no key version".to_owned()))?;
    let text = keys
        .get(version)?
        .decrypt_field(aad.as_bytes(), ct)
        .map_err(|e| Error::Internal(format!("decrypting a sensitive field: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Error::Internal(e.to_string()))
}

/// Encrypts the sensitive values of `custom` (plaintext, just validated) in
/// place. `previous` is the stored `custom` of the record on update: a
/// value that did not change keeps its ciphertext.
pub fn seal(
    keys: Option<&TenantKeys>,
    tenant_id: Uuid,
    object: ObjectType,
    defs: &[FieldDef],
    custom: &mut Value,
    previous: Option<&Value>,
) -> Result<()> {
    let sensitive: Vec<&FieldDef> = defs.iter().filter(|d| d.sensitive).collect();
    if sensitive.is_empty() {
        return Ok(());
    }
    let keys = keys.ok_or_else(|| {
        Error::Internal("sensitive fields cannot be written without the keyring".to_owned())
    })?;
    let Some(map) = custom.as_object_mut() else {
        return Ok(());
    };
    for def in sensitive {
        let Some(plain) = map.get(&def.key).filter(|v| !v.is_null() && !is_sealed(v)) else {
            continue;
        };
        let aad = aad(tenant_id, object, &def.key);
        if let Some(old) = previous
            .and_then(|p| p.get(&def.key))
            .filter(|v| is_sealed(v))
            && open_one(keys, &aad, old).ok().as_ref() == Some(plain)
        {
            let old = old.clone();
            map.insert(def.key.clone(), old);
            continue;
        }
        let dek = keys.current_key()?;
        let mut sealed = Map::new();
        sealed.insert(
            ENC.to_owned(),
            json!(dek.encrypt_field(keys.current, aad.as_bytes(), &plain.to_string())),
        );
        if def.blind_index {
            sealed.insert(BIDX.to_owned(), json!(blind_index(keys, &def.key, plain)?));
        }
        map.insert(def.key.clone(), Value::Object(sealed));
    }
    Ok(())
}

/// Decrypts every sealed value of a record's JSON the caller may see (in
/// `custom`), removing those hidden from it. Returns the keys revealed.
pub fn reveal(
    keys: Option<&TenantKeys>,
    ctx: &RequestContext,
    object: ObjectType,
    record: &mut Value,
) -> Result<Vec<String>> {
    let Some(custom) = record.get_mut("custom").and_then(Value::as_object_mut) else {
        return Ok(Vec::new());
    };
    let sealed: Vec<String> = custom
        .iter()
        .filter(|(_, v)| is_sealed(v))
        .map(|(k, _)| k.clone())
        .collect();
    let mut revealed = Vec::new();
    for key in sealed {
        let field = format!("custom.{key}");
        if ctx.policy.field_access(object, &field) == Some(FieldAccess::Hidden) {
            custom.remove(&key);
            continue;
        }
        let keys = keys.ok_or_else(|| {
            Error::Internal("sensitive fields cannot be read without the keyring".to_owned())
        })?;
        let aad = aad(ctx.tenant_id, object, &key);
        let plain = custom
            .get(&key)
            .map(|v| open_one(keys, &aad, v))
            .transpose()?
            .unwrap_or(Value::Null);
        custom.insert(key, plain);
        revealed.push(field);
    }
    Ok(revealed)
}

/// Decrypts a stored `custom` object in place for the kernel's own use
/// (merging an update), whatever the caller may see.
pub fn open_all(
    keys: Option<&TenantKeys>,
    tenant_id: Uuid,
    object: ObjectType,
    custom: &mut Value,
) -> Result<()> {
    let Some(map) = custom.as_object_mut() else {
        return Ok(());
    };
    for (key, v) in map.iter_mut() {
        if is_sealed(v) {
            let keys = keys.ok_or_else(|| {
                Error::Internal("sensitive fields cannot be read without the keyring".to_owned())
            })?;
            *v = open_one(keys, &aad(tenant_id, object, key), v)?;
        }
    }
    Ok(())
}

/// A list query without its filters on sensitive fields, and those filters
/// as `(key, blind index)` pairs.
pub type SplitQuery = (Option<String>, Vec<(String, String)>);

/// Takes the filters and sort on sensitive fields out of a list query:
/// `eq` on a field with a blind index becomes an index match (returned as
/// `(key, index)` pairs); anything else on a sensitive field is refused,
/// since answering it would need the plaintext. Returns the rest of the
/// query.
pub fn split_query(
    raw: Option<&str>,
    defs: &[FieldDef],
    keys: Option<&TenantKeys>,
) -> Result<SplitQuery> {
    let sensitive = |key: &str| defs.iter().find(|d| d.sensitive && d.key == key);
    let mut rest = form_urlencoded::Serializer::new(String::new());
    let mut matches = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if k == "filter"
            && let Some(after) = v.strip_prefix("custom.")
            && let Some((key, tail)) = after.split_once(':')
            && let Some(def) = sensitive(key)
        {
            let (op, value) = tail.split_once(':').unwrap_or((tail, ""));
            if op != "eq" || !def.blind_index {
                return Err(Error::field(
                    format!("filter.custom.{key}"),
                    "not_filterable",
                    "this field is encrypted: only `eq` filters on fields with a blind index work",
                ));
            }
            let keys = keys.ok_or_else(|| Error::Internal("no keyring".to_owned()))?;
            matches.push((
                key.to_owned(),
                blind_index(keys, key, &Value::String(value.to_owned()))?,
            ));
            continue;
        }
        if k == "sort"
            && let Some(key) = v.trim_start_matches('-').strip_prefix("custom.")
            && sensitive(key).is_some()
        {
            return Err(Error::field(
                "sort",
                "not_sortable",
                "encrypted fields cannot be sorted on",
            ));
        }
        rest.append_pair(&k, &v);
    }
    let rest = rest.finish();
    Ok(((!rest.is_empty()).then_some(rest), matches))
}
