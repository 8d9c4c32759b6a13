//! Which column of a file fills which field: the fields an import can
//! write for each object type, the mapping suggested from a file's headers,
//! and the value transforms a column can go through on the way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::crm::custom_fields::{FieldDef, FieldType};
use crate::error::{Error, FieldError, Result};
use crate::permissions::ObjectType;

/// One column's destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnMapping {
    /// The column's header as the file has it.
    pub column: String,
    /// A field key from `GET /api/v1/imports/fields/{object}` (built-in,
    /// `custom.<key>`, or a linking field such as `account_name`).
    pub field: String,
    /// How the cell is changed before it is written.
    #[serde(default)]
    pub transform: Option<Transform>,
}

/// A change applied to a cell before it is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transform {
    /// Lower-case the value (email addresses).
    Lowercase,
    /// Phone numbers to E.164 (`+14155550100`); numbers without a country
    /// code are read as numbers of `region` (ISO 3166 alpha-2, e.g. `US`).
    E164 { region: String },
    /// Dates (or date-times) written in `format` (strftime, e.g.
    /// `%d/%m/%Y`).
    Date { format: String },
    /// Picklist values renamed (`{"Hot": "sales_qualified"}`); values not
    /// listed pass through.
    Map { values: BTreeMap<String, String> },
}

/// How a field's cells become a value.
#[derive(Debug, Clone)]
pub enum Kind {
    Text,
    /// One of fixed values (the API's spelling; display spellings are
    /// accepted).
    Enum(&'static [&'static str]),
    Bool,
    /// A record id.
    Id,
    /// A user: id or email address.
    Owner,
    /// A list of text (`;` or `,` separated).
    List,
    Emails,
    Phones,
    /// A full name, split into first and last name.
    FullName,
    /// The name of an account to link a contact to.
    AccountName,
    /// The web domain of an account to link a contact to.
    AccountDomain,
    Custom(FieldDef),
}

/// A field an import can fill.
#[derive(Debug, Clone)]
pub struct Target {
    pub key: String,
    pub label: String,
    pub kind: Kind,
}

/// A field an import can fill, as the API lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TargetInfo {
    pub key: String,
    pub label: String,
    /// `text`, `enum`, `boolean`, `id`, `user`, `list`, `emails`, `phones`,
    /// `full_name`, `account_name`, `account_domain` or a custom field's
    /// type.
    pub kind: String,
    /// The values an `enum` or select field takes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Target {
    pub fn info(&self) -> TargetInfo {
        let (kind, options) = match &self.kind {
            Kind::Text => ("text", Vec::new()),
            Kind::Enum(v) => ("enum", v.iter().map(|s| (*s).to_owned()).collect()),
            Kind::Bool => ("boolean", Vec::new()),
            Kind::Id => ("id", Vec::new()),
            Kind::Owner => ("user", Vec::new()),
            Kind::List => ("list", Vec::new()),
            Kind::Emails => ("emails", Vec::new()),
            Kind::Phones => ("phones", Vec::new()),
            Kind::FullName => ("full_name", Vec::new()),
            Kind::AccountName => ("account_name", Vec::new()),
            Kind::AccountDomain => ("account_domain", Vec::new()),
            Kind::Custom(d) => (d.field_type.as_str(), d.options.clone()),
        };
        TargetInfo {
            key: self.key.clone(),
            label: self.label.clone(),
            kind: kind.to_owned(),
            options,
        }
    }
}

/// The object types an import writes.
pub fn importable(object: ObjectType) -> bool {
    matches!(object, ObjectType::Contact | ObjectType::Account)
}

fn t(key: &str, label: &str, kind: Kind) -> Target {
    Target {
        key: key.to_owned(),
        label: label.to_owned(),
        kind,
    }
}

