//! The demo data set: a believable small company's CRM (accounts in a
//! hierarchy, a few thousand contacts, deals across stages, activities),
//! written through the same services as the API, so it is validated,
//! audited and searchable like real data. Deterministic: the same seed
//! gives the same data.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::context::RequestContext;
use crate::crm::accounts::Accounts;
use crate::crm::activities::Activities;
use crate::crm::contacts::Contacts;
use crate::crm::deals::Deals;
use crate::crm::pipelines::{self, PipelineInput, StageInput, StageKind};
use crate::crm::records::{self, MAX_BULK, Record};
use crate::entities::contact;
use crate::error::Result;

const FIRST: &[&str] = &[
    "Ada", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Keiko",
    "Liam", "Maya", "Noah", "Olivia", "Pedro", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera",
    "Wei", "Ximena", "Yusuf", "Zoe", "Amara", "Bruno", "Carmen", "Dmitri", "Emma", "Felix",
    "Giulia", "Hannah", "Ivan", "Julia", "Kofi", "Lena", "Marco", "Nadia",
];
const LAST: &[&str] = &[
    "Smith",
    "García",
    "Müller",
    "Rossi",
    "Nakamura",
    "Okafor",
    "Johansson",
    "Dubois",
    "Kowalski",
    "Silva",
    "Chen",
    "Patel",
    "O'Brien",
    "Novak",
    "Haddad",
    "Andersen",
    "Moreau",
    "Fischer",
    "Costa",
    "Ivanova",
    "Kim",
    "Nguyen",
    "Schmidt",
    "Lopez",
    "Bianchi",
    "Tanaka",
    "Mensah",
    "Larsen",
    "Petit",
    "Weber",
];
const COMPANY_A: &[&str] = &[
    "Northwind",
    "Bluebird",
    "Granite",
    "Helix",
    "Juniper",
    "Keystone",
    "Lumen",
    "Meridian",
    "Nimbus",
    "Orchard",
    "Pioneer",
    "Quarry",
    "Redwood",
    "Summit",
    "Tidewater",
    "Umbra",
    "Vantage",
    "Willow",
    "Zephyr",
    "Atlas",
];
const COMPANY_B: &[&str] = &[
    "Logistics",
    "Health",
    "Capital",
    "Foods",
    "Robotics",
    "Energy",
    "Media",
    "Realty",
    "Labs",
    "Outfitters",
];
const INDUSTRIES: &[&str] = &[
    "Logistics",
    "Healthcare",
    "Finance",
    "Food & Beverage",
    "Manufacturing",
    "Energy",
    "Media",
    "Real Estate",
    "Software",
    "Retail",
];
const TITLES: &[&str] = &[
    "CEO",
    "CFO",
    "Head of Sales",
    "Operations Manager",
    "Procurement Lead",
    "IT Director",
    "Office Manager",
    "Founder",
    "VP Marketing",
    "Analyst",
];
const SOURCES: &[&str] = &[
    "website",
    "referral",
    "trade show",
    "cold call",
    "partner",
    "webinar",
];
const SIZES: &[&str] = &["1-10", "11-50", "51-200", "201-1000", "1000+"];
const TERRITORIES: &[&str] = &["North", "South", "East", "West", "International"];

/// Sizes of the demo data set.
#[derive(Debug, Clone, Copy)]
pub struct DemoSize {
    pub accounts: usize,
    pub contacts: usize,
    pub deals: usize,
    pub activities: usize,
}

impl Default for DemoSize {
    fn default() -> Self {
        DemoSize {
            accounts: 300,
            contacts: 3000,
            deals: 600,
            activities: 2000,
        }
    }
}

/// What seeding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeded {
    Created {
        accounts: usize,
        contacts: usize,
        deals: usize,
        activities: usize,
    },
    /// The tenant already had contacts; nothing was written.
    AlreadyPresent,
}

