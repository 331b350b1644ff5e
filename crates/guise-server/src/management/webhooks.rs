//! `/api/v2/webhooks`: Standard Webhooks subscriptions to guise's events, and their
//! deliveries (listed, and retried); `/api/v2/deliveries`: every outbox delivery
//! (webhooks, email notices, back-channel and SAML logouts). A webhook receives user data — both people of
//! every impersonation, emails, reasons, audit details — so pointing one somewhere
//! (creating it, or changing its URL or events) and reading what it was sent need, on
//! top of the route's scope, every link of the caller's chain to hold `read:users` and
//! `read:logs` (the authority ceiling): nobody learns through a webhook what they could
//! not read through the API.

use super::{ListParams, PAGING, allow_query, iso, paged, require_non_empty};
use crate::auth::{Caller, RequestMeta};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::client::{UrlPolicy, validate_url};
use guise_core::ids::new_token_id;
use guise_core::outbox::{
    Delivery, DeliveryFilter, DeliveryKind, DeliveryStatus, Webhook, WebhookPatch, event, standard_webhooks,
};
use guise_core::permission::{PermissionSet, scopes};
use guise_core::store::{OutboxStore, WebhookStore};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/webhooks").route(web::get().to(list)).route(web::post().to(create)))
        .service(
            web::resource("/webhooks/{id}")
                .route(web::get().to(get))
                .route(web::patch().to(patch))
                .route(web::delete().to(delete)),
        )
        .service(web::resource("/webhooks/{id}/deliveries").route(web::get().to(deliveries)))
        .service(web::resource("/webhooks/{id}/deliveries/{delivery_id}/retry").route(web::post().to(retry)))
        .service(web::resource("/deliveries").route(web::get().to(all_deliveries)))
        .service(web::resource("/deliveries/{delivery_id}/retry").route(web::post().to(retry_any)));
}

/// What a webhook's receiver learns: the caller must be able to read it anyway.
fn require_reader_of_user_data(s: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let audience = s.settings.management_audience();
    caller.require_cover(&PermissionSet::on(&audience, [scopes::READ_USERS, scopes::READ_LOGS]))
}

pub fn webhook_view(hook: Webhook, secret: bool) -> Value {
    let mut view = json!({
        "id": hook.id,
        "url": hook.url,
        "event_types": hook.event_types,
        "description": hook.description,
        "enabled": hook.enabled,
        "created_at": iso(hook.created_at),
        "updated_at": iso(hook.updated_at),
    });
    if secret {
        view["secret"] = Value::String(hook.secret);
    }
    view
}

pub fn delivery_view(d: Delivery) -> Value {
    json!({
        "id": d.id,
        "kind": d.kind.as_str(),
        "target": d.target,
        "event_type": d.event_type,
        "log_id": d.audit_seq.map(guise_core::audit::format_log_id),
        "status": d.status.as_str(),
        "attempts": d.attempts,
        "next_attempt_at": (d.status == DeliveryStatus::Pending).then(|| iso(d.next_attempt_at)),
        "last_error": d.last_error,
        "created_at": iso(d.created_at),
        "delivered_at": d.delivered_at.map(iso),
        "payload": d.payload,
    })
}

