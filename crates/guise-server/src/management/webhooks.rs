//! `/api/v2/webhooks`: Standard Webhooks subscriptions to guise's events, and their
//! deliveries (listed, and retried); `/api/v2/deliveries`: every outbox delivery
//! (webhooks, email notices, back-channel and SAML logouts). A webhook receives user data — both people of
//! every impersonation, emails, reasons, audit details — so pointing one somewhere
//! (creating it, or changing its URL or events) and reading what it was sent need, on
//! top of the route's scope, every link of the caller's chain to hold `read:users` and
//! `read:logs` (the authority ceiling): nobody learns through a webhook what they could
//! not read through the API.

use super::{Paging, allow_query, iso, paged, payload_error, query_names, require_non_empty};
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
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

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
    Ok(caller.require_cover(&PermissionSet::on(&audience, [scopes::READ_USERS, scopes::READ_LOGS]))?)
}

/// A webhook subscription. `secret` appears only in the answer to its creation (and
/// never in its `Debug` output).
#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    /// The event types it receives; empty: all of them.
    pub event_types: Vec<String>,
    pub description: String,
    pub enabled: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// `whsec_<base64>`, the Standard Webhooks signing secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `Some("[redacted]")` for a secret that is there: `Debug` shows whether, never what.
fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| standard_webhooks::REDACTED)
}

impl std::fmt::Debug for WebhookView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookView")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("description", &self.description)
            .field("enabled", &self.enabled)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("secret", &redacted(&self.secret))
            .finish()
    }
}

impl WebhookView {
    pub fn new(hook: Webhook, with_secret: bool) -> Self {
        Self {
            id: hook.id,
            url: hook.url,
            event_types: hook.event_types,
            description: hook.description,
            enabled: hook.enabled,
            created_at: iso(hook.created_at),
            updated_at: iso(hook.updated_at),
            secret: with_secret.then_some(hook.secret),
        }
    }
}

/// One outbox message to one receiver, with its delivery state.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The message id: `webhook-id`, the logout token's `jti`.
    pub id: String,
    /// `webhook`, `email`, `backchannel_logout` or `saml_logout`.
    pub kind: &'static str,
    /// The webhook id, the client id (logouts) or the user id (email).
    pub target: String,
    pub event_type: String,
    /// The audit event it came from.
    pub log_id: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub status: &'static str,
    pub attempts: i32,
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// A short reason (`HTTP 500`, `timed out`), never the receiver's answer.
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            next_attempt_at: (d.status == DeliveryStatus::Pending).then(|| iso(d.next_attempt_at)),
            id: d.id,
            kind: d.kind.as_str(),
            target: d.target,
            event_type: d.event_type,
            log_id: d.audit_seq.map(guise_core::audit::format_log_id),
            status: d.status.as_str(),
            attempts: d.attempts,
            last_error: d.last_error,
            created_at: iso(d.created_at),
            delivered_at: d.delivered_at.map(iso),
            payload: d.payload,
        }
    }
}

fn check_url(url: &str, allow_insecure_http: bool) -> Result<(), ApiError> {
    Ok(validate_url("url", url, UrlPolicy::web(allow_insecure_http))?)
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

/// A new webhook.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    url: String,
    #[serde(default)]
    event_types: Vec<String>,
    #[serde(default)]
    description: String,
    enabled: Option<bool>,
    /// A `whsec_` secret of the caller's; one is generated otherwise.
    secret: Option<String>,
}

impl std::fmt::Debug for CreateWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateWebhook")
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("description", &self.description)
            .field("enabled", &self.enabled)
            .field("secret", &redacted(&self.secret))
            .finish()
    }
}

#[utoipa::path(post, path = "/webhooks", tag = "webhooks", summary = "Create a webhook",
    request_body = CreateWebhook,
    responses((status = 201, body = WebhookView)),
    security(("bearer" = ["create:webhooks", "read:users", "read:logs"])))]
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
    Ok(HttpResponse::Created().json(WebhookView::new(hook, true)))
}

