//! Editions: a vertical's manifest (`verticals/*.toml`) of pipelines,
//! custom fields, roles, plugins with their default grants, views,
//! dashboard widgets and a theme, applied to a tenant.
//!
//! Applying is idempotent and additive. Every item has a natural key
//! (`pipeline:Buyers`, `stage:Buyers/Offer`, `field:contact.buyer_max_price`,
//! `role:agent`, `plugin:real-estate`, `theme:estate`); the keys an edition
//! created or found for a tenant are kept in `tenant_editions`. An item
//! whose key is recorded is never touched again, so what the tenant changed
//! or deleted stays that way; a newer edition version adds only the items
//! whose keys are new. An item the tenant already had (same natural key) is
//! adopted, not copied. The one exception is a plugin's version: a tenant
//! still running an older version of an edition's plugin is moved to the
//! newest installed one, with its own grants and configuration kept.

use std::collections::BTreeSet;

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::crm::custom_fields::CustomFieldInput;
use crate::crm::pipelines::{PipelineInput, StageInput};
use crate::directory::roles::RoleInput;
use crate::entities::{tenant_edition, tenant_plugin};
use crate::error::{Error, Result};
use crate::permissions::{Action, ObjectType};

/// The editions built into this kernel, `(id, manifest text)`.
pub const BUILT_IN: &[(&str, &str)] = &[(
    "real-estate",
    include_str!("../../verticals/real-estate.toml"),
)];

/// An edition manifest.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Edition {
    pub id: String,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// The theme tenants of this edition start with.
    #[serde(default)]
    pub theme: Option<String>,
    #[serde(default)]
    pub plugins: Vec<EditionPlugin>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub pipelines: Vec<PipelineInput>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub custom_fields: Vec<CustomFieldInput>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub roles: Vec<RoleInput>,
    /// Saved views shared with the tenant's users (the lists' "Views").
    #[serde(default)]
    pub saved_views: Vec<EditionView>,
    /// Dashboard widgets: shared views pinned to the dashboard, shown as
    /// the count of the records they find.
    #[serde(default)]
    pub dashboard_widgets: Vec<EditionView>,
    /// Demo data seeded with `--demo`.
    #[serde(default)]
    pub demo: Option<Demo>,
}

/// A plugin an edition enables, with the grants and configuration it gets.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditionPlugin {
    pub id: String,
    /// Capabilities granted; absent: every capability the manifest asks for.
    pub grants: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Option<Value>,
}

/// A shared saved view of a list, or a dashboard widget counting what one
/// finds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditionView {
    /// `contact`, `account`, `deal` or `activity`.
    pub object_type: String,
    /// The view's name (a widget's title).
    #[serde(alias = "title")]
    pub name: String,
    /// The list's query string, as the API's lists take it
    /// (`filter=custom.pre_approved:eq:true&sort=-updated_at`).
    #[serde(default)]
    pub query: String,
}

/// The record types that have a list in the web UI, and its path.
pub fn list_path(object: ObjectType) -> Option<&'static str> {
    match object {
        ObjectType::Contact => Some("contacts"),
        ObjectType::Account => Some("accounts"),
        ObjectType::Deal => Some("deals"),
        ObjectType::Activity => Some("activities"),
        _ => None,
    }
}

/// How many records of `object` the list `query` finds for `ctx` (a view's
/// query is checked by running it, after the edition's fields exist).
pub async fn count_view(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
    query: &str,
) -> Result<u64> {
    use crate::crm::{
        accounts::Accounts, activities::Activities, contacts::Contacts, deals::Deals,
    };
    let q = if query.is_empty() {
        "count=true&limit=1".to_owned()
    } else {
        format!("{query}&count=true&limit=1")
    };
    let page = match object {
        ObjectType::Contact => crate::crm::records::list::<Contacts>(db, ctx, Some(&q)).await?,
        ObjectType::Account => crate::crm::records::list::<Accounts>(db, ctx, Some(&q)).await?,
        ObjectType::Deal => crate::crm::records::list::<Deals>(db, ctx, Some(&q)).await?,
        ObjectType::Activity => crate::crm::records::list::<Activities>(db, ctx, Some(&q)).await?,
        _ => {
            return Err(Error::field(
                "object_type",
                "invalid_value",
                "contact, account, deal or activity",
            ));
        }
    };
    Ok(page.total.unwrap_or(0))
}

