//! `/api/v2/clients`: applications. The secret is shown once, at creation or rotation;
//! only its SHA-256 is stored.

use super::views::ClientView;
use super::{Fields, Paging, Projection, allow_query, page_of, paged, payload_error, query_names, require_non_empty};
use crate::auth::{Caller, RequestMeta};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::client::{
    AppType, Client, ClientFilter, ClientPatch, TokenEndpointAuthMethod, UrlPolicy, hash_client_secret,
    validate_client_metadata, validate_grant_types, validate_name, validate_origins, validate_url, validate_urls,
};
use guise_core::ids::{new_client_id, new_secret};
use guise_core::permission::scopes;
use guise_core::store::ClientStore;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/clients").route(web::get().to(list)).route(web::post().to(create)))
        .service(
            web::resource("/clients/{id}")
                .route(web::get().to(get))
                .route(web::patch().to(patch))
                .route(web::delete().to(delete)),
        )
        .service(web::resource("/clients/{id}/rotate-secret").route(web::post().to(rotate_secret)));
}

/// A new client. Unset fields take the defaults of its `app_type`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    name: String,
    #[serde(default)]
    description: String,
    app_type: Option<String>,
    is_first_party: Option<bool>,
    #[serde(default)]
    callbacks: Vec<String>,
    #[serde(default)]
    allowed_logout_urls: Vec<String>,
    grant_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    allow_impersonation: bool,
    #[serde(default)]
    allow_act_as: bool,
    /// RFC 8693 token exchange (docs/token-exchange.md); a confidential client only.
    #[serde(default)]
    allow_token_exchange: bool,
    initiate_login_uri: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    addons: Map<String, Value>,
    #[serde(default)]
    #[schema(value_type = Object)]
    jwt_configuration: Map<String, Value>,
    #[serde(default)]
    web_origins: Vec<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    oidc_conformant: Option<bool>,
    logo_uri: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    client_metadata: Map<String, Value>,
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    backchannel_logout_session_required: bool,
}

fn app_type(s: &str) -> Result<AppType, ApiError> {
    AppType::parse(s).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Payload validation error: 'app_type' must be one of regular_web, spa, native, non_interactive (got '{s}')"
        ))
    })
}

fn auth_method(s: &str) -> Result<TokenEndpointAuthMethod, ApiError> {
    TokenEndpointAuthMethod::parse(s).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Payload validation error: 'token_endpoint_auth_method' must be none, client_secret_post or client_secret_basic (got '{s}')"
        ))
    })
}

