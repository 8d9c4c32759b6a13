//! `GET /api/v1/{contacts,accounts,deals,activities}/export`: a list view
//! (its `filter` and `sort` parameters) or the whole type as CSV or JSON
//! lines, streamed.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::context::RequestContext;
use crate::crm::accounts::Accounts;
use crate::crm::activities::Activities;
use crate::crm::contacts::Contacts;
use crate::crm::deals::Deals;
use crate::crm::export::{self, Format};
use crate::crm::records::Record;
use crate::error::{Problem, Result};

/// The export response: the file named for the tenant's brand, streamed.
pub(crate) async fn export_of<R: Record>(
    state: AppState,
    ctx: RequestContext,
    raw: Option<String>,
) -> Result<Response> {
    let (format, query) = export::list_query(raw.as_deref());
    let format = Format::parse(format.as_deref(), R::OBJECT)?;
    // The file carries the tenant's brand (`harbordesk-contacts-….csv`).
    let tenant = crate::crm::tenants::cached(&state, ctx.tenant_id).await?;
    let brand = crate::web::branding(&state, &tenant).await;
    let name = format!(
        "{}-{}-{}.{}",
        brand.file_prefix(),
        R::OBJECT.table(),
        crate::clock::now().format("%Y%m%d-%H%M%S"),
        format.extension()
    );
    let stream = export::stream::<R>(state.db.clone(), ctx, format, query).await?;
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, crate::api::attachment(&name)),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

macro_rules! export_handler {
    ($name:ident, $rec:ty, $path:literal, $tag:literal) => {
        /// Every matching record (the list's `filter` and `sort`) as
        /// `format=csv` (RFC 4180, default), `xlsx`, `jsonl`, `vcf` (contacts, vCard
        /// 4.0) or `ics` (activities, iCalendar), streamed and never
        /// truncated. Hidden fields are left out; the export is audited.
        #[utoipa::path(get, path = $path, tag = $tag,
            params(("format" = Option<String>, Query, description = "csv, xlsx, jsonl, vcf (contacts), ics (activities)")),
            responses((status = 200, content_type = "text/csv"), (status = 403, body = Problem), (status = 422, body = Problem)))]
        pub async fn $name(
            State(state): State<AppState>,
            ctx: RequestContext,
            RawQuery(q): RawQuery,
        ) -> Result<Response> {
            export_of::<$rec>(state, ctx, q).await
        }
    };
}

export_handler!(contacts, Contacts, "/api/v1/contacts/export", "contacts");
export_handler!(accounts, Accounts, "/api/v1/accounts/export", "accounts");
export_handler!(deals, Deals, "/api/v1/deals/export", "deals");
export_handler!(
    activities,
    Activities,
    "/api/v1/activities/export",
    "activities"
);
