//! The Trellis kernel: the CRM core, its REST API and the `trellis` command.
//!
//! The request path is the same for every caller: the [`context`] extractor
//! names tenant, actor and roles; the handler in [`api`] asks
//! [`permissions`]; the service in [`crm`] does the work in a transaction,
//! writes the [`audit`] trail and the search index.

pub mod api;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod context;
pub mod crm;
pub mod crypto;
pub mod db;
pub mod directory;
pub mod editions;
pub mod entities;
pub mod error;
pub mod imports;
pub mod jobs;
pub mod keys;
pub mod permissions;
pub mod plugins;
pub mod seed;
pub mod tenancy;
pub mod web;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

pub use config::Config;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    /// Recently verified API tokens (see [`auth::tokens::TokenCache`]).
    pub tokens: Arc<auth::tokens::TokenCache>,
    /// Tenants, users and policies recently read (see [`cache`]).
    pub caches: Arc<cache::Caches>,
    /// The master key and unwrapped tenant data keys.
    pub keyring: Arc<keys::Keyring>,
    /// Signing and verifying access tokens.
    pub access: Arc<auth::access::AccessTokens>,
    /// The plugin host.
    pub plugins: Option<Arc<plugins::Runtime>>,
    /// The UI's themes (shipped and the reseller's own).
    pub themes: Arc<web::themes::Themes>,
}

impl AppState {
    /// Connects to the configured database, applies migrations (and the
    /// index rebuilds they queue), seals audit entries written before the
    /// chain existed, and loads the keys.
    pub async fn open(config: Config) -> error::Result<AppState> {
        let db = db::connect(&config.database_url, config.max_connections).await?;
        db::migrate(&db).await?;
        crm::search::rebuild_pending(&db).await?;
        audit::chain::seal_unsealed(&db).await?;
        let ttl = std::time::Duration::from_secs(config.token_cache_seconds);
        let keyring = Arc::new(keys::Keyring::from_config(&config)?);
        let access = Arc::new(auth::access::AccessTokens::new(&config));
        access.reload(&db, &keyring).await?;
        let plugins =
            plugins::Runtime::new(db.clone(), keyring.clone(), config.plugins.settings(ttl))?;
        let themes = Arc::new(web::themes::Themes::load(config.themes_dir.as_deref())?);
        Ok(AppState {
            plugins: Some(plugins),
            db,
            config: Arc::new(config),
            tokens: Arc::new(auth::tokens::TokenCache::new(ttl)),
            caches: Arc::new(cache::Caches::new(ttl)),
            keyring,
            access,
            themes,
        })
    }

    /// The HTTP application.
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }
}
