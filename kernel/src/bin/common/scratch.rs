//! The database a benchmark runs on: a temporary SQLite file, or a scratch
//! database created on a PostgreSQL server and dropped afterwards.

use anyhow::Result;
use sea_orm::{ConnectionTrait, Database};

pub struct Scratch {
    pub url: String,
    dir: Option<tempfile::TempDir>,
    admin: Option<(String, String)>,
}

impl Scratch {
    /// `postgres`: an admin URL of the server to create the database on;
    /// `None`: SQLite in a temporary directory.
    pub async fn new(postgres: Option<&str>, prefix: &str) -> Result<Scratch> {
        match postgres {
            Some(admin_url) => {
                let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
                Database::connect(admin_url)
                    .await?
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await?;
                Ok(Scratch {
                    url: trellis::db::with_database(admin_url, &name),
                    dir: None,
                    admin: Some((admin_url.to_owned(), name)),
                })
            }
            None => {
                let dir = tempfile::tempdir()?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("bench.db").display()
                );
                Ok(Scratch {
                    url,
                    dir: Some(dir),
                    admin: None,
                })
            }
        }
    }

    /// Leaves the database in place (for a look afterwards; `trellis-bench
    /// --keep`, which the other benchmark binaries do not offer).
    #[allow(dead_code)]
    pub fn keep(self) {
        if let Some(dir) = self.dir {
            let _ = dir.keep();
        }
    }

    /// Drops the scratch database (or the temporary directory).
    pub async fn remove(self) {
        if let Some((admin_url, name)) = &self.admin
            && let Ok(db) = Database::connect(admin_url).await
        {
            let _ = db
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
        drop(self.dir);
    }
}
