//! The Management API v2 under `/api/v2/`, in Auth0's request and response shapes.
//! Every route checks its scope; every write carries its audit event into the store.

mod ceiling;
mod client_grants;
mod clients;
mod impersonations;
mod logs;
mod me;
mod roles;
mod users;

pub use clients::{client_view, create_client};
pub use users::user_view;

use crate::error::ApiError;
use actix_web::{HttpResponse, web};
use guise_core::page::{Page, PageRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v2")
            .configure(users::configure)
            .configure(clients::configure)
            .configure(client_grants::configure)
            .configure(roles::configure)
            .configure(logs::configure)
            .configure(impersonations::configure)
            .configure(me::configure),
    );
}

/// `page`, `per_page` and `include_totals`, common to every list.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub page: Option<u32>,
    pub per_page: Option<u32>,
    #[serde(default)]
    pub include_totals: bool,
}

impl ListParams {
    pub fn page_request(&self) -> PageRequest {
        PageRequest::new(self.page, self.per_page)
    }
}

/// Render a page as Auth0 does: a bare array, or with `include_totals` an object with
/// `start`, `limit`, `length`, `total` and the items under `key`.
pub fn paged<T, V: Serialize>(page: Page<T>, include_totals: bool, key: &str, view: impl Fn(T) -> V) -> HttpResponse {
    let request = page.request;
    let total = page.total;
    let items: Vec<V> = page.items.into_iter().map(view).collect();
    if include_totals {
        let mut body = json!({
            "start": request.offset(),
            "limit": request.limit(),
            "length": items.len(),
            "total": total,
        });
        body[key] = serde_json::to_value(items).unwrap_or(Value::Null);
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::Ok().json(items)
    }
}

/// RFC 3339 with milliseconds and `Z`, as Auth0 formats dates.
pub fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Reject an empty JSON object on PATCH.
pub fn require_non_empty(body: &Value) -> Result<(), ApiError> {
    match body.as_object() {
        Some(map) if !map.is_empty() => Ok(()),
        Some(_) => Err(ApiError::bad_request("Payload validation error: 'Too few properties defined (0), minimum 1'")),
        None => Err(ApiError::bad_request("Payload validation error: 'Expected type object'")),
    }
}