fn check_url(url: &str, allow_insecure_http: bool) -> Result<(), ApiError> {
    validate_url("url", url, UrlPolicy::web(allow_insecure_http)).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn check_event_types(types: &[String]) -> Result<(), ApiError> {
    match types.iter().find(|t| !event::ALL.contains(&t.as_str())) {
        Some(unknown) => Err(ApiError::bad_request(format!(
            "Payload validation error: unknown event type '{}' (known: {})",
            unknown.chars().take(64).collect::<String>(),
            event::ALL.join(", ")
        ))),
        None => Ok(()),
    }
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > 255 {
        return Err(ApiError::bad_request("Payload validation error: 'description' is longer than 255 characters"));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWebhook {
    url: String,
    #[serde(default)]
    event_types: Vec<String>,
    #[serde(default)]
    description: String,
    enabled: Option<bool>,
    /// A `whsec_` secret of the caller's; one is generated otherwise.
    secret: Option<String>,
}

async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    body: web::Json<CreateWebhook>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::CREATE_WEBHOOKS)?;
    let body = body.into_inner();
    check_url(&body.url, state.config.allow_insecure_http_urls)?;
    check_event_types(&body.event_types)?;
    check_description(&body.description)?;
    let secret = match body.secret {
        Some(secret) => {
            standard_webhooks::key(&secret)
                .map_err(|e| ApiError::bad_request(format!("Payload validation error: {e}")))?;
            secret
        }
        None => standard_webhooks::new_secret(),
    };
    let hook = state
        .into_inner()
        .blocking(move |s| {
            require_reader_of_user_data(s, &caller)?;
            let now = s.clock.now();
            let hook = Webhook {
                id: format!("wh_{}", new_token_id()),
                url: body.url,
                secret,
                event_types: body.event_types,
                description: body.description,
                enabled: body.enabled.unwrap_or(true),
                created_at: now,
                updated_at: now,
            };
            let mut audit = meta.api_event(&caller, now, "Create a webhook");
            audit.details["webhook_id"] = json!(hook.id);
            s.db.create_webhook(hook, audit).map_err(|e| ApiError::from_store(e, "webhook"))
        })
        .await?;
    Ok(HttpResponse::Created().json(webhook_view(hook, true)))
}

async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_WEBHOOKS)?;
    allow_query(&req, &[PAGING])?;
    let page = params.page_request();
    let hooks = state.into_inner().blocking(move |s| Ok::<_, ApiError>(s.db.list_webhooks(page)?)).await?;
    Ok(paged(hooks, params.include_totals, "webhooks", |h| webhook_view(h, false)))
}

async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_WEBHOOKS)?;
    let id = id.into_inner();
    let hook =
        state.into_inner().blocking(move |s| s.db.webhook(&id).map_err(|e| ApiError::from_store(e, "webhook"))).await?;
    Ok(HttpResponse::Ok().json(webhook_view(hook, false)))
}

async fn patch(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::UPDATE_WEBHOOKS)?;
    require_non_empty(&body)?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Patch {
        url: Option<String>,
        event_types: Option<Vec<String>>,
        description: Option<String>,
        enabled: Option<bool>,
    }
    let p: Patch = serde_json::from_value(body.into_inner())
        .map_err(|e| ApiError::bad_request(format!("Payload validation error: {e}")))?;
    if let Some(url) = &p.url {
        check_url(url, state.config.allow_insecure_http_urls)?;
    }
    if let Some(types) = &p.event_types {
        check_event_types(types)?;
    }
    if let Some(description) = &p.description {
        check_description(description)?;
    }
    let patch = WebhookPatch { url: p.url, event_types: p.event_types, description: p.description, enabled: p.enabled };
    let id = id.into_inner();
    let hook = state
        .into_inner()
        .blocking(move |s| {
            require_reader_of_user_data(s, &caller)?;
            let now = s.clock.now();
            let mut audit = meta.api_event(&caller, now, "Update a webhook");
            audit.details["webhook_id"] = json!(id);
            s.db.update_webhook(&id, patch, now, audit).map_err(|e| ApiError::from_store(e, "webhook"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(webhook_view(hook, false)))
}

async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::DELETE_WEBHOOKS)?;
    let id = id.into_inner();
    state
        .into_inner()
        .blocking(move |s| {
            let mut audit = meta.api_event(&caller, s.clock.now(), "Delete a webhook");
            audit.details["webhook_id"] = json!(id);
            s.db.delete_webhook(&id, audit).map_err(|e| ApiError::from_store(e, "webhook"))
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Default, Deserialize)]
struct DeliveryParams {
    page: Option<u32>,
    per_page: Option<u32>,
    #[serde(default)]
    include_totals: bool,
    status: Option<String>,
    kind: Option<String>,
    target: Option<String>,
}

impl DeliveryParams {
    fn status(&self) -> Result<Option<DeliveryStatus>, ApiError> {
        match self.status.as_deref() {
            None => Ok(None),
            Some(s) => Ok(Some(DeliveryStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_query("Query validation error: 'status' must be pending, delivered or failed")
            })?)),
        }
    }

    fn kind(&self) -> Result<Option<DeliveryKind>, ApiError> {
        match self.kind.as_deref() {
            None => Ok(None),
            Some(k) => Ok(Some(DeliveryKind::parse(k).ok_or_else(|| {
                ApiError::invalid_query(
                    "Query validation error: 'kind' must be webhook, email, backchannel_logout or saml_logout",
                )
            })?)),
        }
    }
}