#[utoipa::path(get, path = "/webhooks", tag = "webhooks", summary = "List webhooks",
    params(Paging),
    responses((status = 200, body = Vec<WebhookView>)),
    security(("bearer" = ["read:webhooks"])))]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_WEBHOOKS)?;
    allow_query(&req, &[query_names::<Paging>()])?;
    let page = guise_core::page::PageRequest::new(params.page, params.per_page);
    let hooks = state.into_inner().blocking(move |s| Ok::<_, ApiError>(s.db.list_webhooks(page)?)).await?;
    Ok(paged(hooks, params.include_totals, "webhooks", |h| WebhookView::new(h, false)))
}

#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", summary = "Get a webhook",
    params(("id" = String, Path, description = "The webhook id")),
    responses((status = 200, body = WebhookView)),
    security(("bearer" = ["read:webhooks"])))]
async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_WEBHOOKS)?;
    let id = id.into_inner();
    let hook =
        state.into_inner().blocking(move |s| s.db.webhook(&id).map_err(|e| ApiError::from_store(e, "webhook"))).await?;
    Ok(HttpResponse::Ok().json(WebhookView::new(hook, false)))
}

/// A PATCH body: only the properties given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatchBody {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    description: Option<String>,
    enabled: Option<bool>,
}

#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", summary = "Update a webhook",
    params(("id" = String, Path, description = "The webhook id")),
    request_body = WebhookPatchBody,
    responses((status = 200, body = WebhookView)),
    security(("bearer" = ["update:webhooks", "read:users", "read:logs"])))]
async fn patch(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::UPDATE_WEBHOOKS)?;
    require_non_empty(&body)?;
    let p: WebhookPatchBody = serde_json::from_value(body.into_inner()).map_err(payload_error)?;
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
    Ok(HttpResponse::Ok().json(WebhookView::new(hook, false)))
}

#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", summary = "Delete a webhook",
    params(("id" = String, Path, description = "The webhook id")),
    responses((status = 204)),
    security(("bearer" = ["delete:webhooks"])))]
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

/// Which deliveries of a webhook to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookDeliveryFilter {
    /// `pending`, `delivered` or `failed`.
    #[param(example = "pending")]
    status: Option<String>,
}

/// Which outbox deliveries to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// `pending`, `delivered` or `failed`.
    #[param(example = "pending")]
    status: Option<String>,
    /// `webhook`, `email`, `backchannel_logout` or `saml_logout`.
    #[param(example = "webhook")]
    kind: Option<String>,
    /// A webhook id, a client id, or the user id an email went to.
    target: Option<String>,
}

fn parse_status(status: Option<&str>) -> Result<Option<DeliveryStatus>, ApiError> {
    status
        .map(|s| {
            DeliveryStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_query("Query validation error: 'status' must be pending, delivered or failed")
            })
        })
        .transpose()
}

fn parse_kind(kind: Option<&str>) -> Result<Option<DeliveryKind>, ApiError> {
    kind.map(|k| {
        DeliveryKind::parse(k).ok_or_else(|| {
            ApiError::invalid_query(
                "Query validation error: 'kind' must be webhook, email, backchannel_logout or saml_logout",
            )
        })
    })
    .transpose()
}

#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks", summary = "List a webhook's deliveries",
    params(("id" = String, Path, description = "The webhook id"), Paging, WebhookDeliveryFilter),
    responses((status = 200, body = Vec<DeliveryView>)),
    security(("bearer" = ["read:webhooks", "read:users", "read:logs"])))]
