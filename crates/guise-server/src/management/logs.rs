//! `/api/v2/logs`: the audit log, filtered and paginated (page/per_page, or checkpoint
//! pagination with `from` and `take`).

use super::views::LogView;
use super::{Fields, Paging, Projection, allow_query, paged, parse_sort, query_names};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::audit_query::parse_log_query;
use guise_core::page::PageRequest;
use guise_core::permission::scopes;
use guise_core::store::AuditStore;
use serde::Deserialize;
use utoipa::IntoParams;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/logs").route(web::get().to(list)))
        .service(web::resource("/logs/{id}").route(web::get().to(get)));
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LogParams {
    /// A search in the log query syntax (docs/api.md).
    q: Option<String>,
    /// Auth0's other name for `q`.
    search: Option<String>,
    /// Checkpoint: return events after this log id, oldest first.
    from: Option<String>,
    take: Option<u32>,
    /// `date:1` oldest first, `date:-1` (default) newest first.
    sort: Option<String>,
}

fn parse_seq(log_id: &str) -> Result<i64, ApiError> {
    log_id.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| ApiError::invalid_query("Invalid log id"))
}

#[utoipa::path(get, path = "/logs", tag = "logs", summary = "Search the audit log",
    params(Paging, Fields, LogParams),
    responses((status = 200, body = Vec<LogView>)),
    security(("bearer" = ["read:logs"])))]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<LogParams>,
    list: web::Query<Paging>,
    fields: web::Query<Fields>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_LOGS)?;
    allow_query(&req, &[query_names::<Paging>(), query_names::<Fields>(), query_names::<LogParams>()])?;
    let params = params.into_inner();
    let q = match (params.q, params.search) {
        (Some(q), Some(search)) if q != search => {
            return Err(ApiError::invalid_query("Query validation error: 'q' and 'search' differ"));
        }
        (q, search) => q.or(search),
    };
    let mut filter = parse_log_query(q.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::invalid_query(format!("Invalid query: {e}")))?;
    // The log is kept in the order it was written (a hash chain), so it sorts by date only.
    filter.ascending = match params.sort.as_deref() {
        None => false,
        Some(sort) => parse_sort(sort, &["date"])?.1,
    };
    let projection = Projection::of(&fields)?;
    let page = match (&params.from, params.take) {
        (Some(from), take) => {
            filter.after_seq = Some(parse_seq(from)?);
            filter.ascending = true;
            PageRequest::new(Some(0), take.or(list.per_page))
        }
        (None, Some(take)) => PageRequest::new(Some(0), Some(take)),
        (None, None) => list.page_request(),
    };
    let with_total = list.include_totals;
    let records =
        state.into_inner().blocking(move |s| Ok::<_, ApiError>(s.db.audit_records(&filter, page, with_total)?)).await?;
    Ok(paged(records, with_total, "logs", |r| projection.apply(LogView::from(r))))
}

#[utoipa::path(get, path = "/logs/{id}", tag = "logs", summary = "Get a log event",
    params(("id" = String, Path, description = "The log id")),
    responses((status = 200, body = LogView)),
    security(("bearer" = ["read:logs"])))]
async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_LOGS)?;
    let seq = parse_seq(&id)?;
    let record = state
        .into_inner()
        .blocking(move |s| s.db.audit_record(seq).map_err(|e| ApiError::from_store(e, "log event")))
        .await?;
    Ok(HttpResponse::Ok().json(LogView::from(record)))
}