/// Seeds the demo data set into the tenant unless it has contacts already.
pub async fn demo(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    owner: Uuid,
    size: DemoSize,
) -> Result<Seeded> {
    let existing = contact::Entity::find()
        .filter(contact::Column::TenantId.eq(tenant_id))
        .count(db)
        .await?;
    if existing > 0 {
        return Ok(Seeded::AlreadyPresent);
    }
    let ctx = RequestContext::system(tenant_id);
    let mut rng = StdRng::seed_from_u64(0x007E_1115);

    let sales = ensure_pipeline(
        db,
        &ctx,
        "Sales",
        &[
            ("Qualification", 10, StageKind::Open),
            ("Discovery", 25, StageKind::Open),
            ("Proposal", 50, StageKind::Open),
            ("Negotiation", 75, StageKind::Open),
            ("Closed won", 100, StageKind::Won),
            ("Closed lost", 0, StageKind::Lost),
        ],
    )
    .await?;
    let renewals = ensure_pipeline(
        db,
        &ctx,
        "Renewals",
        &[
            ("Upcoming", 60, StageKind::Open),
            ("In review", 80, StageKind::Open),
            ("Renewed", 100, StageKind::Won),
            ("Churned", 0, StageKind::Lost),
        ],
    )
    .await?;

    // Accounts: the first tenth are parents; the rest may hang below one.
    let mut account_ids: Vec<Uuid> = Vec::with_capacity(size.accounts);
    let parents = (size.accounts / 10).max(1);
    let mut items = Vec::new();
    for i in 0..size.accounts {
        let a = COMPANY_A[i % COMPANY_A.len()];
        let b = COMPANY_B[(i / COMPANY_A.len()) % COMPANY_B.len()];
        let n = i / (COMPANY_A.len() * COMPANY_B.len());
        let name = if n == 0 {
            format!("{a} {b}")
        } else {
            format!("{a} {b} {}", n + 1)
        };
        let domain = format!("{}{}.example", a.to_lowercase(), b.to_lowercase())
            + &if n == 0 { String::new() } else { n.to_string() };
        items.push(json!({
            "name": name,
            "domain": domain,
            "industry": INDUSTRIES.choose(&mut rng),
            "size": SIZES.choose(&mut rng),
            "territory": TERRITORIES.choose(&mut rng),
            "owner_id": owner,
        }));
        if i + 1 == parents || i + 1 == size.accounts || items.len() == MAX_BULK {
            let created =
                records::bulk_create::<Accounts>(db, &ctx, std::mem::take(&mut items)).await?;
            account_ids.extend(created.iter().map(Accounts::id));
        }
    }
    // Hang two thirds of the other accounts under a parent.
    let mut patches = Vec::new();
    for (i, id) in account_ids.iter().enumerate().skip(parents) {
        if i % 3 != 0 {
            patches.push(records::BulkUpdateItem {
                id: *id,
                version: 1,
                patch: json!({"parent_id": account_ids[i % parents]}),
            });
        }
    }
    for chunk in patches.chunks(MAX_BULK) {
        records::bulk_update::<Accounts>(db, &ctx, chunk.to_vec()).await?;
    }

    let mut contact_ids: Vec<Uuid> = Vec::with_capacity(size.contacts);
    for start in (0..size.contacts).step_by(MAX_BULK) {
        let items: Vec<Value> = (start..(start + MAX_BULK).min(size.contacts))
            .map(|i| {
                let first = FIRST[i % FIRST.len()];
                let last = LAST[(i / FIRST.len() + i) % LAST.len()];
                let local = format!("{}.{}{}", ascii(first), ascii(last), i).to_lowercase();
                json!({
                    "first_name": first,
                    "last_name": last,
                    "emails": [{"address": format!("{local}@example.com"), "label": "work"}],
                    "phones": [{"number": format!("+1 555 {:03} {:04}", rng.random_range(100..999), rng.random_range(0..9999)), "label": "work"}],
                    "job_title": TITLES.choose(&mut rng),
                    // Any stage but the catch-all `other`, which ends the list.
                    "lifecycle_stage": crate::crm::contacts::STAGES[..crate::crm::contacts::STAGES.len() - 1].choose(&mut rng),
                    "lead_source": SOURCES.choose(&mut rng),
                    "owner_id": owner,
                    "tags": if i % 7 == 0 { json!(["vip"]) } else { json!([]) },
                    "do_not_call": i % 23 == 0,
                })
            })
            .collect();
        let created = records::bulk_create::<Contacts>(db, &ctx, items).await?;
        contact_ids.extend(created.iter().map(Contacts::id));
    }
    // Link each contact to an account.
    for (i, cid) in contact_ids.iter().enumerate().step_by(3) {
        let account_id = account_ids[i % account_ids.len()];
        crate::crm::links::link_account(
            db,
            &ctx,
            *cid,
            crate::crm::links::AccountLinkInput {
                account_id,
                role: Some(["decision maker", "champion", "user", "billing"][i % 4].to_owned()),
            },
        )
        .await?;
    }

    let mut deal_ids = Vec::with_capacity(size.deals);
    for start in (0..size.deals).step_by(MAX_BULK) {
        let mut items = Vec::new();
        for i in start..(start + MAX_BULK).min(size.deals) {
            let (pipeline, name_suffix) = if i % 5 == 0 {
                (&renewals, "renewal")
            } else {
                (&sales, "new business")
            };
            let stage = pipeline.stages.choose(&mut rng).map(|s| (s.id, s.kind));
            let (stage_id, kind) = stage.unwrap_or((Uuid::nil(), StageKind::Open));
            let account = account_ids[i % account_ids.len()];
            let whole: i64 = rng.random_range(5..500) * 100;
            let cents: i64 = rng.random_range(0..100);
            let close =
                chrono::Utc::now().date_naive() + chrono::Days::new(rng.random_range(0..180));
            items.push(json!({
                "name": format!("{} {}", COMPANY_A[i % COMPANY_A.len()], name_suffix),
                "amount": format!("{whole}.{cents:02}"),
                "currency": "USD",
                "pipeline_id": pipeline.id,
                "stage_id": stage_id,
                "expected_close_date": close,
                "owner_id": owner,
                "contact_id": contact_ids[(i * 5) % contact_ids.len().max(1)],
                "account_id": account,
                "lost_reason": if kind == StageKind::Lost { Some("chose a competitor") } else { None },
            }));
        }
        let created = records::bulk_create::<Deals>(db, &ctx, items).await?;
        deal_ids.extend(created.iter().map(Deals::id));
    }

    let kinds = ["task", "call", "meeting", "email", "note"];
    let mut activities = 0;
    for start in (0..size.activities).step_by(MAX_BULK) {
        let items: Vec<Value> = (start..(start + MAX_BULK).min(size.activities))
            .map(|i| {
                let kind = kinds[i % kinds.len()];
                let due = chrono::Utc::now() + chrono::Duration::hours(rng.random_range(-240..240));
                json!({
                    "kind": kind,
                    "subject": format!("{} with {}", match kind { "task" => "Follow up", "call" => "Call", "meeting" => "Meeting", "email" => "Email", _ => "Note" }, FIRST[i % FIRST.len()]),
                    "due_at": if kind == "task" { Some(due) } else { None },
                    "starts_at": if kind == "meeting" { Some(due) } else { None },
                    "ends_at": if kind == "meeting" { Some(due + chrono::Duration::minutes(45)) } else { None },
                    "done": i % 3 == 0,
                    "owner_id": owner,
                    "contact_id": contact_ids[(i * 7) % contact_ids.len().max(1)],
                    "deal_id": if i % 2 == 0 && !deal_ids.is_empty() { Some(deal_ids[i % deal_ids.len()]) } else { None },
                })
            })
            .collect();
        activities += records::bulk_create::<Activities>(db, &ctx, items)
            .await?
            .len();
    }
    Ok(Seeded::Created {
        accounts: account_ids.len(),
        contacts: contact_ids.len(),
        deals: deal_ids.len(),
        activities,
    })
}

fn ascii(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'á' | 'à' | 'ã' => Some('a'),
            'é' | 'è' => Some('e'),
            'í' => Some('i'),
            'ó' => Some('o'),
            'ü' | 'ú' => Some('u'),
            c if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

async fn ensure_pipeline(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    name: &str,
    stages: &[(&str, i32, StageKind)],
) -> Result<pipelines::Pipeline> {
    if let Some(p) = pipelines::list(db, ctx)
        .await?
        .into_iter()
        .find(|p| p.name == name)
    {
        return Ok(p);
    }
    pipelines::create(
        db,
        ctx,
        PipelineInput {
            name: name.to_owned(),
            position: 0,
            stages: stages
                .iter()
                .map(|(n, p, k)| StageInput {
                    id: None,
                    name: (*n).to_owned(),
                    probability: *p,
                    kind: *k,
                })
                .collect(),
        },
    )
    .await
}
