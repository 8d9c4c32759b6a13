//! One typed configuration, read in order of precedence: defaults < TOML file
//! < `TRELLIS_*` environment variables < command-line flags.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// The kernel's configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    /// `sqlite://PATH?mode=rwc` (the embedded default) or `postgres://...`.
    pub database_url: String,
    /// Largest accepted request body, in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Largest accepted import file, in bytes (uploads are streamed).
    pub max_import_bytes: u64,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// A fixed development API token for the default tenant's admin. When
    /// absent, `serve` creates a random one and prints it.
    pub dev_token: Option<String>,
    /// Largest database connection pool per process.
    pub max_connections: u32,
    /// How long a process trusts a verified API token before checking the
    /// database again; a revoked token works at most this long. 0 disables.
    pub token_cache_seconds: u64,
    /// The master key (32 bytes, standard base64) that wraps every tenant's
    /// data key and the token-signing keys. Takes precedence over
    /// `master_key_file`.
    pub master_key: Option<String>,
    /// A file holding the master key in base64; created with a new random
    /// key when missing, so a fresh install needs no set-up. Every kernel
    /// process of one database must use the same key.
    pub master_key_file: std::path::PathBuf,
    /// Earlier master keys, still accepted for unwrapping while
    /// `trellis keys rewrap` moves data keys to the current one.
    pub previous_master_keys: Vec<String>,
    /// argon2id parameters for new password hashes.
    pub password: crate::auth::password::PasswordParams,
    /// Issuer and audience of access tokens.
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// Lifetime of an access token.
    pub access_token_seconds: i64,
    /// Failed logins per account within `login_window_seconds` before a lockout.
    pub login_max_failures: i32,
    /// Failed logins per IP address within the window before a lockout.
    pub login_max_failures_per_ip: i32,
    pub login_window_seconds: i64,
    pub lockout_seconds: i64,
    /// Trust the first address of `X-Forwarded-For` as the client's (only
    /// behind a proxy that sets it).
    pub trust_forwarded_for: bool,
    /// Mark session cookies `Secure` (on when served over TLS or behind a
    /// TLS-terminating proxy; always on when `public_url` is https).
    /// Env: TRELLIS_SECURE_COOKIES.
    pub secure_cookies: bool,
    /// The URL users reach the UI at, for links in emails.
    pub public_url: String,
    /// A folder of the reseller's own themes (each a folder with a
    /// `theme.toml`), loaded beside the shipped ones.
    pub themes_dir: Option<std::path::PathBuf>,
    /// The plugin host.
    pub plugins: PluginConfig,
}

/// Settings of the plugin host (`[plugins]` in the file).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// Where compiled components are cached (absent: compile in memory
    /// on every start).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Instantiate from wasmtime's pooling allocator (falls back to
    /// on-demand allocation where the pool cannot be reserved).
    pub pooling: bool,
    /// Default deadline of one invocation, and the most a plugin or tenant
    /// may be given.
    pub deadline_ms: u64,
    pub max_deadline_ms: u64,
    /// Default memory of one invocation, and the most allowed.
    pub memory_mb: u64,
    pub max_memory_mb: u64,
    /// Host calls one invocation may make.
    pub host_calls: u32,
    /// Largest input or output of one invocation.
    pub io_bytes: usize,
    /// Consecutive failures after which a plugin is disabled for a tenant.
    pub breaker_threshold: i32,
    /// Timeout of a plugin's outbound HTTP request.
    pub http_timeout_ms: u64,
    /// Run queued jobs (imports, after-write hooks, plugin jobs) in this
    /// process.
    pub run_jobs: bool,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            cache_dir: Some(".trellis/plugin-cache".into()),
            pooling: true,
            deadline_ms: 1000,
            max_deadline_ms: 30_000,
            memory_mb: 64,
            max_memory_mb: 256,
            host_calls: 1000,
            io_bytes: 1 << 20,
            breaker_threshold: 5,
            http_timeout_ms: 10_000,
            run_jobs: true,
        }
    }
}

impl PluginConfig {
    /// The host's settings, with maximums capped by what the engine allows.
    pub fn settings(
        &self,
        cache_ttl: std::time::Duration,
    ) -> crate::plugins::runtime::HostSettings {
        use std::time::Duration;
        let max_memory =
            ((self.max_memory_mb as usize) << 20).min(crate::plugins::engine::MAX_MEMORY_BYTES);
        crate::plugins::runtime::HostSettings {
            cache_dir: self.cache_dir.clone(),
            pooling: self.pooling,
            limits: crate::plugins::sandbox::Limits {
                deadline: Duration::from_millis(self.deadline_ms.min(self.max_deadline_ms)),
                memory_bytes: ((self.memory_mb as usize) << 20).min(max_memory),
                host_calls: self.host_calls,
                io_bytes: self.io_bytes,
            },
            max_deadline: Duration::from_millis(self.max_deadline_ms),
            max_memory_bytes: max_memory,
            breaker_threshold: self.breaker_threshold.max(1),
            http_timeout: Duration::from_millis(self.http_timeout_ms),
            cache_ttl,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://trellis.db?mode=rwc".to_owned(),
            max_body_bytes: 4 * 1024 * 1024,
            max_import_bytes: 2 << 30,
            log_format: LogFormat::Text,
            dev_token: None,
            max_connections: 16,
            token_cache_seconds: 5,
            master_key: None,
            master_key_file: "trellis.key".into(),
            previous_master_keys: Vec::new(),
            password: Default::default(),
            jwt_issuer: "trellis".to_owned(),
            jwt_audience: "trellis-api".to_owned(),
            access_token_seconds: 900,
            login_max_failures: 5,
            login_max_failures_per_ip: 50,
            login_window_seconds: 900,
            lockout_seconds: 900,
            trust_forwarded_for: false,
            secure_cookies: false,
            public_url: "http://127.0.0.1:8080".to_owned(),
            themes_dir: None,
            plugins: PluginConfig::default(),
        }
    }
}

