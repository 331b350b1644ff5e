//! A single sign-on request's rules: the binding decoded (for a client with a
//! `signingCert`, the Redirect signature checked), the ACS URL registered, the `Issuer`
//! the registered entity id, a NameID format guise produces; no request is IdP-initiated
//! SSO to the first callback. Until the ACS is trusted a refusal is an error page; after,
//! a SAML error Response to it.

use crate::request::{self, AuthnRequest};
use crate::response::{STATUS_INVALID_NAMEID_POLICY, STATUS_REQUEST_DENIED};
use crate::settings::{NAMEID_FORMATS, NAMEID_UNSPECIFIED, SamlSettings};
use guise_core::authorization::{PendingAuthorization, PendingProtocol, PendingSaml};
use guise_core::client::Client;

/// `SAMLRequest` and `RelayState`, from the query (HTTP-Redirect) or the form (HTTP-POST).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct SamlParams {
    #[serde(rename = "SAMLRequest")]
    pub saml_request: Option<String>,
    #[serde(rename = "RelayState")]
    pub relay_state: Option<String>,
}

/// HTTP-Redirect (with the raw query string its signature covers) or HTTP-POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    Redirect(String),
    Post,
}

pub const MAX_RELAY_STATE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsoRefusal {
    /// The ACS is not known to be registered: an error page, never a redirect.
    Page(String),
    /// A `Requester` error Response with this second-level `status`, to the registered ACS.
    ToAcs { pending: Box<PendingSaml>, status: &'static str, message: &'static str },
}

fn page(description: impl ToString) -> SsoRefusal {
    SsoRefusal::Page(description.to_string())
}

/// What answering IdP-initiated SSO to `acs_url`, a registered callback, needs. The
/// audience comes from the registration only (a request's Issuer is checked, never used).
pub fn idp_initiated(client_id: &str, settings: &SamlSettings, acs_url: String, relay: Option<String>) -> PendingSaml {
    let name_id_format = settings.name_id_format.clone();
    PendingSaml {
        request_id: None,
        acs_url,
        audience: settings.entity_id(client_id),
        relay_state: relay,
        name_id_format,
    }
}

/// The pending login a request for `client` with its SAML `settings` becomes.
pub fn pending_sso(
    client: &Client,
    settings: &SamlSettings,
    params: &SamlParams,
    binding: &Binding,
) -> Result<PendingAuthorization, SsoRefusal> {
    if params.relay_state.as_ref().is_some_and(|r| r.len() > MAX_RELAY_STATE) {
        return Err(page("RelayState is too long"));
    }
    let parsed = params.saml_request.as_ref().map(|r| authn_request(client, settings, r, binding)).transpose()?;
    let acs_url = (parsed.as_ref().and_then(|r| r.acs_url.clone()))
        .or_else(|| client.callbacks.first().cloned())
        .ok_or_else(|| page("The client has no registered ACS URL (callbacks)"))?;
    let mut pending = idp_initiated(&client.client_id, settings, acs_url, params.relay_state.clone());
    let mut prompt = vec![];
    if let Some(parsed) = parsed {
        pending.request_id = Some(parsed.id);
        if let Some(format) = parsed.name_id_format.filter(|f| f != NAMEID_UNSPECIFIED) {
            pending.name_id_format = format;
        }
        let to_acs = |status, message| Err(SsoRefusal::ToAcs { pending: Box::new(pending.clone()), status, message });
        if !settings.issuer_matches(&client.client_id, parsed.issuer.as_deref()) {
            return to_acs(STATUS_REQUEST_DENIED, "The AuthnRequest Issuer is not this client's entity id");
        }
        if !NAMEID_FORMATS.contains(&pending.name_id_format.as_str()) {
            return to_acs(STATUS_INVALID_NAMEID_POLICY, "Unsupported NameID format");
        }
        if parsed.is_passive {
            prompt.push("none".to_owned());
        } else if parsed.force_authn {
            prompt.push("login".to_owned());
        }
    }
    let protocol = PendingProtocol::Saml(pending);
    Ok(PendingAuthorization { client_id: client.client_id.clone(), prompt, max_age: None, protocol })
}

/// Decode, check the signature of, and parse an AuthnRequest whose ACS is registered.
fn authn_request(
    client: &Client,
    settings: &SamlSettings,
    encoded: &str,
    binding: &Binding,
) -> Result<AuthnRequest, SsoRefusal> {
    let xml = match binding {
        Binding::Redirect(raw_query) => {
            if let Some(cert) = &settings.signing_cert {
                request::verify_redirect_signature(raw_query, cert).map_err(page)?;
            }
            request::decode_redirect(encoded).map_err(page)?
        }
        Binding::Post if settings.signing_cert.is_some() => {
            return Err(page("This client requires signed requests: use the HTTP-Redirect binding"));
        }
        Binding::Post => request::decode_post(encoded).map_err(page)?,
    };
    let parsed = request::parse_authn_request(&xml).map_err(page)?;
    match &parsed.acs_url {
        Some(acs) if !client.is_registered_callback(acs) => {
            Err(page("The AssertionConsumerServiceURL is not registered for this client"))
        }
        _ => Ok(parsed),
    }
}

#[cfg(test)]
mod tests;