/// How much demo data.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Demo {
    pub contacts: usize,
    /// Plugin jobs queued after the demo data is seeded, so an edition's
    /// plugins add their own demo records (listings, showings...) through
    /// the same services as everything else.
    #[serde(default)]
    pub jobs: Vec<DemoJob>,
}

/// A plugin job an edition's demo data set runs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DemoJob {
    pub plugin: String,
    pub job: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// Queues the edition's demo jobs for the tenant (after its demo data was
/// seeded); the job runner runs them.
pub async fn queue_demo_jobs(
    db: &sea_orm::DatabaseConnection,
    tenant_id: Uuid,
    edition: &Edition,
) -> Result<usize> {
    let Some(demo) = &edition.demo else {
        return Ok(0);
    };
    for j in &demo.jobs {
        crate::jobs::enqueue(
            db,
            tenant_id,
            crate::jobs::Kind::PluginJob,
            Some(&j.plugin),
            &j.job,
            j.payload.clone(),
            crate::clock::now(),
        )
        .await?;
    }
    Ok(demo.jobs.len())
}

impl Edition {
    /// Parses an edition manifest.
    pub fn parse(text: &str) -> Result<Edition> {
        let e: Edition = toml::from_str(text)
            .map_err(|e| Error::field("edition", "invalid_format", e.to_string()))?;
        for (i, f) in e.custom_fields.iter().enumerate() {
            if let Err(errors) = crate::crm::custom_fields::check_definition(f, Uuid::nil()) {
                let detail: Vec<String> = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                return Err(Error::field(
                    format!("custom_fields[{i}]"),
                    "invalid_value",
                    detail.join("; "),
                ));
            }
        }
        for (what, views) in [
            ("saved_views", &e.saved_views),
            ("dashboard_widgets", &e.dashboard_widgets),
        ] {
            for (i, v) in views.iter().enumerate() {
                if ObjectType::parse(&v.object_type)
                    .and_then(list_path)
                    .is_none()
                {
                    return Err(Error::field(
                        format!("{what}[{i}].object_type"),
                        "invalid_value",
                        "contact, account, deal or activity",
                    ));
                }
                if v.name.trim().is_empty() || v.name.chars().count() > 80 {
                    return Err(Error::field(
                        format!("{what}[{i}].name"),
                        "invalid_value",
                        "a name of 1 to 80 characters",
                    ));
                }
            }
        }
        Ok(e)
    }

