//! An SP's single logout over HTTP-Redirect. A client with a `signingCert` must send a
//! signed LogoutRequest naming its entity id, recent, and used once (the caller redeems
//! [`CheckedLogout::replay`]); otherwise nothing ends. The LogoutResponse goes only to a
//! registered `logout.callback`. Refusals are error pages.

use crate::request::{self, LogoutRequest, RequestError};
use crate::settings::SamlSettings;
use crate::sso::SamlParams;
use chrono::{DateTime, Duration, Utc};
use guise_core::bewit::MAX_CLOCK_SKEW_SECS;
use guise_core::client::Client;

/// How old a signed LogoutRequest may be (its ID is remembered as long, plus the skew).
pub const LOGOUT_REQUEST_WINDOW_MINUTES: i64 = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutRefusal {
    #[error("This client requires a signed LogoutRequest")]
    Unsigned,
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("The LogoutRequest's Issuer is not this client's registered entity id")]
    WrongIssuer,
    #[error("The LogoutRequest is not recent (IssueInstant)")]
    NotRecent,
    #[error("This LogoutRequest was already used")]
    Replayed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedLogout {
    pub request: Option<LogoutRequest>,
    /// For a signed request: the key that marks it used, and until when it must be kept.
    pub replay: Option<(String, DateTime<Utc>)>,
}

/// Check a logout for `client_id`; `raw_query` is what a signature covers.
pub fn check_logout(
    client_id: &str,
    settings: &SamlSettings,
    params: &SamlParams,
    raw_query: &str,
    now: DateTime<Utc>,
) -> Result<CheckedLogout, LogoutRefusal> {
    let Some(cert) = &settings.signing_cert else {
        let request = params.saml_request.as_deref().map(parse).transpose()?;
        return Ok(CheckedLogout { request, replay: None });
    };
    let encoded = params.saml_request.as_deref().ok_or(LogoutRefusal::Unsigned)?;
    request::verify_redirect_signature(raw_query, cert)?;
    let request = parse(encoded)?;
    if !settings.issuer_matches(client_id, request.issuer.as_deref()) {
        return Err(LogoutRefusal::WrongIssuer);
    }
    let window = Duration::minutes(LOGOUT_REQUEST_WINDOW_MINUTES);
    let skew = Duration::seconds(MAX_CLOCK_SKEW_SECS);
    if !request.issue_instant.is_some_and(|at| at > now - window && at < now + skew) {
        return Err(LogoutRefusal::NotRecent);
    }
    let replay = Some((format!("samlp-logout:{client_id}:{}", request.id), now + window + skew));
    Ok(CheckedLogout { request: Some(request), replay })
}

/// Whether a LogoutRequest is for the session with id `sid` (SAML core §3.7.3.2: the
/// session authority ends the sessions the request identifies). A request with
/// `SessionIndex` values is for those sessions only; guise's assertions carry the
/// session's id there. One without (or a bare logout, with no request) is for the
/// session the browser comes with.
pub fn is_for_session(checked: &CheckedLogout, sid: &str) -> bool {
    checked.request.as_ref().is_none_or(|r| r.session_indexes.is_empty() || r.session_indexes.iter().any(|i| i == sid))
}

fn parse(encoded: &str) -> Result<LogoutRequest, RequestError> {
    request::parse_logout_request(&request::decode_redirect(encoded)?)
}

/// The LogoutResponse (DEFLATE, base64, with `RelayState`) to the client's
/// `logout.callback` for a LogoutRequest, if the callback is a registered URL.
pub fn response_url(
    issuer: &str,
    client: &Client,
    settings: &SamlSettings,
    checked: &CheckedLogout,
    relay_state: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<String>, url::ParseError> {
    let callback = settings.logout_callback.as_ref().filter(|c| client.accepts_sign_out_reply(c));
    let (Some(request), Some(callback)) = (&checked.request, callback) else { return Ok(None) };
    let xml = crate::response::logout_response(issuer, callback, &request.id, now);
    let mut url = url::Url::parse(callback)?;
    url.query_pairs_mut().append_pair("SAMLResponse", &request::encode_redirect(&xml));
    if let Some(relay) = relay_state {
        url.query_pairs_mut().append_pair("RelayState", relay);
    }
    Ok(Some(url.to_string()))
}

#[cfg(test)]
mod tests;
