//! The console's only way to read or change anything: the Management API (and the token
//! endpoint), called over loopback HTTP on the socket the browser's request arrived on,
//! with the agent's own bearer token. Whatever the API refuses, the console refuses, in
//! the API's words.
//!
//! So that the audit log records the agent's address rather than loopback, each call
//! (the sign-in's code exchange included) names it in `x-guise-console-source`, vouched for by `x-guise-console-relay`: a
//! random key of this process, known to nothing outside it. `RequestMeta` believes the
//! address only with the key and only from a loopback peer (`relayed_source`).

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

const RELAY_HEADER: &str = "x-guise-console-relay";
const SOURCE_HEADER: &str = "x-guise-console-source";

fn relay_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(guise_core::ids::new_secret)
}

/// The agent's address a console call relays, when the call really comes from this
/// process's console (loopback peer, the process's relay key).
pub fn relayed_source(req: &HttpRequest) -> Option<String> {
    let key = req.headers().get(RELAY_HEADER)?.to_str().ok()?;
    let from_loopback = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
    if !from_loopback || !super::session::tokens_match(relay_key(), key) {
        return None;
    }
    let source = req.headers().get(SOURCE_HEADER)?.to_str().ok()?;
    source.parse::<IpAddr>().ok().map(|ip| ip.to_string())
}

/// A refused or failed call: the status and the API's own message.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    pub status: u16,
    pub message: String,
}

impl ApiFailure {
    /// The status to answer with: the API's own, or `502` for one that is not a status.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_GATEWAY)
    }

    fn unreachable(e: &reqwest::Error) -> Self {
        tracing::error!(error = %e, "console: loopback call to the Management API failed");
        ApiFailure { status: 503, message: "guise could not be reached; try again".into() }
    }
}

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default()
    })
}

/// The loopback base URL of the server that received `req`.
pub fn loopback_base(req: &HttpRequest) -> String {
    let local = req.app_config().local_addr();
    let ip = match local.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, local.port()))
}

/// Percent-encode one path segment (user ids hold `|`).
pub fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The Management API, as the agent.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    token: String,
    /// The agent's address, relayed to the API for its audit events.
    source: Option<String>,
}

async fn answer(response: reqwest::Response) -> Result<String, ApiFailure> {
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| ApiFailure::unreachable(&e))?;
    if (200..300).contains(&status) {
        return Ok(text);
    }
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let message = body["message"]
        .as_str()
        .or_else(|| body["error_description"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("The request was refused ({status})"));
    Err(ApiFailure { status, message })
}

/// The agent's address, as guise's own audit events would record it for `req`.
fn agent_address(req: &HttpRequest) -> Option<String> {
    let trust =
        req.app_data::<actix_web::web::Data<crate::state::AppState>>().is_some_and(|s| s.config.trust_forwarded_for);
    crate::auth::RequestMeta::from_request(req, trust).0.source_ip
}

/// A loopback call that names the agent's address, vouched for by the relay key.
fn relay(request: reqwest::RequestBuilder, source: Option<&str>) -> reqwest::RequestBuilder {
    match source {
        Some(source) => request.header(RELAY_HEADER, relay_key()).header(SOURCE_HEADER, source),
        None => request,
    }
}

impl Api {
    pub fn new(req: &HttpRequest, token: String) -> Self {
        Api { base: loopback_base(req), token, source: agent_address(req) }
    }

    /// Send a call as the agent (their token, their address relayed); the response body as text.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<String, ApiFailure> {
        let request = relay(request.bearer_auth(&self.token), self.source.as_deref());
        let response = request.send().await.map_err(|e| ApiFailure::unreachable(&e))?;
        answer(response).await
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiFailure> {
        let text = self.send(http().get(format!("{}{path}", self.base)).query(query)).await?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A POST with a JSON body; the response body as text.
    pub async fn post(&self, path: &str, body: &Value) -> Result<String, ApiFailure> {
        self.send(http().post(format!("{}{path}", self.base)).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), ApiFailure> {
        self.send(http().delete(format!("{}{path}", self.base))).await.map(|_| ())
    }
}

/// The token endpoint (a public client: no credentials beyond the PKCE verifier),
/// with the agent's address relayed for its audit event like every other console call.
pub async fn token_request(req: &HttpRequest, form: &[(&str, &str)]) -> Result<Value, ApiFailure> {
    let request = http().post(format!("{}/oauth/token", loopback_base(req))).form(form);
    let response =
        relay(request, agent_address(req).as_deref()).send().await.map_err(|e| ApiFailure::unreachable(&e))?;
    let text = answer(response).await?;
    serde_json::from_str(&text)
        .map_err(|_| ApiFailure { status: 502, message: "The token response was not JSON".into() })
}