    /// A built-in edition by id.
    pub fn built_in(id: &str) -> Result<Edition> {
        let (_, text) = BUILT_IN.iter().find(|(i, _)| *i == id).ok_or_else(|| {
            Error::field(
                "edition",
                "unknown_edition",
                format!(
                    "no edition `{id}`; there are: {}",
                    BUILT_IN
                        .iter()
                        .map(|(i, _)| *i)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        Edition::parse(text)
    }
}

/// What applying an edition did.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Applied {
    pub edition: String,
    pub version: String,
    /// Items created now.
    pub created: Vec<String>,
    /// Items the tenant already had under the same key, adopted.
    pub adopted: Vec<String>,
    /// Items applied before, left as the tenant has them.
    pub kept: Vec<String>,
    /// Plugins moved to a newer version (`plugin:ID@VERSION`), with the
    /// tenant's grants, configuration and limits kept.
    pub upgraded: Vec<String>,
}

/// Applies `edition` to the caller's tenant (needs the right to manage the
/// tenant's settings).
pub async fn apply(state: &AppState, ctx: &RequestContext, edition: &Edition) -> Result<Applied> {
    ctx.require(ObjectType::Tenant, Action::ManageSettings)?;
    let db = &state.db;
    let row = tenant_edition::Entity::find()
        .filter(tenant_edition::Column::TenantId.eq(ctx.tenant_id))
        .filter(tenant_edition::Column::EditionId.eq(edition.id.as_str()))
        .one(db)
        .await?;
    let mut done: BTreeSet<String> = row
        .as_ref()
        .and_then(|r| serde_json::from_value(r.applied.clone()).ok())
        .unwrap_or_default();
    let mut report = Applied {
        edition: edition.id.clone(),
        version: edition.version.clone(),
        ..Default::default()
    };
    let system = {
        let mut s = RequestContext::system(ctx.tenant_id);
        s.plugins = ctx.plugins.clone();
        s.keyring = ctx.keyring.clone();
        s
    };

    // Custom fields first: pipelines, roles and plugins may refer to them.
    for f in &edition.custom_fields {
        let key = format!("field:{}.{}", f.object_type.as_str(), f.key);
        if done.contains(&key) {
            report.kept.push(key);
            continue;
        }
        let exists = crate::crm::custom_fields::definitions(db, ctx.tenant_id, f.object_type)
            .await?
            .iter()
            .any(|d| d.key == f.key);
        if exists {
            report.adopted.push(key.clone());
        } else {
            crate::crm::field_definitions::create(db, &system, f.clone()).await?;
            report.created.push(key.clone());
        }
        done.insert(key);
    }

    for p in &edition.pipelines {
        apply_pipeline(db, &system, p, &mut done, &mut report).await?;
    }

    for r in &edition.roles {
        let key = format!("role:{}", r.key);
        if done.contains(&key) {
            report.kept.push(key);
            continue;
        }
        let exists = crate::directory::roles::list(db, &system)
            .await?
            .iter()
            .any(|x| x.key == r.key);
        if exists {
            report.adopted.push(key.clone());
        } else {
            crate::directory::roles::put(state, &system, r.clone()).await?;
            report.created.push(key.clone());
        }
        done.insert(key);
    }

    for p in &edition.plugins {
        apply_plugin(state, &system, p, &mut done, &mut report).await?;
    }

    if let Some(theme) = &edition.theme {
        apply_theme(state, ctx.tenant_id, theme, &mut done, &mut report).await?;
    }

    for (views, pinned) in [
        (&edition.saved_views, false),
        (&edition.dashboard_widgets, true),
    ] {
        for v in views {
            apply_view(db, &system, v, pinned, &mut done, &mut report).await?;
        }
    }

    let now = crate::clock::now();
    match row {
        Some(r) => {
            let mut a: tenant_edition::ActiveModel = r.into();
            a.version = Set(edition.version.clone());
            a.applied = Set(json!(done));
            a.applied_at = Set(now);
            a.update(db).await?;
        }
        None => {
            tenant_edition::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(ctx.tenant_id),
                edition_id: Set(edition.id.clone()),
                version: Set(edition.version.clone()),
                applied: Set(json!(done)),
                applied_at: Set(now),
            }
            .insert(db)
            .await?;
        }
    }
    audit::record(
        db,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Tenant,
            ctx.tenant_id,
            AuditAction::Configure,
            json!({"edition": edition.id, "version": edition.version,
                   "created": report.created, "adopted": report.adopted,
                   "upgraded": report.upgraded}),
        )],
    )
    .await?;
    Ok(report)
}

