//! Contacts: the people a tenant does business with.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::crm::checks::Checks;
use crate::crm::custom_fields::is_email;
use crate::crm::listing::{FieldSpec, Kind};
use crate::crm::records::Record;
use crate::db::search::SearchDocument;
use crate::entities::contact;
use crate::error::Result;
use crate::permissions::ObjectType;

/// Where a contact is in the customer lifecycle.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleStage {
    Subscriber,
    #[default]
    Lead,
    MarketingQualified,
    SalesQualified,
    Opportunity,
    Customer,
    Evangelist,
    Other,
}

/// The lifecycle stages as the API spells them, in funnel order.
pub const STAGES: &[&str] = &[
    "subscriber",
    "lead",
    "marketing_qualified",
    "sales_qualified",
    "opportunity",
    "customer",
    "evangelist",
    "other",
];

/// How a contact prefers to be reached.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Phone,
    Sms,
    Mail,
    None,
}

const CHANNELS: &[&str] = &["email", "phone", "sms", "mail", "none"];

/// One email address of a contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailAddress {
    pub address: String,
    /// `work`, `home`...
    #[serde(default)]
    pub label: Option<String>,
    /// The address used when one is needed; exactly one address is primary.
    #[serde(default)]
    pub primary: bool,
}

/// One phone number of a contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneNumber {
    pub number: String,
    #[serde(default)]
    pub label: Option<String>,
}

/// The writable fields of a contact. A contact needs a name or an email.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub emails: Vec<EmailAddress>,
    #[serde(default)]
    pub phones: Vec<PhoneNumber>,
    #[serde(default)]
    pub job_title: Option<String>,
    #[serde(default)]
    pub lifecycle_stage: LifecycleStage,
    #[serde(default)]
    pub lead_source: Option<String>,
    /// A user of the tenant.
    #[serde(default)]
    pub owner_id: Option<Uuid>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub do_not_email: bool,
    #[serde(default)]
    pub do_not_call: bool,
    #[serde(default)]
    pub preferred_channel: Option<Channel>,
    /// Custom field values by key; see `GET /api/v1/schemas/contact`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub custom: Value,
}

/// A contact as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Contact {
    pub id: Uuid,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Display name: first and last name, or the primary email.
    pub name: String,
    /// The primary email address.
    pub email: Option<String>,
    pub emails: Vec<EmailAddress>,
    pub phones: Vec<PhoneNumber>,
    pub job_title: Option<String>,
    pub lifecycle_stage: LifecycleStage,
    pub lead_source: Option<String>,
    pub owner_id: Option<Uuid>,
    pub tags: Vec<String>,
    pub do_not_email: bool,
    pub do_not_call: bool,
    pub preferred_channel: Option<Channel>,
    #[schema(value_type = Object)]
    pub custom: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

fn display_name(first: Option<&str>, last: Option<&str>, email: Option<&str>) -> String {
    let name = [first, last]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        email.unwrap_or_default().to_owned()
    } else {
        name
    }
}

fn enum_from<T: for<'de> Deserialize<'de>>(s: &str) -> Option<T> {
    serde_json::from_value(Value::String(s.to_owned())).ok()
}

fn enum_str<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

pub struct Contacts;

const FIELDS: &[FieldSpec] = &[
    FieldSpec::new("id", Kind::Uuid).required(),
    FieldSpec::new("first_name", Kind::Text),
    FieldSpec::new("last_name", Kind::Text),
    FieldSpec::new("email", Kind::Text),
    FieldSpec::new("job_title", Kind::Text),
    FieldSpec::new("lifecycle_stage", Kind::Enum(STAGES)).required(),
    FieldSpec::new("lead_source", Kind::Text),
    FieldSpec::new("owner_id", Kind::Uuid),
    FieldSpec::new("tags", Kind::StringArray).unsortable(),
    FieldSpec::new("do_not_email", Kind::Bool).required(),
    FieldSpec::new("do_not_call", Kind::Bool).required(),
    FieldSpec::new("preferred_channel", Kind::Enum(CHANNELS)),
    FieldSpec::new("created_at", Kind::Timestamp).required(),
    FieldSpec::new("updated_at", Kind::Timestamp).required(),
];