/// Values given on the command line; each overrides file and environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub log_format: Option<LogFormat>,
    pub dev_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("invalid value for {var}: {message}")]
    Env { var: &'static str, message: String },
}

impl Config {
    /// Builds the configuration from an optional file, the process
    /// environment and the command-line overrides.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None if Path::new("trellis.toml").exists() => {
                Self::from_file(Path::new("trellis.toml"))?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.apply_overrides(overrides);
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })
    }

    /// Applies `TRELLIS_*` variables; `lookup` is the environment (a closure so
    /// tests need not mutate the process environment).
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &'static str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                var,
                message: e.to_string(),
            })
        }
        if let Some(v) = lookup("TRELLIS_BIND") {
            self.bind = parse("TRELLIS_BIND", &v)?;
        }
        if let Some(v) = lookup("TRELLIS_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = lookup("TRELLIS_MAX_BODY_BYTES") {
            self.max_body_bytes = parse("TRELLIS_MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = lookup("TRELLIS_MAX_IMPORT_BYTES") {
            self.max_import_bytes = parse("TRELLIS_MAX_IMPORT_BYTES", &v)?;
        }
        if let Some(v) = lookup("TRELLIS_MAX_CONNECTIONS") {
            self.max_connections = parse("TRELLIS_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = lookup("TRELLIS_TOKEN_CACHE_SECONDS") {
            self.token_cache_seconds = parse("TRELLIS_TOKEN_CACHE_SECONDS", &v)?;
        }
        if let Some(v) = lookup("TRELLIS_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(ConfigError::Env {
                        var: "TRELLIS_LOG_FORMAT",
                        message: format!("expected `text` or `json`, got `{other}`"),
                    });
                }
            };
        }
        if let Some(v) = lookup("TRELLIS_MASTER_KEY") {
            self.master_key = Some(v);
        }
        if let Some(v) = lookup("TRELLIS_MASTER_KEY_FILE") {
            self.master_key_file = v.into();
        }
        if let Some(v) = lookup("TRELLIS_PUBLIC_URL") {
            self.public_url = v;
        }
        if let Some(v) = lookup("TRELLIS_DEV_TOKEN") {
            self.dev_token = Some(v);
        }
        if let Some(v) = lookup("TRELLIS_THEMES_DIR") {
            self.themes_dir = Some(v.into());
        }
        if let Some(v) = lookup("TRELLIS_SECURE_COOKIES") {
            self.secure_cookies = parse("TRELLIS_SECURE_COOKIES", &v)?;
        }
        // Served over TLS: cookies are `Secure` whatever the file said.
        if self.public_url.starts_with("https://") {
            self.secure_cookies = true;
        }
        Ok(())
    }

    pub fn apply_overrides(&mut self, o: Overrides) {
        if let Some(v) = o.bind {
            self.bind = v;
        }
        if let Some(v) = o.database_url {
            self.database_url = v;
        }
        if let Some(v) = o.log_format {
            self.log_format = v;
        }
        if let Some(v) = o.dev_token {
            self.dev_token = Some(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let mut config: Config =
            toml::from_str("bind = \"0.0.0.0:9000\"\ndatabase_url = \"sqlite://file.db\"").unwrap();
        config
            .apply_env(|name| match name {
                "TRELLIS_DATABASE_URL" => Some("postgres://env/db".to_owned()),
                "TRELLIS_MAX_BODY_BYTES" => Some("1024".to_owned()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.bind, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(config.database_url, "postgres://env/db");
        assert_eq!(config.max_body_bytes, 1024);
        config.apply_overrides(Overrides {
            database_url: Some("sqlite://flag.db".to_owned()),
            ..Default::default()
        });
        assert_eq!(config.database_url, "sqlite://flag.db");
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let mut config = Config::default();
        let err = config
            .apply_env(|name| (name == "TRELLIS_BIND").then(|| "not an address".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("TRELLIS_BIND"), "{err}");
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        assert!(toml::from_str::<Config>("bnd = \"x\"").is_err());
    }
}
