//! The one wasmtime [`Engine`] of a kernel process, its epoch ticker, and
//! the on-disk cache of compiled components.
//!
//! Compiling a component takes tens to hundreds of milliseconds; loading a
//! compiled artefact well under one. Artefacts are keyed by the component's
//! SHA-256 and the engine's compatibility hash (wasmtime version and
//! configuration), so an upgrade or a changed setting recompiles instead of
//! loading something incompatible.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::error::{Error, Result};

/// How often the epoch advances: the granularity of deadlines.
pub const TICK: Duration = Duration::from_millis(5);

/// The largest memory any plugin may be given (the pooling allocator
/// reserves slots of this size).
pub const MAX_MEMORY_BYTES: usize = 256 << 20;

/// The process's engine and compile cache.
pub struct PluginEngine {
    pub engine: Engine,
    cache_dir: Option<PathBuf>,
    /// Whether instances come from the pooling allocator.
    pub pooling: bool,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("cache_dir", &self.cache_dir)
            .field("pooling", &self.pooling)
            .finish()
    }
}

fn config(pooling: bool) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true)
        .epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed)
        // Deep recursion traps instead of exhausting the host's stack.
        .max_wasm_stack(512 << 10)
        .async_stack_size(1 << 20);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        // Concurrent instances per process; each memory slot reserves address
        // space (not memory) up front.
        pool.total_component_instances(64)
            .total_core_instances(256)
            .total_memories(128)
            .total_tables(256)
            .total_stacks(64)
            .max_memory_size(MAX_MEMORY_BYTES)
            .max_memories_per_component(8)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

impl PluginEngine {
    /// Builds the engine (pooling allocator when asked and available) and
    /// starts its epoch ticker.
    pub fn new(cache_dir: Option<PathBuf>, pooling: bool) -> Result<Arc<PluginEngine>> {
        let built = if pooling {
            match Engine::new(&config(true)) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(
                        "pooling allocator unavailable ({e}); plugins use on-demand instances"
                    );
                    None
                }
            }
        } else {
            None
        };
        let pooling = built.is_some();
        let engine = match built {
            Some(e) => e,
            None => Engine::new(&config(false))
                .map_err(|e| Error::Internal(format!("wasmtime engine: {e}")))?,
        };
        start_ticker(&engine);
        Ok(Arc::new(PluginEngine {
            engine,
            cache_dir,
            pooling,
        }))
    }

    /// The component for `bytes`: from the disk cache when present, else
    /// compiled (and cached).
    pub fn component(&self, bytes: &[u8]) -> Result<Component> {
        let Some(dir) = &self.cache_dir else {
            return self.compile(bytes);
        };
        let key = self.cache_key(bytes);
        let path = dir.join(format!("{key}.cwasm"));
        if let Some(c) = self.load_cached(&path) {
            return Ok(c);
        }
        let serialized = self
            .engine
            .precompile_component(bytes)
            .map_err(|e| Error::Validation(vec![invalid_component(&e)]))?;
        // Written whole under a temporary name, then renamed: a concurrent
        // reader sees the old state or the complete file, never half of it.
        if std::fs::create_dir_all(dir).is_ok() {
            let tmp = dir.join(format!("{key}.{}.tmp", uuid::Uuid::new_v4().simple()));
            let digest = hex(&Sha256::digest(&serialized));
            if std::fs::write(&tmp, &serialized).is_ok()
                && std::fs::write(path.with_extension("sha256"), &digest).is_ok()
            {
                let _ = std::fs::rename(&tmp, &path);
            }
            let _ = std::fs::remove_file(&tmp);
        }
        self.deserialize_trusted(&serialized)
    }

    fn compile(&self, bytes: &[u8]) -> Result<Component> {
        Component::new(&self.engine, bytes)
            .map_err(|e| Error::Validation(vec![invalid_component(&e)]))
    }

    fn cache_key(&self, bytes: &[u8]) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{}-{:016x}", hex(&Sha256::digest(bytes)), h.finish())
    }

    fn load_cached(&self, path: &Path) -> Option<Component> {
        let bytes = std::fs::read(path).ok()?;
        let expected = std::fs::read_to_string(path.with_extension("sha256")).ok()?;
        // A truncated or altered artefact is recompiled, never loaded.
        if hex(&Sha256::digest(&bytes)) != expected.trim() {
            return None;
        }
        self.deserialize_trusted(&bytes).ok()
    }

    /// Loads an artefact this kernel compiled itself.
    #[allow(unsafe_code)]
    fn deserialize_trusted(&self, serialized: &[u8]) -> Result<Component> {
        // SAFETY: `serialized` is wasmtime's own output, produced by this
        // engine's configuration either just now or earlier into the cache
        // directory (which only the kernel writes) and checked against the
        // digest written with it. wasmtime validates the header (version,
        // configuration) itself; what it cannot validate is machine code
        // from an untrusted source, and that never reaches this function.
        unsafe { Component::deserialize(&self.engine, serialized) }
            .map_err(|e| Error::Internal(format!("loading a compiled plugin: {e}")))
    }
}

fn invalid_component(e: &wasmtime::Error) -> crate::error::FieldError {
    crate::error::FieldError::new(
        "component",
        "invalid_component",
        format!("not a WebAssembly component wasmtime can compile: {e}"),
    )
}

/// Advances the engine's epoch every [`TICK`] until the engine is dropped.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    let _ = std::thread::Builder::new()
        .name("trellis-plugin-epoch".to_owned())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        });
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