#[async_trait]
impl Record for Contacts {
    const OBJECT: ObjectType = ObjectType::Contact;
    const INPUT_ALIASES: &'static [(&'static str, &'static str)] =
        &[("email", "emails"), ("phone", "phones")];

    fn owner(m: &Self::Model) -> Option<Uuid> {
        m.owner_id
    }

    fn set_owner(m: &mut Self::Model, owner: Option<Uuid>) {
        m.owner_id = owner;
    }

    fn custom_mut(m: &mut Self::Model) -> &mut Value {
        &mut m.custom
    }
    type Entity = contact::Entity;
    type Model = contact::Model;
    type Active = contact::ActiveModel;
    type Input = ContactInput;
    type Output = Contact;

    fn fields() -> &'static [FieldSpec] {
        FIELDS
    }
    fn id(m: &contact::Model) -> Uuid {
        m.id
    }
    fn version(m: &contact::Model) -> i64 {
        m.version
    }

    fn output(m: contact::Model) -> Contact {
        Contact {
            id: m.id,
            name: display_name(
                m.first_name.as_deref(),
                m.last_name.as_deref(),
                m.email.as_deref(),
            ),
            first_name: m.first_name,
            last_name: m.last_name,
            email: m.email,
            emails: serde_json::from_value(m.emails).unwrap_or_default(),
            phones: serde_json::from_value(m.phones).unwrap_or_default(),
            job_title: m.job_title,
            lifecycle_stage: enum_from(&m.lifecycle_stage).unwrap_or_default(),
            lead_source: m.lead_source,
            owner_id: m.owner_id,
            tags: serde_json::from_value(m.tags).unwrap_or_default(),
            do_not_email: m.do_not_email,
            do_not_call: m.do_not_call,
            preferred_channel: m.preferred_channel.as_deref().and_then(enum_from),
            custom: m.custom,
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
        }
    }

    fn input(m: &contact::Model) -> ContactInput {
        let c = Self::output(m.clone());
        ContactInput {
            first_name: c.first_name,
            last_name: c.last_name,
            emails: c.emails,
            phones: c.phones,
            job_title: c.job_title,
            lifecycle_stage: c.lifecycle_stage,
            lead_source: c.lead_source,
            owner_id: c.owner_id,
            tags: c.tags,
            do_not_email: c.do_not_email,
            do_not_call: c.do_not_call,
            preferred_channel: c.preferred_channel,
            custom: c.custom,
        }
    }

    fn custom_of(input: &ContactInput) -> Value {
        input.custom.clone()
    }

    async fn build(
        tx: &DatabaseTransaction,
        ctx: &RequestContext,
        input: ContactInput,
        custom: Value,
        existing: Option<&contact::Model>,
    ) -> Result<contact::Model> {
        let mut checks = Checks::default();
        let first_name = checks.text("first_name", input.first_name, 200);
        let last_name = checks.text("last_name", input.last_name, 200);
        let mut emails = Vec::with_capacity(input.emails.len());
        for (i, e) in input.emails.into_iter().enumerate() {
            let address = e.address.trim().to_lowercase();
            if !is_email(&address) {
                checks.fail(
                    &format!("emails[{i}].address"),
                    "invalid_format",
                    "not a valid email address",
                );
            } else if emails.iter().any(|x: &EmailAddress| x.address == address) {
                checks.fail(
                    &format!("emails[{i}].address"),
                    "duplicate",
                    "this address is listed twice",
                );
            }
            let label = checks.text(&format!("emails[{i}].label"), e.label, 50);
            emails.push(EmailAddress {
                address,
                label,
                primary: e.primary,
            });
        }
        match emails.iter().filter(|e| e.primary).count() {
            0 => {
                if let Some(first) = emails.first_mut() {
                    first.primary = true;
                }
            }
            1 => {}
            _ => checks.fail(
                "emails",
                "multiple_primary",
                "only one email address can be primary",
            ),
        }
        let mut phones = Vec::with_capacity(input.phones.len());
        for (i, p) in input.phones.into_iter().enumerate() {
            let number = p.number.trim().to_owned();
            let digits = number.chars().filter(char::is_ascii_digit).count();
            if !(4..=20).contains(&digits)
                || !number
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().x".contains(c))
            {
                checks.fail(
                    &format!("phones[{i}].number"),
                    "invalid_format",
                    "not a valid phone number",
                );
            }
            let label = checks.text(&format!("phones[{i}].label"), p.label, 50);
            phones.push(PhoneNumber { number, label });
        }
        let mut tags: Vec<String> = Vec::new();
        for (i, t) in input.tags.into_iter().enumerate() {
            match checks.text(&format!("tags[{i}]"), Some(t), 64) {
                Some(t) if !tags.contains(&t) => tags.push(t),
                Some(_) => {}
                None => checks.fail(&format!("tags[{i}]"), "required", "tags cannot be blank"),
            }
        }
        if tags.len() > 50 {
            checks.fail("tags", "too_many", "at most 50 tags");
        }
        if emails.len() > 50 {
            checks.fail("emails", "too_many", "at most 50 email addresses");
        }
        if phones.len() > 50 {
            checks.fail("phones", "too_many", "at most 50 phone numbers");
        }
        let email = emails.iter().find(|e| e.primary).map(|e| e.address.clone());
        if first_name.is_none() && last_name.is_none() && email.is_none() {
            checks.fail(
                "first_name",
                "required",
                "a contact needs a first name, last name or email",
            );
        }
        let job_title = checks.text("job_title", input.job_title, 200);
        let lead_source = checks.text("lead_source", input.lead_source, 100);
        checks
            .user_exists(tx, ctx, "owner_id", input.owner_id)
            .await?;
        checks.finish()?;
        let now = crate::clock::now();
        Ok(contact::Model {
            id: existing.map(|e| e.id).unwrap_or_else(Uuid::now_v7),
            tenant_id: ctx.tenant_id,
            first_name,
            last_name,
            email,
            emails: serde_json::to_value(emails).unwrap_or_default(),
            phones: serde_json::to_value(phones).unwrap_or_default(),
            job_title,
            lifecycle_stage: enum_str(&input.lifecycle_stage),
            lead_source,
            owner_id: input.owner_id,
            tags: serde_json::to_value(tags).unwrap_or_default(),
            do_not_email: input.do_not_email,
            do_not_call: input.do_not_call,
            preferred_channel: input.preferred_channel.as_ref().map(enum_str),
            custom,
            created_at: existing.map(|e| e.created_at).unwrap_or(now),
            updated_at: now,
            version: existing.map(|e| e.version + 1).unwrap_or(1),
        })
    }

    fn search_document(m: &contact::Model) -> Option<SearchDocument> {
        let c = Self::output(m.clone());
        let mut body: Vec<String> = c.emails.iter().map(|e| e.address.clone()).collect();
        for p in &c.phones {
            body.push(p.number.clone());
            let digits: String = p.number.chars().filter(char::is_ascii_digit).collect();
            // The last nine digits find the same line written with or
            // without its country code.
            if digits.len() > 9 {
                body.push(digits[digits.len() - 9..].to_owned());
            }
            body.push(digits);
        }
        body.extend(c.job_title.clone());
        body.extend(c.tags.iter().cloned());
        let match_keys = crate::crm::duplicates::keys::contact(
            c.first_name.as_deref().unwrap_or_default(),
            c.last_name.as_deref().unwrap_or_default(),
            c.emails.iter().map(|e| e.address.as_str()),
            c.phones.iter().map(|p| p.number.as_str()),
        );
        Some(SearchDocument {
            tenant_id: m.tenant_id,
            object_type: "contact",
            record_id: m.id,
            title: c.name,
            subtitle: c.email.or(c.job_title),
            body: body.join(" "),
            match_keys,
        })
    }
}