/// Validate what a registration says, whichever route set it. `allow_insecure_http`:
/// the `allow_insecure_http_urls` development setting.
fn validate(client: &Client, allow_insecure_http: bool) -> Result<(), ApiError> {
    let redirect = UrlPolicy::redirect(allow_insecure_http);
    let web = UrlPolicy::web(allow_insecure_http);
    validate_name(&client.name)?;
    // `callbacks` are also the SAML ACS URLs and the WS-Fed reply addresses.
    validate_urls("callbacks", &client.callbacks, redirect)?;
    validate_urls("allowed_logout_urls", &client.allowed_logout_urls, redirect)?;
    validate_grant_types(&client.grant_types)?;
    if let Some(uri) = &client.initiate_login_uri {
        validate_url("initiate_login_uri", uri, web)?;
    }
    validate_origins("web_origins", &client.web_origins, allow_insecure_http)?;
    validate_origins("allowed_origins", &client.allowed_origins, allow_insecure_http)?;
    if let Some(uri) = &client.logo_uri {
        validate_url("logo_uri", uri, web)?;
    }
    if let Some(uri) = &client.backchannel_logout_uri {
        validate_url("backchannel_logout_uri", uri, web)?;
    }
    validate_client_metadata(&client.client_metadata)?;
    let saml = guise_saml::settings::from_addons(&client.addons).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(saml) = saml {
        for (field, url) in [
            ("addons.samlp.recipient", &saml.recipient),
            ("addons.samlp.destination", &saml.destination),
            ("addons.samlp.logout.callback", &saml.logout_callback),
        ] {
            if let Some(url) = url {
                validate_url(field, url, web)?;
            }
        }
    }
    guise_wsfed::settings::from_addons(&client.client_id, &client.addons)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    match client.jwt_configuration.get("alg") {
        None => {}
        Some(serde_json::Value::String(alg)) if guise_oidc::keys::SUPPORTED_ALGS.contains(&alg.as_str()) => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "jwt_configuration.alg must be one of {} (got {other})",
                guise_oidc::keys::SUPPORTED_ALGS.join(", ")
            )));
        }
    }
    if client.allow_token_exchange && !client.is_confidential() {
        return Err(ApiError::bad_request("A public client (token_endpoint_auth_method none) cannot exchange tokens"));
    }
    if client.grant_types.iter().any(|g| g == "client_credentials") && !client.is_confidential() {
        return Err(ApiError::bad_request(
            "A public client (token_endpoint_auth_method none) cannot use client_credentials",
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/clients", tag = "clients", summary = "Create a client",
    request_body = CreateClient,
    responses((status = 201, description = "The client, with its secret shown this once", body = ClientView)),
    security(("bearer" = ["create:clients"])))]
async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    body: web::Json<CreateClient>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::CREATE_CLIENTS)?;
    let body = body.into_inner();
    let app_type = app_type(body.app_type.as_deref().unwrap_or("regular_web"))?;
    let method = match &body.token_endpoint_auth_method {
        Some(m) => auth_method(m)?,
        None => app_type.default_auth_method(),
    };
    let now = state.clock.now();
    let client = Client {
        client_id: new_client_id(),
        client_secret_hash: None,
        name: body.name,
        description: body.description,
        app_type,
        is_first_party: body.is_first_party.unwrap_or(true),
        callbacks: body.callbacks,
        allowed_logout_urls: body.allowed_logout_urls,
        grant_types: body.grant_types.unwrap_or_else(|| app_type.default_grant_types()),
        token_endpoint_auth_method: method,
        allow_impersonation: body.allow_impersonation,
        allow_act_as: body.allow_act_as,
        allow_token_exchange: body.allow_token_exchange,
        initiate_login_uri: body.initiate_login_uri,
        addons: body.addons,
        jwt_configuration: body.jwt_configuration,
        web_origins: body.web_origins,
        allowed_origins: body.allowed_origins,
        oidc_conformant: body.oidc_conformant.unwrap_or(true),
        logo_uri: body.logo_uri,
        client_metadata: body.client_metadata,
        backchannel_logout_uri: body.backchannel_logout_uri,
        backchannel_logout_session_required: body.backchannel_logout_session_required,
        created_at: now,
        updated_at: now,
    };
    validate(&client, state.config.allow_insecure_http_urls)?;
    let (client, secret) = state
        .into_inner()
        .blocking(move |s| create_client(&s.db, client, meta.api_event(&caller, now, "Create a client")))
        .await?;
    Ok(HttpResponse::Created().json(ClientView::new(client, secret)))
}

