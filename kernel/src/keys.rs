//! Key management: the master key from configuration, per-tenant data keys
//! wrapped by it (envelope encryption), and re-wrapping when the master key
//! rotates.
//!
//! A data key never changes once made, so a process keeps unwrapped keys in
//! memory for its life; rotating the master key only re-wraps the stored
//! copies (`trellis keys rewrap`), which needs no downtime: processes that
//! still hold the old master key as `previous_master_keys` keep working.
//! Rotating a tenant's data key (`trellis keys rotate-tenant`) adds a new
//! version used for new writes; values written under older versions stay
//! readable, each ciphertext naming its version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use uuid::Uuid;

use crate::config::Config;
use crate::crypto::{DataKey, MasterKey};
use crate::entities::tenant_key;
use crate::error::{Error, Result};

/// How long a process trusts the data keys it loaded: a key rotated by
/// another process is used for new writes here within this time (values it
/// sealed are readable at once: a missing version reloads the keys).
const KEYS_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// One tenant's data keys by version, and the version new writes use.
pub struct TenantKeys {
    pub current: i32,
    keys: HashMap<i32, DataKey>,
    loaded_at: std::time::Instant,
}

impl TenantKeys {
    pub fn current_key(&self) -> Result<&DataKey> {
        self.get(self.current)
    }

    /// The key blind indexes are computed with: the tenant's first, so that
    /// an index written before a rotation still matches a query after it.
    /// (Rotation therefore does not renew the index key; see docs/security.md.)
    pub fn index_key(&self) -> Result<&DataKey> {
        let first = self.keys.keys().min().copied().unwrap_or(self.current);
        self.get(first)
    }

    pub fn has(&self, version: i32) -> bool {
        self.keys.contains_key(&version)
    }

    pub fn get(&self, version: i32) -> Result<&DataKey> {
        self.keys
            .get(&version)
            .ok_or_else(|| Error::Internal(format!("data key version {version} is missing")))
    }
}

/// The master keys of this process and the data keys it has unwrapped.
pub struct Keyring {
    pub master: MasterKey,
    previous: Vec<MasterKey>,
    tenants: Mutex<HashMap<Uuid, Arc<TenantKeys>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring(master {})", self.master.id())
    }
}

impl Keyring {
    /// The master key from `master_key`, else from `master_key_file`
    /// (created with a fresh key when missing).
    pub fn from_config(config: &Config) -> Result<Keyring> {
        let master = match &config.master_key {
            Some(k) => MasterKey::from_base64(k.trim())
                .map_err(|e| Error::Internal(format!("master_key: {e}")))?,
            None => load_or_create(&config.master_key_file)?,
        };
        let previous = config
            .previous_master_keys
            .iter()
            .map(|k| MasterKey::from_base64(k.trim()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Internal(format!("previous_master_keys: {e}")))?;
        Ok(Keyring {
            master,
            previous,
            tenants: Mutex::new(HashMap::new()),
        })
    }

    /// The master key with this id, current or previous.
    fn master_by_id(&self, id: &str) -> Result<&MasterKey> {
        std::iter::once(&self.master)
            .chain(self.previous.iter())
            .find(|k| k.id() == id)
            .ok_or_else(|| {
                Error::Internal(format!(
                    "a data key is wrapped by master key {id}, which this process does not have"
                ))
            })
    }

    /// The tenant's data keys, creating version 1 on first use.
    pub async fn tenant<C: ConnectionTrait>(
        &self,
        db: &C,
        tenant_id: Uuid,
    ) -> Result<Arc<TenantKeys>> {
        self.tenant_covering(db, tenant_id, None).await
    }

    /// The tenant's data keys, including `version` when given (reloaded
    /// from the database when this process has not seen that version yet).
    pub async fn tenant_covering<C: ConnectionTrait>(
        &self,
        db: &C,
        tenant_id: Uuid,
        version: Option<i32>,
    ) -> Result<Arc<TenantKeys>> {
        if let Some(k) = self
            .tenants
            .lock()
            .ok()
            .and_then(|m| m.get(&tenant_id).cloned())
            && k.loaded_at.elapsed() < KEYS_FRESH_FOR
            && version.is_none_or(|v| k.has(v))
        {
            return Ok(k);
        }
        let mut rows = load_rows(db, tenant_id).await?;
        if rows.is_empty() {
            let created = tenant_key::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(tenant_id),
                version: Set(1),
                wrapped_key: Set(self.master.wrap(&DataKey::generate())),
                master_key_id: Set(self.master.id()),
                created_at: Set(crate::clock::now()),
            }
            .insert(db)
            .await;
            if let Err(e) = created
                && !crate::db::is_unique_violation(&e)
            {
                return Err(e.into());
            }
            // Another process may have won the race: read what is stored.
            rows = load_rows(db, tenant_id).await?;
        }
        let keys = Arc::new(self.unwrap_rows(&rows)?);
        if let Ok(mut m) = self.tenants.lock() {
            m.insert(tenant_id, keys.clone());
        }
        Ok(keys)
    }

