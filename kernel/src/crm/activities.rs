//! Activities: tasks, calls, meetings, emails and notes, linked to any of a
//! contact, an account and a deal. They make up most of a record's timeline.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::crm::checks::Checks;
use crate::crm::listing::{FieldSpec, Kind};
use crate::crm::records::Record;
use crate::entities::activity;
use crate::error::Result;
use crate::permissions::ObjectType;

/// What kind of activity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    Task,
    Call,
    Meeting,
    Email,
    Note,
}

const KINDS: &[&str] = &["task", "call", "meeting", "email", "note"];

impl ActivityKind {
    fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Task => "task",
            ActivityKind::Call => "call",
            ActivityKind::Meeting => "meeting",
            ActivityKind::Email => "email",
            ActivityKind::Note => "note",
        }
    }
    fn parse(s: &str) -> ActivityKind {
        match s {
            "call" => ActivityKind::Call,
            "meeting" => ActivityKind::Meeting,
            "email" => ActivityKind::Email,
            "note" => ActivityKind::Note,
            _ => ActivityKind::Task,
        }
    }
}

/// The writable fields of an activity.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityInput {
    pub kind: ActivityKind,
    pub subject: String,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub due_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// Not before `starts_at`.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub owner_id: Option<Uuid>,
    #[serde(default)]
    pub contact_id: Option<Uuid>,
    #[serde(default)]
    pub account_id: Option<Uuid>,
    #[serde(default)]
    pub deal_id: Option<Uuid>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub custom: Value,
}

/// An activity as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Activity {
    pub id: Uuid,
    pub kind: ActivityKind,
    pub subject: String,
    pub body: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub done: bool,
    /// When it was marked done.
    pub done_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub owner_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub deal_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub custom: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

pub struct Activities;

const FIELDS: &[FieldSpec] = &[
    FieldSpec::new("id", Kind::Uuid).required(),
    FieldSpec::new("kind", Kind::Enum(KINDS)).required(),
    FieldSpec::new("subject", Kind::Text).required(),
    FieldSpec::new("due_at", Kind::Timestamp),
    FieldSpec::new("starts_at", Kind::Timestamp),
    FieldSpec::new("ends_at", Kind::Timestamp),
    FieldSpec::new("done", Kind::Bool).required(),
    FieldSpec::new("done_at", Kind::Timestamp),
    FieldSpec::new("outcome", Kind::Text),
    FieldSpec::new("owner_id", Kind::Uuid),
    FieldSpec::new("contact_id", Kind::Uuid),
    FieldSpec::new("account_id", Kind::Uuid),
    FieldSpec::new("deal_id", Kind::Uuid),
    FieldSpec::new("created_at", Kind::Timestamp).required(),
    FieldSpec::new("updated_at", Kind::Timestamp).required(),
];

#[async_trait]
impl Record for Activities {
    const OBJECT: ObjectType = ObjectType::Activity;

    fn owner(m: &Self::Model) -> Option<Uuid> {
        m.owner_id
    }

    fn set_owner(m: &mut Self::Model, owner: Option<Uuid>) {
        m.owner_id = owner;
    }

    fn custom_mut(m: &mut Self::Model) -> &mut Value {
        &mut m.custom
    }
    type Entity = activity::Entity;
    type Model = activity::Model;
    type Active = activity::ActiveModel;
    type Input = ActivityInput;
    type Output = Activity;

    fn fields() -> &'static [FieldSpec] {
        FIELDS
    }
    fn id(m: &activity::Model) -> Uuid {
        m.id
    }
    fn version(m: &activity::Model) -> i64 {
        m.version
    }

    fn output(m: activity::Model) -> Activity {
        Activity {
            id: m.id,
            kind: ActivityKind::parse(&m.kind),
            subject: m.subject,
            body: m.body,
            due_at: m.due_at,
            starts_at: m.starts_at,
            ends_at: m.ends_at,
            done: m.done,
            done_at: m.done_at,
            outcome: m.outcome,
            owner_id: m.owner_id,
            contact_id: m.contact_id,
            account_id: m.account_id,
            deal_id: m.deal_id,
            custom: m.custom,
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
        }
    }

    fn input(m: &activity::Model) -> ActivityInput {
        ActivityInput {
            kind: ActivityKind::parse(&m.kind),
            subject: m.subject.clone(),
            body: m.body.clone(),
            due_at: m.due_at,
            starts_at: m.starts_at,
            ends_at: m.ends_at,
            done: m.done,
            outcome: m.outcome.clone(),
            owner_id: m.owner_id,
            contact_id: m.contact_id,
            account_id: m.account_id,
            deal_id: m.deal_id,
            custom: m.custom.clone(),
        }
    }

    fn custom_of(input: &ActivityInput) -> Value {
        input.custom.clone()
    }

    async fn build(
        tx: &DatabaseTransaction,
        ctx: &RequestContext,
        input: ActivityInput,
        custom: Value,
        existing: Option<&activity::Model>,
    ) -> Result<activity::Model> {
        let mut checks = Checks::default();
        let subject = checks.required_text("subject", input.subject, 300);
        let body = checks.text("body", input.body, 100_000);
        let outcome = checks.text("outcome", input.outcome, 200);
        let t = |v: Option<DateTime<Utc>>| v.map(crate::clock::truncate);
        let (due_at, starts_at, ends_at) = (t(input.due_at), t(input.starts_at), t(input.ends_at));
        if let (Some(s), Some(e)) = (starts_at, ends_at)
            && e < s
        {
            checks.fail("ends_at", "invalid_value", "ends before it starts");
        }
        let linked = [
            ("contact_id", ObjectType::Contact, input.contact_id),
            ("account_id", ObjectType::Account, input.account_id),
            ("deal_id", ObjectType::Deal, input.deal_id),
        ];
        checks.links(tx, ctx, input.owner_id, &linked).await?;
        checks.finish()?;
        let now = crate::clock::now();
        let done_at = match (input.done, existing) {
            (false, _) => None,
            (true, Some(e)) if e.done => e.done_at,
            (true, _) => Some(now),
        };
        Ok(activity::Model {
            id: existing.map(|e| e.id).unwrap_or_else(Uuid::now_v7),
            tenant_id: ctx.tenant_id,
            kind: input.kind.as_str().to_owned(),
            subject,
            body,
            due_at,
            starts_at,
            ends_at,
            done: input.done,
            done_at,
            outcome,
            owner_id: input.owner_id,
            contact_id: input.contact_id,
            account_id: input.account_id,
            deal_id: input.deal_id,
            custom,
            created_at: existing.map(|e| e.created_at).unwrap_or(now),
            updated_at: now,
            version: existing.map(|e| e.version + 1).unwrap_or(1),
        })
    }
}