/// A plugin: installed from the kernel's bundle when it ships there (and
/// its bundled version is not installed yet), then enabled with the
/// edition's grants and configuration the first time (a plugin the tenant
/// had set up itself is adopted as it is). Applied before, it
/// is moved to the newest installed version if the tenant still runs an
/// older one, keeping the tenant's configuration, limits and grants (a
/// grant the admin revoked stays revoked); capabilities new in that version
/// are granted as the edition grants them. A plugin the tenant disabled
/// stays disabled.
async fn apply_plugin(
    state: &AppState,
    system: &RequestContext,
    p: &EditionPlugin,
    done: &mut BTreeSet<String>,
    report: &mut Applied,
) -> Result<()> {
    use crate::plugins::manifest::Manifest;
    use crate::plugins::registry::{self, EnableRequest, version_order};

    let key = format!("plugin:{}", p.id);
    let mut packages = registry::packages(state).await?;
    if let Some(b) = crate::plugins::bundled::find(&p.id) {
        let bundled = Manifest::parse(b.manifest)?;
        if !packages
            .iter()
            .any(|x| x.plugin_id == p.id && x.version == bundled.version)
        {
            // Shipped with the kernel: installed the first time it is needed.
            registry::install(state, b.manifest, b.component.to_vec()).await?;
            packages = registry::packages(state).await?;
        }
    }
    // Newest first.
    let Some(package) = packages.iter().find(|x| x.plugin_id == p.id) else {
        return Err(Error::field(
            "plugins",
            "plugin_not_installed",
            format!(
                "the edition needs plugin `{}`, which is not installed",
                p.id
            ),
        ));
    };
    let manifest_of = |v: &Value| {
        serde_json::from_value::<Manifest>(v.clone()).map_err(|e| Error::Internal(e.to_string()))
    };
    let newest = manifest_of(&package.manifest)?;
    let defaults = match &p.grants {
        Some(g) => g.clone(),
        None => newest.capabilities(),
    };

    let row = tenant_plugin::Entity::find()
        .filter(tenant_plugin::Column::TenantId.eq(system.tenant_id))
        .filter(tenant_plugin::Column::PluginId.eq(p.id.as_str()))
        .one(&state.db)
        .await?;
    if !done.contains(&key) && row.is_some() {
        // Set up (or disabled) by the tenant before: theirs as it is.
        report.adopted.push(key.clone());
        done.insert(key);
        return Ok(());
    }
    if !done.contains(&key) {
        registry::enable(
            state,
            system,
            &p.id,
            EnableRequest {
                version: None,
                grants: defaults,
                config: p.config.clone(),
                limits: None,
            },
        )
        .await?;
        report.created.push(key.clone());
        done.insert(key);
        return Ok(());
    }

    let Some(row) =
        row.filter(|r| r.enabled && version_order(&r.version) < version_order(&package.version))
    else {
        report.kept.push(key);
        return Ok(());
    };
    // What the running version asked for: a capability it did not ask for
    // is new, and gets the edition's default; the rest stay as granted.
    let asked_before = match packages
        .iter()
        .find(|x| x.plugin_id == p.id && x.version == row.version)
    {
        Some(old) => manifest_of(&old.manifest)?.capabilities(),
        None => Vec::new(),
    };
    let asked_now = newest.capabilities();
    let mut grants: Vec<String> = serde_json::from_value::<Vec<String>>(row.grants.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|g| asked_now.contains(g))
        .collect();
    for g in defaults {
        if !asked_before.contains(&g) && asked_now.contains(&g) && !grants.contains(&g) {
            grants.push(g);
        }
    }
    registry::enable(
        state,
        system,
        &p.id,
        EnableRequest {
            version: Some(package.version.clone()),
            grants,
            // Secrets come back as the mask, which keeps their sealed value.
            config: Some(crate::plugins::secrets::masked(&row.config)),
            limits: Some(row.limits.clone()),
        },
    )
    .await?;
    report.upgraded.push(format!("{key}@{}", package.version));
    Ok(())
}

/// The edition's theme, for a tenant that has none of its own and whose
/// reseller brands nothing: the tenant's or the reseller's look is never
/// replaced.
async fn apply_theme(
    state: &AppState,
    tenant_id: Uuid,
    theme: &str,
    done: &mut BTreeSet<String>,
    report: &mut Applied,
) -> Result<()> {
    use crate::entities::{reseller, tenant};

    let key = format!("theme:{theme}");
    if done.contains(&key) {
        report.kept.push(key);
        return Ok(());
    }
    let unknown = || {
        Error::field(
            "theme",
            "unknown_theme",
            format!("the edition's theme `{theme}` is not installed on this server"),
        )
    };
    if !state.themes.contains(theme) {
        return Err(unknown());
    }
    let t = tenant::Entity::find_by_id(tenant_id)
        .one(&state.db)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    let reseller = match t.reseller_id {
        Some(r) => reseller::Entity::find_by_id(r).one(&state.db).await?,
        None => None,
    };
    let branded = reseller.as_ref().is_some_and(|r| r.theme.is_some());
    if t.theme.is_some() || branded || theme == crate::web::themes::DEFAULT {
        report.adopted.push(key.clone());
    } else {
        if !state
            .themes
            .get(Some(theme))
            .available_to(reseller.as_ref().map(|r| r.slug.as_str()))
        {
            return Err(unknown());
        }
        let mut a: tenant::ActiveModel = t.into();
        a.theme = Set(Some(theme.to_owned()));
        a.update(&state.db).await?;
        state.caches.tenants.remove(&tenant_id);
        report.created.push(key.clone());
    }
    done.insert(key);
    Ok(())
}