    fn unwrap_rows(&self, rows: &[tenant_key::Model]) -> Result<TenantKeys> {
        let mut keys = HashMap::new();
        let mut current = 0;
        for r in rows {
            let master = self.master_by_id(&r.master_key_id)?;
            let dek = master
                .unwrap(&r.wrapped_key)
                .map_err(|e| Error::Internal(format!("unwrapping data key: {e}")))?;
            keys.insert(r.version, dek);
            current = current.max(r.version);
        }
        Ok(TenantKeys {
            current,
            keys,
            loaded_at: std::time::Instant::now(),
        })
    }

    /// Adds a new data key version for the tenant; new writes use it.
    pub async fn rotate_tenant(&self, db: &DatabaseConnection, tenant_id: Uuid) -> Result<i32> {
        let current = self.tenant(db, tenant_id).await?.current;
        tenant_key::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant_id),
            version: Set(current + 1),
            wrapped_key: Set(self.master.wrap(&DataKey::generate())),
            master_key_id: Set(self.master.id()),
            created_at: Set(crate::clock::now()),
        }
        .insert(db)
        .await?;
        if let Ok(mut m) = self.tenants.lock() {
            m.remove(&tenant_id);
        }
        Ok(current + 1)
    }

    /// Re-wraps every data key held under an earlier master key with the
    /// current one; returns how many were re-wrapped.
    pub async fn rewrap_all(&self, db: &DatabaseConnection) -> Result<u64> {
        let stale = tenant_key::Entity::find()
            .filter(tenant_key::Column::MasterKeyId.ne(self.master.id()))
            .all(db)
            .await?;
        let mut n = 0;
        for row in stale {
            let dek = self
                .master_by_id(&row.master_key_id)?
                .unwrap(&row.wrapped_key)
                .map_err(|e| Error::Internal(format!("unwrapping data key: {e}")))?;
            let mut active: tenant_key::ActiveModel = row.into();
            active.wrapped_key = Set(self.master.wrap(&dek));
            active.master_key_id = Set(self.master.id());
            active.update(db).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Seals a small secret (a TOTP seed, a signing key) with the master key.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> String {
        format!(
            "{}:{}",
            self.master.id(),
            self.master.seal(plaintext, aad.as_bytes())
        )
    }

    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>> {
        let (id, body) = sealed
            .split_once(':')
            .ok_or_else(|| Error::Internal("malformed sealed secret".to_owned()))?;
        self.master_by_id(id)?
            .open(body, aad.as_bytes())
            .map_err(|e| Error::Internal(format!("opening a sealed secret: {e}")))
    }
}

async fn load_rows<C: ConnectionTrait>(db: &C, tenant_id: Uuid) -> Result<Vec<tenant_key::Model>> {
    Ok(tenant_key::Entity::find()
        .filter(tenant_key::Column::TenantId.eq(tenant_id))
        .order_by_asc(tenant_key::Column::Version)
        .all(db)
        .await?)
}

fn load_or_create(path: &std::path::Path) -> Result<MasterKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::from_base64(text.trim())
            .map_err(|e| Error::Internal(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate();
            write_private(path, &key.to_base64())?;
            tracing::warn!(
                path = %path.display(),
                "created a new master key file; back it up: without it encrypted fields cannot be read"
            );
            Ok(key)
        }
        Err(e) => Err(Error::Internal(format!("reading {}: {e}", path.display()))),
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| Error::Internal(format!("creating {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::Internal(format!("writing {}: {e}", path.display())))
}