async fn deliveries(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    params: web::Query<DeliveryParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_WEBHOOKS)?;
    allow_query(&req, &[PAGING, &["status"]])?;
    let status = params.status()?;
    let page = guise_core::page::PageRequest::new(params.page, params.per_page);
    let id = id.into_inner();
    let found = state
        .into_inner()
        .blocking(move |s| {
            require_reader_of_user_data(s, &caller)?;
            s.db.webhook(&id).map_err(|e| ApiError::from_store(e, "webhook"))?;
            Ok::<_, ApiError>(s.db.deliveries(&DeliveryFilter { target: Some(id), status, kind: None }, page)?)
        })
        .await?;
    Ok(paged(found, params.include_totals, "deliveries", delivery_view))
}

async fn retry(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::UPDATE_WEBHOOKS)?;
    let (id, delivery_id) = path.into_inner();
    let delivery = state
        .into_inner()
        .blocking(move |s| {
            require_reader_of_user_data(s, &caller)?;
            match s.db.delivery(&delivery_id) {
                Ok(d) if d.target == id => {}
                Ok(_) => return Err(ApiError::not_found("delivery")),
                Err(e) => return Err(ApiError::from_store(e, "delivery")),
            }
            let now = s.clock.now();
            let mut audit = meta.api_event(&caller, now, "Retry a webhook delivery");
            audit.details["webhook_id"] = json!(id);
            audit.details["delivery_id"] = json!(delivery_id);
            s.db.retry_delivery(&delivery_id, now, audit).map_err(|e| ApiError::from_store(e, "delivery"))
        })
        .await?;
    Ok(HttpResponse::Accepted().json(delivery_view(delivery)))
}

/// `GET /api/v2/deliveries`: every outbox delivery — webhooks, email notices,
/// back-channel and SAML logouts — filtered by `kind`, `status` and `target` (a webhook
/// id, a client id, or the user id an email went to).
async fn all_deliveries(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<DeliveryParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_WEBHOOKS)?;
    allow_query(&req, &[PAGING, &["status", "kind", "target"]])?;
    let filter = DeliveryFilter { target: params.target.clone(), status: params.status()?, kind: params.kind()? };
    let page = guise_core::page::PageRequest::new(params.page, params.per_page);
    let found = state
        .into_inner()
        .blocking(move |s| {
            require_reader_of_user_data(s, &caller)?;
            Ok::<_, ApiError>(s.db.deliveries(&filter, page)?)
        })
        .await?;
    Ok(paged(found, params.include_totals, "deliveries", delivery_view))
}

/// `POST /api/v2/deliveries/{id}/retry`: any delivery due again now.
async fn retry_any(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::UPDATE_WEBHOOKS)?;
    let delivery_id = id.into_inner();
    let delivery = state
        .into_inner()
        .blocking(move |s| {
            require_reader_of_user_data(s, &caller)?;
            let now = s.clock.now();
            let mut audit = meta.api_event(&caller, now, "Retry a delivery");
            audit.details["delivery_id"] = json!(delivery_id);
            s.db.retry_delivery(&delivery_id, now, audit).map_err(|e| ApiError::from_store(e, "delivery"))
        })
        .await?;
    Ok(HttpResponse::Accepted().json(delivery_view(delivery)))
}