/// The fields an import of `object` can fill: built-in, then custom.
pub fn targets(object: ObjectType, defs: &[FieldDef]) -> Vec<Target> {
    let mut out = match object {
        ObjectType::Contact => vec![
            t("id", "Trellis id (matches existing records)", Kind::Id),
            t(
                "full_name",
                "Full name (split into first and last)",
                Kind::FullName,
            ),
            t("first_name", "First name", Kind::Text),
            t("last_name", "Last name", Kind::Text),
            t("emails", "Email addresses", Kind::Emails),
            t("phones", "Phone numbers", Kind::Phones),
            t("job_title", "Job title", Kind::Text),
            t(
                "lifecycle_stage",
                "Lifecycle stage",
                Kind::Enum(crate::crm::contacts::STAGES),
            ),
            t("lead_source", "Lead source", Kind::Text),
            t("owner_id", "Owner (user id or email)", Kind::Owner),
            t("tags", "Tags", Kind::List),
            t("do_not_email", "Do not email", Kind::Bool),
            t("do_not_call", "Do not call", Kind::Bool),
            t(
                "preferred_channel",
                "Preferred channel",
                Kind::Enum(&["email", "phone", "sms", "mail", "none"]),
            ),
            t(
                "account_name",
                "Account name (links the contact)",
                Kind::AccountName,
            ),
            t(
                "account_domain",
                "Account domain (links the contact)",
                Kind::AccountDomain,
            ),
        ],
        ObjectType::Account => vec![
            t("id", "Trellis id (matches existing records)", Kind::Id),
            t("name", "Name", Kind::Text),
            t("domain", "Domain", Kind::Text),
            t("industry", "Industry", Kind::Text),
            t("size", "Size", Kind::Text),
            t("territory", "Territory", Kind::Text),
            t("owner_id", "Owner (user id or email)", Kind::Owner),
            t("parent_id", "Parent account id", Kind::Id),
        ],
        _ => Vec::new(),
    };
    for d in defs {
        out.push(Target {
            key: format!("custom.{}", d.key),
            label: d.label.clone(),
            kind: Kind::Custom(d.clone()),
        });
    }
    out
}

/// A header reduced to letters and digits, lower case.
fn squash(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .flat_map(char::to_lowercase)
        .collect()
}

/// Headers other tools write for each built-in field (squashed).
fn synonyms(key: &str) -> &'static [&'static str] {
    match key {
        "full_name" => &["name", "fullname", "contactname", "fn", "displayname"],
        "first_name" => &[
            "firstname",
            "givenname",
            "forename",
            "fname",
            "ngiven",
            "first",
        ],
        "last_name" => &[
            "lastname",
            "surname",
            "familyname",
            "lname",
            "nfamily",
            "last",
        ],
        "emails" => &[
            "email",
            "emails",
            "emailaddress",
            "mail",
            "primaryemail",
            "workemail",
        ],
        "phones" => &[
            "phone",
            "phones",
            "phonenumber",
            "telephone",
            "tel",
            "mobile",
            "mobilephone",
            "cell",
            "workphone",
        ],
        "job_title" => &["jobtitle", "title", "position"],
        "lifecycle_stage" => &["lifecyclestage", "stage", "lifecycle"],
        "lead_source" => &["leadsource", "source"],
        "owner_id" => &["owner", "ownerid", "owneremail", "assignedto"],
        "tags" => &["tags", "labels", "categories"],
        "do_not_email" => &["donotemail", "emailoptout", "unsubscribed"],
        "do_not_call" => &["donotcall", "calloptout"],
        "preferred_channel" => &["preferredchannel"],
        "account_name" => &[
            "company",
            "companyname",
            "organization",
            "organisation",
            "org",
            "account",
            "accountname",
        ],
        "account_domain" => &["companydomain", "accountdomain", "website", "domain"],
        "name" => &[
            "name",
            "accountname",
            "company",
            "companyname",
            "organization",
        ],
        "domain" => &["domain", "website", "companydomain"],
        "id" => &["id", "trellisid"],
        _ => &[],
    }
}

