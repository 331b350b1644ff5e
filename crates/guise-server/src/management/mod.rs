//! The Management API v2 under `/api/v2/`, in Auth0's request and response shapes.
//! Every route checks its scope; every write carries its audit event into the store.

mod client_grants;
mod clients;
mod impersonations;
mod logs;
mod me;
pub mod openapi;
mod roles;
mod users;
mod views;
mod webhooks;

pub use clients::create_client;
pub use views::{ClientView, UserView};

use crate::error::ApiError;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::page::{Page, PageRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa::openapi::path::ParameterIn;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v2")
            .configure(users::configure)
            .configure(clients::configure)
            .configure(client_grants::configure)
            .configure(roles::configure)
            .configure(logs::configure)
            .configure(impersonations::configure)
            .configure(me::configure)
            .configure(webhooks::configure)
            .configure(openapi::configure),
    );
}

/// `page`, `per_page` and `include_totals`, common to every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// The page number, from 0.
    pub page: Option<u32>,
    /// Items per page, at most 100 (default 50).
    pub per_page: Option<u32>,
    /// Answer `{start, limit, length, total, <items>}` instead of a bare array.
    #[serde(default)]
    pub include_totals: bool,
}

/// `fields` and `include_fields`: a projection of each item.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Fields {
    /// Comma-separated property names.
    pub fields: Option<String>,
    /// Keep (`true`, the default) or drop the named `fields`.
    pub include_fields: Option<bool>,
}

/// The query parameter every call accepts: acting as a user (read by `Caller`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActAs {
    /// Act on behalf of this user (see docs/acting-as.md); also the `As-User` header.
    pub as_user_id: Option<String>,
}

/// The names of the query parameters a type documents and deserialises.
pub fn query_names<T: IntoParams>() -> Vec<String> {
    T::into_params(|| Some(ParameterIn::Query)).into_iter().map(|p| p.name).collect()
}

/// Refuse a request naming a query parameter the route does not know, as Auth0 does,
/// instead of silently ignoring it (a misspelt filter would list everything). `known`:
/// the names from the route's query types (`query_names`), the same types that
/// deserialise the query and document it in the OpenAPI description.
pub fn allow_query(req: &HttpRequest, known: &[Vec<String>]) -> Result<(), ApiError> {
    for (key, _) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        let known = known.iter().chain([&query_names::<ActAs>()]).flatten().any(|name| *name == key);
        if !known {
            let key: String = key.chars().take(64).collect();
            return Err(ApiError::invalid_query(format!(
                "Query validation error: 'Additional properties not allowed: {key}'"
            )));
        }
    }
    Ok(())
}

/// `fields=a,b` with `include_fields=true` (the default) keeps only those properties of
/// each item; with `include_fields=false` it drops them. It only ever removes
/// properties from a view the caller may already see, so it cannot reveal anything.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    fields: Vec<String>,
    include: bool,
}

impl Projection {
    pub fn new(fields: Option<&str>, include_fields: Option<bool>) -> Result<Self, ApiError> {
        let fields: Vec<String> =
            fields.unwrap_or("").split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect();
        if fields.len() > 100 {
            return Err(ApiError::invalid_query("Query validation error: 'fields' names more than 100 fields"));
        }
        Ok(Self { fields, include: include_fields.unwrap_or(true) })
    }

    pub fn of(params: &Fields) -> Result<Self, ApiError> {
        Self::new(params.fields.as_deref(), params.include_fields)
    }

    pub fn apply(&self, view: impl Serialize) -> Value {
        let mut view = serde_json::to_value(view).unwrap_or(Value::Null);
        if self.fields.is_empty() {
            return view;
        }
        if let Some(object) = view.as_object_mut() {
            object.retain(|k, _| self.fields.iter().any(|f| f == k) == self.include);
        }
        view
    }
}

/// `sort=field:1` (ascending) or `field:-1` (descending), the field one of `allowed`.
pub fn parse_sort<'a>(sort: &str, allowed: &[&'a str]) -> Result<(&'a str, bool), ApiError> {
    let refuse = || {
        ApiError::invalid_query(format!(
            "Query validation error: 'sort' must be field:1 or field:-1, the field one of {}",
            allowed.join(", ")
        ))
    };
    let (field, direction) = sort.split_once(':').ok_or_else(refuse)?;
    let field = allowed.iter().find(|f| **f == field).ok_or_else(refuse)?;
    match direction {
        "1" => Ok((field, true)),
        "-1" => Ok((field, false)),
        _ => Err(refuse()),
    }
}

/// Page a list held in memory.
pub fn page_of<T>(items: Vec<T>, request: PageRequest) -> Page<T> {
    let total = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let offset = usize::try_from(request.offset()).unwrap_or(usize::MAX);
    let limit = usize::try_from(request.limit()).unwrap_or(0);
    Page { items: items.into_iter().skip(offset).take(limit).collect(), request, total }
}

impl Paging {
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

/// A body that does not deserialise into the route's type, in Auth0's words where
/// Auth0 has them (an unknown property is "Additional properties not allowed").
pub fn payload_error(e: serde_json::Error) -> ApiError {
    let text = e.to_string();
    if let Some(name) = text.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next()) {
        let name: String = name.chars().take(64).collect();
        return ApiError::bad_request(format!("Payload validation error: 'Additional properties not allowed: {name}'"));
    }
    ApiError::bad_request(format!("Payload validation error: {text}"))
}

/// A PATCH property that may be absent (`None`), `null` (`Some(None)`) or set.
pub(super) fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Reject an empty JSON object on PATCH.
pub fn require_non_empty(body: &Value) -> Result<(), ApiError> {
    match body.as_object() {
        Some(map) if !map.is_empty() => Ok(()),
        Some(_) => Err(ApiError::bad_request("Payload validation error: 'Too few properties defined (0), minimum 1'")),
        None => Err(ApiError::bad_request("Payload validation error: 'Expected type object'")),
    }
}
