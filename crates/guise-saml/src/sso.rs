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
mod tests {
    use super::*;
    use crate::response::STATUS_REQUEST_DENIED;
    use crate::settings::{NAMEID_EMAIL, from_addons};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use guise_core::client::AppType;
    use serde_json::json;

    const ACS: &str = "https://sp.example/acs";
    const OTHER_ACS: &str = "https://sp.example/other";

    fn client(callbacks: &[&str]) -> Client {
        let mut client = Client::new("c1", "SP", AppType::RegularWeb, chrono::DateTime::UNIX_EPOCH);
        client.callbacks = callbacks.iter().map(|c| (*c).to_owned()).collect();
        client
    }

    fn settings(samlp: serde_json::Value) -> SamlSettings {
        let addons = json!({ "samlp": samlp }).as_object().cloned().unwrap_or_default();
        from_addons(&addons).ok().flatten().unwrap_or_else(|| panic!("settings"))
    }

    /// A POST-binding AuthnRequest from the registered entity (`urn:c1`) asking for `acs`.
    fn posted(acs: &str, issuer: &str, extra: &str) -> SamlParams {
        let xml = format!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" AssertionConsumerServiceURL="{acs}"{extra}><saml:Issuer>{issuer}</saml:Issuer></samlp:AuthnRequest>"#
        );
        SamlParams { saml_request: Some(STANDARD.encode(xml)), relay_state: Some("rs".into()) }
    }

    fn saml(result: Result<PendingAuthorization, SsoRefusal>) -> (Vec<String>, PendingSaml) {
        match result {
            Ok(PendingAuthorization { prompt, protocol: PendingProtocol::Saml(saml), .. }) => (prompt, saml),
            other => panic!("expected a pending SAML login, got {other:?}"),
        }
    }

    #[test]
    fn an_unregistered_acs_is_an_error_page_never_a_response_to_it() {
        let refused =
            pending_sso(&client(&[ACS]), &settings(json!({})), &posted(OTHER_ACS, "urn:c1", ""), &Binding::Post);
        assert_eq!(
            refused,
            Err(SsoRefusal::Page("The AssertionConsumerServiceURL is not registered for this client".into()))
        );
        // IdP-initiated SSO for a client without callbacks has no ACS either.
        let none = pending_sso(&client(&[]), &settings(json!({})), &SamlParams::default(), &Binding::Post);
        assert!(matches!(none, Err(SsoRefusal::Page(_))), "{none:?}");
        // Undecodable requests, an overlong RelayState and unsigned POSTs to a signing SP are pages too.
        let garbage = SamlParams { saml_request: Some("%%%".into()), relay_state: None };
        assert!(matches!(
            pending_sso(&client(&[ACS]), &settings(json!({})), &garbage, &Binding::Post),
            Err(SsoRefusal::Page(_))
        ));
        let long = SamlParams { relay_state: Some("r".repeat(MAX_RELAY_STATE + 1)), ..posted(ACS, "urn:c1", "") };
        assert!(matches!(
            pending_sso(&client(&[ACS]), &settings(json!({})), &long, &Binding::Post),
            Err(SsoRefusal::Page(_))
        ));
        let signing = settings(json!({ "signingCert": "-----BEGIN CERTIFICATE-----" }));
        let unsigned = pending_sso(&client(&[ACS]), &signing, &posted(ACS, "urn:c1", ""), &Binding::Post);
        assert!(matches!(unsigned, Err(SsoRefusal::Page(_))), "{unsigned:?}");
        let redirect = Binding::Redirect("SAMLRequest=x".into());
        assert!(matches!(
            pending_sso(&client(&[ACS]), &signing, &posted(ACS, "urn:c1", ""), &redirect),
            Err(SsoRefusal::Page(_))
        ));
    }

    #[test]
    fn a_bad_request_to_a_registered_acs_is_a_saml_error_to_that_acs() {
        let sp = client(&[OTHER_ACS, ACS]);
        let foreign = pending_sso(&sp, &settings(json!({})), &posted(ACS, "https://evil.example/", ""), &Binding::Post);
        match foreign {
            Err(SsoRefusal::ToAcs { pending, status, .. }) => {
                assert_eq!((pending.acs_url.as_str(), status), (ACS, STATUS_REQUEST_DENIED));
                assert_eq!((pending.request_id.as_deref(), pending.relay_state.as_deref()), (Some("_r1"), Some("rs")));
            }
            other => panic!("expected a SAML error to the ACS, got {other:?}"),
        }
        let xml = format!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r2" AssertionConsumerServiceURL="{ACS}"><saml:Issuer>urn:c1</saml:Issuer><samlp:NameIDPolicy Format="urn:bogus"/></samlp:AuthnRequest>"#
        );
        let params = SamlParams { saml_request: Some(STANDARD.encode(xml)), relay_state: None };
        match pending_sso(&sp, &settings(json!({})), &params, &Binding::Post) {
            Err(SsoRefusal::ToAcs { pending, status, .. }) => {
                assert_eq!((pending.acs_url.as_str(), status), (ACS, STATUS_INVALID_NAMEID_POLICY));
            }
            other => panic!("expected a SAML error to the ACS, got {other:?}"),
        }
    }

    #[test]
    fn a_good_request_becomes_a_pending_login_on_the_registration() {
        let email = settings(json!({ "nameIdentifierFormat": NAMEID_EMAIL, "audience": "urn:c1" }));
        let (prompt, pending) = saml(pending_sso(&client(&[ACS]), &email, &posted(ACS, "urn:c1", ""), &Binding::Post));
        assert!(prompt.is_empty());
        assert_eq!((pending.acs_url.as_str(), pending.audience.as_str()), (ACS, "urn:c1"));
        assert_eq!(pending.name_id_format, NAMEID_EMAIL, "unspecified in the request: the registered format");
        let forced = posted(ACS, "urn:c1", r#" ForceAuthn="true""#);
        assert_eq!(saml(pending_sso(&client(&[ACS]), &email, &forced, &Binding::Post)).0, ["login"]);
        let passive = posted(ACS, "urn:c1", r#" IsPassive="true" ForceAuthn="true""#);
        assert_eq!(saml(pending_sso(&client(&[ACS]), &email, &passive, &Binding::Post)).0, ["none"]);
        // IdP-initiated: the first registered ACS, no request id.
        let idp = SamlParams { saml_request: None, relay_state: Some("rs".into()) };
        let (_, pending) = saml(pending_sso(&client(&[OTHER_ACS, ACS]), &email, &idp, &Binding::Post));
        assert_eq!((pending.acs_url.as_str(), pending.request_id), (OTHER_ACS, None));
    }
}