/// A pipeline by name: created whole when new; when applied before, only
/// stages new to the edition are appended.
async fn apply_pipeline(
    db: &sea_orm::DatabaseConnection,
    system: &RequestContext,
    p: &PipelineInput,
    done: &mut BTreeSet<String>,
    report: &mut Applied,
) -> Result<()> {
    let key = format!("pipeline:{}", p.name);
    let stage_key = |s: &StageInput| format!("stage:{}/{}", p.name, s.name);
    let existing = crate::crm::pipelines::list(db, system)
        .await?
        .into_iter()
        .find(|x| x.name == p.name);
    let Some(existing) = existing else {
        if done.contains(&key) {
            // Applied before and since deleted by the tenant: stays deleted.
            report.kept.push(key);
            return Ok(());
        }
        crate::crm::pipelines::create(db, system, p.clone()).await?;
        for s in &p.stages {
            done.insert(stage_key(s));
        }
        report.created.push(key.clone());
        done.insert(key);
        return Ok(());
    };
    if done.insert(key.clone()) {
        report.adopted.push(key);
    } else {
        report.kept.push(key);
    }
    let new: Vec<&StageInput> = p
        .stages
        .iter()
        .filter(|s| {
            !done.contains(&stage_key(s)) && !existing.stages.iter().any(|e| e.name == s.name)
        })
        .collect();
    // Stages the tenant already has are adopted as they are.
    for s in &p.stages {
        done.insert(stage_key(s));
    }
    if new.is_empty() {
        return Ok(());
    }
    let mut stages: Vec<StageInput> = existing
        .stages
        .iter()
        .map(|s| StageInput {
            id: Some(s.id),
            name: s.name.clone(),
            probability: s.probability,
            kind: s.kind,
        })
        .collect();
    for s in &new {
        stages.push(StageInput {
            id: None,
            name: s.name.clone(),
            probability: s.probability,
            kind: s.kind,
        });
        report.created.push(stage_key(s));
    }
    crate::crm::pipelines::update(
        db,
        system,
        existing.id,
        PipelineInput {
            name: existing.name.clone(),
            position: existing.position,
            stages,
        },
        existing.version,
    )
    .await?;
    Ok(())
}

/// A shared view (pinned to the dashboard for a widget): created once,
/// adopted when the tenant has a shared view of that name, never touched
/// again. Its query is run once first, so a bad one is refused naming it.
async fn apply_view(
    db: &sea_orm::DatabaseConnection,
    system: &RequestContext,
    v: &EditionView,
    pinned: bool,
    done: &mut BTreeSet<String>,
    report: &mut Applied,
) -> Result<()> {
    use crate::entities::saved_view;
    let key = format!(
        "{}:{}/{}",
        if pinned { "widget" } else { "view" },
        v.object_type,
        v.name
    );
    if done.contains(&key) {
        report.kept.push(key);
        return Ok(());
    }
    let object = ObjectType::parse(&v.object_type)
        .ok_or_else(|| Error::field("object_type", "invalid_value", "not a record type"))?;
    count_view(db, system, object, &v.query)
        .await
        .map_err(|e| Error::field("query", "invalid_value", format!("view `{}`: {e}", v.name)))?;
    let exists = saved_view::Entity::find()
        .filter(saved_view::Column::TenantId.eq(system.tenant_id))
        .filter(saved_view::Column::ObjectType.eq(object.as_str()))
        .filter(saved_view::Column::Name.eq(v.name.as_str()))
        .filter(saved_view::Column::UserId.is_null())
        .one(db)
        .await?
        .is_some();
    if exists {
        report.adopted.push(key.clone());
    } else {
        saved_view::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(system.tenant_id),
            user_id: Set(None),
            object_type: Set(object.as_str().to_owned()),
            name: Set(v.name.clone()),
            query: Set(v.query.clone()),
            on_dashboard: Set(pinned),
            created_at: Set(crate::clock::now()),
        }
        .insert(db)
        .await?;
        report.created.push(key.clone());
    }
    done.insert(key);
    Ok(())
}
