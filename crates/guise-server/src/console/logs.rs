//! The audit log: `GET /api/v2/logs` with the filters turned into the API's `q`
//! (`type:`, `user_id:`, `client_id:`, `date:[FROM TO TO]`), paged; and on request the
//! hash chain's status — only after the API showed the agent may read the log.

use super::agent;
use super::view;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::audit::ChainBreak;
use guise_core::store::AuditStore;
use serde::Deserialize;
use serde_json::json;

const PER_PAGE: u32 = 50;

#[derive(Debug, Deserialize, Default, serde::Serialize)]
pub struct LogFilters {
    #[serde(default, rename = "type")]
    event_type: String,
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    page: Option<u32>,
    /// Verify the hash chain (a full read of the log, so only when asked).
    verify: Option<String>,
}

/// A filter value as one term of the API's language (quoted when it holds a space).
fn term(name: &str, value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let clean: String = value.chars().filter(|c| *c != '"').collect();
    Some(format!("{name}:\"{clean}\""))
}

fn query_of(f: &LogFilters) -> String {
    let mut terms: Vec<String> =
        [term("type", &f.event_type), term("user_id", &f.user_id), term("client_id", &f.client_id)]
            .into_iter()
            .flatten()
            .collect();
    let (from, to) = (f.from.trim(), f.to.trim());
    if !from.is_empty() || !to.is_empty() {
        let side = |s: &str| if s.is_empty() || s.contains(' ') { "*".to_owned() } else { s.to_owned() };
        terms.push(format!("date:[{} TO {}]", side(from), side(to)));
    }
    terms.join(" ")
}

/// `GET /console/logs`
pub async fn list(req: HttpRequest, state: web::Data<AppState>, filters: web::Query<LogFilters>) -> HttpResponse {
    let agent = agent::load_or_return!(&req, &state);
    let filters = filters.into_inner();
    let page = filters.page.unwrap_or(0).min(10_000);
    let q = query_of(&filters);
    let mut query =
        vec![("page", page.to_string()), ("per_page", PER_PAGE.to_string()), ("include_totals", "true".to_owned())];
    if !q.is_empty() {
        query.push(("q", q.clone()));
    }
    let (status, body, error) = match agent.api.get("/api/v2/logs", &query).await {
        Ok(body) => (StatusCode::OK, Some(body), None),
        Err(failure) => (failure.status_code(), None, Some(failure.message)),
    };
    let chain = match (&body, filters.verify.is_some()) {
        (Some(_), true) => {
            Some(match state.clone().into_inner().blocking(|s| s.db.verify_chain().map_err(ApiError::from)).await {
                Ok(Ok(rows)) => {
                    json!({ "intact": true, "text": format!("Intact: all {rows} rows verified, each hash follows from the row before it.") })
                }
                Ok(Err(ChainBreak::HashMismatch { seq })) => {
                    json!({ "intact": false, "text": format!("Broken at row {seq}: it does not match its hash (edited). Rows before it are intact.") })
                }
                Ok(Err(ChainBreak::BrokenLink { seq })) => {
                    json!({ "intact": false, "text": format!("Broken at row {seq}: it does not follow the row before it (a row removed or reordered). Rows before it are intact.") })
                }
                Err(_) => json!({ "intact": false, "text": "The chain could not be checked just now." }),
            })
        }
        _ => None,
    };
    let logs = body.as_ref().map(|b| b["logs"].clone()).unwrap_or(json!([]));
    let total = body.as_ref().and_then(|b| b["total"].as_u64()).unwrap_or(0);
    let shown_to = u64::from(page) * u64::from(PER_PAGE) + logs.as_array().map_or(0, |l| l.len() as u64);
    let link = |p: u32| {
        let mut pairs = vec![
            ("type", filters.event_type.clone()),
            ("user_id", filters.user_id.clone()),
            ("client_id", filters.client_id.clone()),
            ("from", filters.from.clone()),
            ("to", filters.to.clone()),
        ];
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.push(("page", p.to_string()));
        format!("/console/logs?{}", serde_urlencoded::to_string(pairs).unwrap_or_default())
    };
    view::page(
        status,
        "console/logs.html",
        minijinja::context! {
            agent => agent.context(),
            nav => "logs",
            filters => view::data(&filters),
            logs => view::data(&logs),
            total => total,
            first => u64::from(page) * u64::from(PER_PAGE) + 1,
            last => shown_to,
            prev_link => page.checked_sub(1).map(link),
            next_link => (shown_to < total).then(|| link(page + 1)),
            verify_link => format!("{}&verify=1", link(page)),
            chain => chain.as_ref().map(view::data),
            error => error,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_the_apis_query() {
        let f = LogFilters {
            event_type: "s".into(),
            user_id: "guise|a b".into(),
            from: "2026-11-01".into(),
            ..Default::default()
        };
        assert_eq!(query_of(&f), "type:\"s\" user_id:\"guise|a b\" date:[2026-11-01 TO *]");
        assert_eq!(query_of(&LogFilters::default()), "");
    }
}
