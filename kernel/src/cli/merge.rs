//! `trellis merge`: merging duplicates, and undoing a merge, from the
//! server's shell, through the same service as `POST /api/v1/contacts/merge`.

use std::collections::BTreeMap;

use anyhow::Context;
use clap::{Args, Subcommand};
use uuid::Uuid;

use crate::AppState;
use crate::crm::accounts::Accounts;
use crate::crm::contacts::Contacts;
use crate::crm::merge::{self, MergeOutcome, MergeRequest, Rule};
use crate::crm::tenants;

#[derive(Debug, Subcommand)]
pub enum MergeCommand {
    /// Merge contacts into a survivor.
    Contacts(MergeArgs),
    /// Merge accounts into a survivor.
    Accounts(MergeArgs),
    /// Undo a merge (within the tenant's undo period).
    Undo {
        /// The merge's id (printed by the merge).
        id: Uuid,
        /// Tenant slug.
        #[arg(long, default_value = tenants::DEFAULT_SLUG)]
        tenant: String,
    },
}

/// What to merge into what.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The record that stays.
    #[arg(long)]
    pub survivor: Uuid,
    /// The records merged into it.
    #[arg(required = true)]
    pub merged: Vec<Uuid>,
    /// How fields not chosen with --field are filled: survivor (its values,
    /// blanks filled from the others), newest or most_complete.
    #[arg(long, value_parser = parse_rule, default_value = "survivor")]
    pub rule: Rule,
    /// `FIELD=ID`: the survivor takes FIELD (`custom.KEY` for a custom
    /// field) from record ID (repeatable).
    #[arg(long = "field", value_name = "FIELD=ID")]
    pub fields: Vec<String>,
    /// Tenant slug.
    #[arg(long, default_value = tenants::DEFAULT_SLUG)]
    pub tenant: String,
}

fn parse_rule(s: &str) -> Result<Rule, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}` is not a rule: use survivor, newest or most_complete"))
}

pub async fn run(state: &AppState, command: MergeCommand) -> anyhow::Result<()> {
    match command {
        MergeCommand::Contacts(args) => {
            let (ctx, req) = request(state, &args).await?;
            report(merge::merge::<Contacts>(&state.db, &ctx, req).await?);
        }
        MergeCommand::Accounts(args) => {
            let (ctx, req) = request(state, &args).await?;
            report(merge::merge::<Accounts>(&state.db, &ctx, req).await?);
        }
        MergeCommand::Undo { id, tenant } => {
            let t = super::tenant_by_slug(state, &tenant).await?;
            let ctx = super::system_ctx(state, t.id);
            let m = merge::undo(&state.db, &ctx, id).await?;
            println!(
                "undid merge {}: {} restored beside {}",
                m.id,
                ids(&m.merged_ids),
                m.survivor_id
            );
        }
    }
    Ok(())
}

async fn request(
    state: &AppState,
    args: &MergeArgs,
) -> anyhow::Result<(crate::context::RequestContext, MergeRequest)> {
    let t = super::tenant_by_slug(state, &args.tenant).await?;
    let mut fields = BTreeMap::new();
    for f in &args.fields {
        let (field, id) = f
            .split_once('=')
            .with_context(|| format!("`{f}`: write --field FIELD=ID"))?;
        let id = Uuid::parse_str(id.trim())
            .with_context(|| format!("`{f}`: `{id}` is not a record id"))?;
        fields.insert(field.trim().to_owned(), id);
    }
    Ok((
        super::system_ctx(state, t.id),
        MergeRequest {
            survivor_id: args.survivor,
            merged_ids: args.merged.clone(),
            rule: args.rule,
            fields,
            version: None,
        },
    ))
}

fn ids(list: &[Uuid]) -> String {
    list.iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(outcome: MergeOutcome) {
    let m = outcome.merge;
    let moved: Vec<String> = m.moved.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "merged {} into {} (merge {}; undo until {})",
        ids(&m.merged_ids),
        m.survivor_id,
        m.id,
        m.undo_until.to_rfc3339()
    );
    if !moved.is_empty() {
        println!("moved: {}", moved.join(", "));
    }
}