/// The mapping suggested for a file's headers: exact keys and labels
/// first, then the names other tools use. Each field is used once.
pub fn suggest(headers: &[String], targets: &[Target]) -> Vec<ColumnMapping> {
    let squashed: Vec<String> = headers.iter().map(|h| squash(h)).collect();
    let wanted = |s: &str| !s.is_empty() && s != "importerrors";
    // Exact names first, over every header, so that a file written by our
    // own export (`email` and `emails`) maps each column to its own field;
    // then the names other tools use, for the fields still free.
    let mut found: Vec<Option<&Target>> = squashed
        .iter()
        .map(|s| {
            targets.iter().find(|t| {
                wanted(s)
                    && (squash(&t.key) == *s
                        || squash(t.key.trim_start_matches("custom.")) == *s
                        || squash(&t.label) == *s)
            })
        })
        .collect();
    for (i, s) in squashed.iter().enumerate() {
        if found[i].is_none() && wanted(s) {
            found[i] = targets.iter().find(|t| {
                synonyms(&t.key).contains(&s.as_str())
                    && !found.iter().flatten().any(|f| f.key == t.key)
            });
        }
    }
    let mut out: Vec<ColumnMapping> = Vec::new();
    for (h, t) in headers.iter().zip(found) {
        if let Some(t) = t
            && !out.iter().any(|m| m.field == t.key)
        {
            out.push(ColumnMapping {
                column: h.clone(),
                field: t.key.clone(),
                transform: None,
            });
        }
    }
    // A full name is only split when no part is mapped on its own.
    if out
        .iter()
        .any(|m| m.field == "first_name" || m.field == "last_name")
    {
        out.retain(|m| m.field != "full_name");
    }
    out
}

/// Checks a mapping against the file's headers and the fields.
pub fn check(mapping: &[ColumnMapping], headers: &[String], targets: &[Target]) -> Result<()> {
    let mut errors = Vec::new();
    if mapping.is_empty() {
        errors.push(FieldError::new(
            "mapping",
            "required",
            "map at least one column",
        ));
    }
    for (i, m) in mapping.iter().enumerate() {
        if !headers.contains(&m.column) {
            errors.push(FieldError::new(
                format!("mapping[{i}].column"),
                "unknown_column",
                format!("the file has no column `{}`", m.column),
            ));
        }
        let Some(target) = targets.iter().find(|t| t.key == m.field) else {
            errors.push(FieldError::new(
                format!("mapping[{i}].field"),
                "unknown_field",
                format!("`{}` is not a field an import can fill", m.field),
            ));
            continue;
        };
        let repeatable = matches!(target.kind, Kind::Emails | Kind::Phones | Kind::List);
        if !repeatable && mapping[..i].iter().any(|o| o.field == m.field) {
            errors.push(FieldError::new(
                format!("mapping[{i}].field"),
                "duplicate",
                format!("two columns fill `{}`", m.field),
            ));
        }
        if let Some(Transform::E164 { region }) = &m.transform
            && region.parse::<phonenumber::country::Id>().is_err()
        {
            errors.push(FieldError::new(
                format!("mapping[{i}].transform.region"),
                "invalid_value",
                format!("`{region}` is not an ISO 3166 country code"),
            ));
        }
        if let Some(Transform::Date { format }) = &m.transform
            && chrono::format::StrftimeItems::new(format).parse().is_err()
        {
            errors.push(FieldError::new(
                format!("mapping[{i}].transform.format"),
                "invalid_value",
                "not a valid strftime format",
            ));
        }
        if let (Kind::Custom(d), Some(Transform::E164 { .. })) = (&target.kind, &m.transform)
            && d.field_type != FieldType::Phone
        {
            errors.push(FieldError::new(
                format!("mapping[{i}].transform"),
                "invalid_value",
                "phone numbers only",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_fields_from_the_headers_other_tools_write() {
        let headers: Vec<String> = [
            "E-mail Address",
            "Given Name",
            "Surname",
            "Company",
            "Mobile",
            "Name",
            "Import errors",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let m = suggest(&headers, &targets(ObjectType::Contact, &[]));
        let pairs: Vec<(&str, &str)> = m
            .iter()
            .map(|m| (m.column.as_str(), m.field.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("E-mail Address", "emails"),
                ("Given Name", "first_name"),
                ("Surname", "last_name"),
                ("Company", "account_name"),
                ("Mobile", "phones"),
            ]
        );
    }
}