async fn deliveries(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    paging: web::Query<Paging>,
    filter: web::Query<WebhookDeliveryFilter>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_WEBHOOKS)?;
    allow_query(&req, &[query_names::<Paging>(), query_names::<WebhookDeliveryFilter>()])?;
    let status = parse_status(filter.status.as_deref())?;
    let page = guise_core::page::PageRequest::new(paging.page, paging.per_page);
    let id = id.into_inner();
    let found = state
        .into_inner()
        .blocking(move |s| {
            require_reader_of_user_data(s, &caller)?;
            s.db.webhook(&id).map_err(|e| ApiError::from_store(e, "webhook"))?;
            Ok::<_, ApiError>(s.db.deliveries(&DeliveryFilter { target: Some(id), status, kind: None }, page)?)
        })
        .await?;
    Ok(paged(found, paging.include_totals, "deliveries", DeliveryView::from))
}

#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    summary = "Retry a webhook's delivery",
    params(("id" = String, Path, description = "The webhook id"), ("delivery_id" = String, Path, description = "The delivery id")),
    responses((status = 202, body = DeliveryView)),
    security(("bearer" = ["update:webhooks", "read:users", "read:logs"])))]
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
    Ok(HttpResponse::Accepted().json(DeliveryView::from(delivery)))
}

/// `GET /api/v2/deliveries`: every outbox delivery — webhooks, email notices,
/// back-channel and SAML logouts — filtered by `kind`, `status` and `target` (a webhook
/// id, a client id, or the user id an email went to).
#[utoipa::path(get, path = "/deliveries", tag = "webhooks", summary = "List the outbox's deliveries",
    params(Paging, DeliveryParams),
    responses((status = 200, body = Vec<DeliveryView>)),
    security(("bearer" = ["read:webhooks", "read:users", "read:logs"])))]
async fn all_deliveries(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    paging: web::Query<Paging>,
    params: web::Query<DeliveryParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_WEBHOOKS)?;
    allow_query(&req, &[query_names::<Paging>(), query_names::<DeliveryParams>()])?;
    let (status, kind) = (parse_status(params.status.as_deref())?, parse_kind(params.kind.as_deref())?);
    let filter = DeliveryFilter { target: params.target.clone(), status, kind };
    let page = guise_core::page::PageRequest::new(paging.page, paging.per_page);
    let found = state
        .into_inner()
        .blocking(move |s| {
            require_reader_of_user_data(s, &caller)?;
            Ok::<_, ApiError>(s.db.deliveries(&filter, page)?)
        })
        .await?;
    Ok(paged(found, paging.include_totals, "deliveries", DeliveryView::from))
}

/// `POST /api/v2/deliveries/{id}/retry`: any delivery due again now.
#[utoipa::path(post, path = "/deliveries/{delivery_id}/retry", tag = "webhooks", summary = "Retry a delivery",
    params(("delivery_id" = String, Path, description = "The delivery id")),
    responses((status = 202, body = DeliveryView)),
    security(("bearer" = ["update:webhooks", "read:users", "read:logs"])))]
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
    Ok(HttpResponse::Accepted().json(DeliveryView::from(delivery)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_webhook_secret() -> Result<(), serde_json::Error> {
        let secret = standard_webhooks::new_secret();
        let hook = Webhook {
            id: "wh_1".into(),
            url: "https://hooks.example.com/".into(),
            secret: secret.clone(),
            event_types: Vec::new(),
            description: String::new(),
            enabled: true,
            created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
            updated_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        };
        let created: CreateWebhook =
            serde_json::from_value(json!({ "url": "https://hooks.example.com/", "secret": secret }))?;
        let view = WebhookView::new(hook, true);
        // The creation's answer carries it; its Debug output does not.
        assert_eq!(serde_json::to_value(&view)?["secret"], json!(secret));
        for shown in [format!("{view:?}"), format!("{created:#?}")] {
            assert!(!shown.contains(&secret) && shown.contains("[redacted]"), "{shown}");
        }
        let hidden = WebhookView { secret: None, ..view };
        assert!(format!("{hidden:?}").contains("secret: None"));
        Ok(())
    }
}