/// Store a new client, minting its secret when it is confidential. Returns the secret
/// (the only time it exists in clear).
pub fn create_client(
    db: &dyn ClientStore,
    mut client: Client,
    mut audit: guise_core::audit::AuditEvent,
) -> Result<(Client, Option<String>), ApiError> {
    let secret = client.is_confidential().then(new_secret);
    client.client_secret_hash = secret.as_deref().map(hash_client_secret);
    audit.details["client"] = json!({ "client_id": client.client_id, "name": client.name });
    let client = db.create_client(client, audit).map_err(|e| ApiError::from_store(e, "client"))?;
    Ok((client, secret))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ClientListFilter {
    /// Comma-separated app types.
    app_type: Option<String>,
    is_first_party: Option<bool>,
    /// Auth0's tenant-wide "All Applications" client; guise has none.
    is_global: Option<bool>,
}

#[utoipa::path(get, path = "/clients", tag = "clients", summary = "List clients",
    params(Paging, Fields, ClientListFilter),
    responses((status = 200, body = Vec<ClientView>)),
    security(("bearer" = ["read:clients"])))]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    filter: web::Query<ClientListFilter>,
    params: web::Query<Paging>,
    fields: web::Query<Fields>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_CLIENTS)?;
    allow_query(&req, &[query_names::<Paging>(), query_names::<Fields>(), query_names::<ClientListFilter>()])?;
    let filter = filter.into_inner();
    let app_types = match filter.app_type.as_deref() {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|t| {
                AppType::parse(t.trim()).ok_or_else(|| {
                    ApiError::invalid_query(format!(
                        "Query validation error: 'app_type' must be among regular_web, spa, native, non_interactive (got '{}')",
                        t.chars().take(32).collect::<String>()
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let store_filter = ClientFilter { app_types, is_first_party: filter.is_first_party };
    let projection = Projection::of(&fields)?;
    let page = params.page_request();
    let with_total = params.include_totals;
    let only_global = filter.is_global == Some(true);
    let clients = state
        .into_inner()
        .blocking(move |s| {
            if only_global {
                return Ok::<_, ApiError>(page_of(Vec::new(), page));
            }
            Ok::<_, ApiError>(s.db.list_clients(&store_filter, page, with_total)?)
        })
        .await?;
    Ok(paged(clients, with_total, "clients", |c| projection.apply(ClientView::new(c, None))))
}

#[utoipa::path(get, path = "/clients/{id}", tag = "clients", summary = "Get a client",
    params(("id" = String, Path, description = "The client id"), Fields),
    responses((status = 200, body = ClientView)),
    security(("bearer" = ["read:clients"])))]
async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    params: web::Query<Fields>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_CLIENTS)?;
    allow_query(&req, &[query_names::<Fields>()])?;
    let projection = Projection::of(&params)?;
    let id = id.into_inner();
    let client = state
        .into_inner()
        .blocking(move |s| s.db.client_by_id(&id).map_err(|e| ApiError::from_store(e, "client")))
        .await?;
    Ok(HttpResponse::Ok().json(projection.apply(ClientView::new(client, None))))
}

/// A PATCH body: only the properties given change; `null` removes `initiate_login_uri`,
/// `logo_uri` or `backchannel_logout_uri`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatchBody {
    name: Option<String>,
    description: Option<String>,
    app_type: Option<String>,
    is_first_party: Option<bool>,
    callbacks: Option<Vec<String>>,
    allowed_logout_urls: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    allow_impersonation: Option<bool>,
    allow_act_as: Option<bool>,
    allow_token_exchange: Option<bool>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    initiate_login_uri: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    addons: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    jwt_configuration: Option<Map<String, Value>>,
    web_origins: Option<Vec<String>>,
    allowed_origins: Option<Vec<String>>,
    oidc_conformant: Option<bool>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    logo_uri: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    client_metadata: Option<Map<String, Value>>,
    /// OIDC Back-Channel Logout: where logout tokens go; `null` removes it.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    backchannel_logout_uri: Option<Option<String>>,
    backchannel_logout_session_required: Option<bool>,
}

fn parse_client_patch(body: &Value) -> Result<ClientPatch, ApiError> {
    require_non_empty(body)?;
    let p: ClientPatchBody = serde_json::from_value(body.clone()).map_err(payload_error)?;
    Ok(ClientPatch {
        name: p.name,
        description: p.description,
        app_type: p.app_type.as_deref().map(app_type).transpose()?,
        is_first_party: p.is_first_party,
        callbacks: p.callbacks,
        allowed_logout_urls: p.allowed_logout_urls,
        grant_types: p.grant_types,
        token_endpoint_auth_method: p.token_endpoint_auth_method.as_deref().map(auth_method).transpose()?,
        allow_impersonation: p.allow_impersonation,
        allow_act_as: p.allow_act_as,
        allow_token_exchange: p.allow_token_exchange,
        initiate_login_uri: p.initiate_login_uri,
        addons: p.addons,
        jwt_configuration: p.jwt_configuration,
        web_origins: p.web_origins,
        allowed_origins: p.allowed_origins,
        oidc_conformant: p.oidc_conformant,
        logo_uri: p.logo_uri,
        client_metadata: p.client_metadata,
        backchannel_logout_uri: p.backchannel_logout_uri,
        backchannel_logout_session_required: p.backchannel_logout_session_required,
    })
}

#[utoipa::path(patch, path = "/clients/{id}", tag = "clients", summary = "Update a client",
    params(("id" = String, Path, description = "The client id")),
    request_body = ClientPatchBody,
    responses((status = 200, body = ClientView)),
    security(("bearer" = ["update:clients"])))]
async fn patch(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::UPDATE_CLIENTS)?;
    let patch = parse_client_patch(&body)?;
    let id = id.into_inner();
    let client = state
        .into_inner()
        .blocking(move |s| {
            // Validate the result of the patch, not just its parts.
            let mut preview = s.db.client_by_id(&id).map_err(|e| ApiError::from_store(e, "client"))?;
            patch.clone().apply_to(&mut preview);
            validate(&preview, s.config.allow_insecure_http_urls)?;
            guise_flow::ceiling::client(&s.flow(), &caller, &id)?;
            let now = s.clock.now();
            let mut audit = meta.api_event(&caller, now, "Update a client");
            audit.details["client"] = json!({ "client_id": id });
            audit.details["request"]["fields"] = json!(body.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()));
            s.db.update_client(&id, patch, now, audit).map_err(|e| ApiError::from_store(e, "client"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(ClientView::new(client, None)))
}

#[utoipa::path(delete, path = "/clients/{id}", tag = "clients", summary = "Delete a client",
    params(("id" = String, Path, description = "The client id")),
    responses((status = 204)),
    security(("bearer" = ["delete:clients"])))]
async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::DELETE_CLIENTS)?;
    let id = id.into_inner();
    state
        .into_inner()
        .blocking(move |s| {
            guise_flow::ceiling::client(&s.flow(), &caller, &id)?;
            let mut audit = meta.api_event(&caller, s.clock.now(), "Delete a client");
            audit.details["client"] = json!({ "client_id": id });
            s.db.delete_client(&id, audit).map_err(|e| ApiError::from_store(e, "client"))
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/clients/{id}/rotate-secret", tag = "clients", summary = "Rotate a confidential client's secret",
    params(("id" = String, Path, description = "The client id")),
    responses((status = 200, description = "The client, with its new secret shown this once", body = ClientView)),
    security(("bearer" = ["update:clients"])))]
async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::UPDATE_CLIENTS)?;
    let id = id.into_inner();
    let (client, secret) = state
        .into_inner()
        .blocking(move |s| {
            let client = s.db.client_by_id(&id).map_err(|e| ApiError::from_store(e, "client"))?;
            if !client.is_confidential() {
                return Err(ApiError::bad_request("A public client has no secret to rotate"));
            }
            // Whoever holds the new secret holds the client's grants.
            guise_flow::ceiling::client(&s.flow(), &caller, &id)?;
            let secret = new_secret();
            let now = s.clock.now();
            let mut audit = meta.api_event(&caller, now, "Rotate a client secret");
            audit.details["client"] = json!({ "client_id": id });
            let client =
                s.db.set_client_secret_hash(&id, &hash_client_secret(&secret), now, audit)
                    .map_err(|e| ApiError::from_store(e, "client"))?;
            Ok((client, secret))
        })
        .await?;
    Ok(HttpResponse::Ok().json(ClientView::new(client, Some(secret))))
}
