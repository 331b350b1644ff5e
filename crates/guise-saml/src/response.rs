//! Building SAML 2.0 Responses: a signed Assertion (and optionally a signed Response),
//! or an error Response carrying a SAML status code.

use crate::dsig::{SamlSigner, SignError};
use crate::xml::Element;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use guise_core::ids::new_token_id;

pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const STATUS_REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
pub const STATUS_RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
pub const STATUS_NO_PASSIVE: &str = "urn:oasis:names:tc:SAML:2.0:status:NoPassive";
pub const STATUS_INVALID_NAMEID_POLICY: &str = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy";
pub const STATUS_REQUEST_DENIED: &str = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const PASSWORD_PROTECTED: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";
const ATTRNAME_URI: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri";

/// XML Schema dateTime in UTC, as SAML wants it.
pub fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// SAML IDs must be NCNames: start with a letter or underscore.
pub fn new_id() -> String {
    format!("_{}", new_token_id().replace('-', "_"))
}

/// Everything a successful Response states.
#[derive(Debug, Clone)]
pub struct Assertion<'a> {
    pub issuer: &'a str,
    /// The ACS URL the Response is posted to.
    pub destination: &'a str,
    pub recipient: &'a str,
    pub audience: &'a str,
    pub in_response_to: Option<&'a str>,
    pub name_id: &'a str,
    pub name_id_format: &'a str,
    pub session_index: &'a str,
    pub authn_instant: DateTime<Utc>,
    pub attributes: Vec<(String, Vec<String>)>,
    pub now: DateTime<Utc>,
    pub lifetime: Duration,
    pub sign_response: bool,
}

/// How long the assertion's conditions allow for clock skew before `now`.
const SKEW: i64 = 60;

fn response_shell(
    issuer: &str,
    destination: &str,
    in_response_to: Option<&str>,
    now: DateTime<Utc>,
    status: Element,
) -> Element {
    let mut response = Element::new("samlp", "Response")
        .attr("ID", new_id())
        .attr("Version", "2.0")
        .attr("IssueInstant", instant(now))
        .attr("Destination", destination);
    if let Some(request) = in_response_to {
        response = response.attr("InResponseTo", request);
    }
    response.child(Element::new("saml", "Issuer").text(issuer)).child(status)
}

fn status(code: &str, second_level: Option<&str>, message: Option<&str>) -> Element {
    let mut status_code = Element::new("samlp", "StatusCode").attr("Value", code);
    if let Some(inner) = second_level {
        status_code = status_code.child(Element::new("samlp", "StatusCode").attr("Value", inner));
    }
    let mut status = Element::new("samlp", "Status").child(status_code);
    if let Some(message) = message {
        status = status.child(Element::new("samlp", "StatusMessage").text(message));
    }
    status
}

/// A signed Response for a successful login. Returns the XML.
pub fn success(signer: &SamlSigner, a: &Assertion<'_>) -> Result<String, SignError> {
    let assertion = signed_assertion(signer, a)?;
    let mut response =
        response_shell(a.issuer, a.destination, a.in_response_to, a.now, status(STATUS_SUCCESS, None, None))
            .child(assertion);
    if a.sign_response {
        signer.sign(&mut response, 1)?;
    }
    Ok(response.canonical())
}

/// The signed SAML 2.0 Assertion alone (WS-Federation carries it in an RSTR).
pub fn signed_assertion(signer: &SamlSigner, a: &Assertion<'_>) -> Result<Element, SignError> {
    let not_on_or_after = instant(a.now + a.lifetime);
    let mut confirmation_data = Element::new("saml", "SubjectConfirmationData")
        .attr("NotOnOrAfter", not_on_or_after.clone())
        .attr("Recipient", a.recipient);
    if let Some(request) = a.in_response_to {
        confirmation_data = confirmation_data.attr("InResponseTo", request);
    }
    let subject = Element::new("saml", "Subject")
        .child(Element::new("saml", "NameID").attr("Format", a.name_id_format).text(a.name_id))
        .child(Element::new("saml", "SubjectConfirmation").attr("Method", BEARER).child(confirmation_data));
    let conditions = Element::new("saml", "Conditions")
        .attr("NotBefore", instant(a.now - Duration::seconds(SKEW)))
        .attr("NotOnOrAfter", not_on_or_after)
        .child(Element::new("saml", "AudienceRestriction").child(Element::new("saml", "Audience").text(a.audience)));
    let authn = Element::new("saml", "AuthnStatement")
        .attr("AuthnInstant", instant(a.authn_instant))
        .attr("SessionIndex", a.session_index)
        .child(
            Element::new("saml", "AuthnContext")
                .child(Element::new("saml", "AuthnContextClassRef").text(PASSWORD_PROTECTED)),
        );
    let mut assertion = Element::new("saml", "Assertion")
        .attr("ID", new_id())
        .attr("Version", "2.0")
        .attr("IssueInstant", instant(a.now))
        .child(Element::new("saml", "Issuer").text(a.issuer))
        .child(subject)
        .child(conditions)
        .child(authn);
    let attributes: Vec<Element> = a
        .attributes
        .iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(name, values)| {
            Element::new("saml", "Attribute")
                .attr("Name", name.as_str())
                .attr("NameFormat", ATTRNAME_URI)
                .children(values.iter().map(|v| Element::new("saml", "AttributeValue").text(v.as_str())))
        })
        .collect();
    if !attributes.is_empty() {
        assertion = assertion.child(Element::new("saml", "AttributeStatement").children(attributes));
    }
    signer.sign(&mut assertion, 1)?;
    Ok(assertion)
}

/// An unsigned error Response (`Requester`, `Responder`, with a second-level code).
pub fn failure(
    issuer: &str,
    destination: &str,
    in_response_to: Option<&str>,
    top: &str,
    second: Option<&str>,
    message: &str,
    now: DateTime<Utc>,
) -> String {
    response_shell(issuer, destination, in_response_to, now, status(top, second, Some(message))).canonical()
}

/// Whom an IdP-initiated LogoutRequest logs out: the NameID asserted, and the session.
#[derive(Debug, Clone)]
pub struct LogoutSubject<'a> {
    pub name_id: &'a str,
    pub name_id_format: &'a str,
    /// The `SessionIndex` the assertion carried (guise's session id).
    pub session_index: &'a str,
}

/// A signed LogoutRequest from the IdP (SAML core §3.7.1), in a SOAP 1.1 envelope for
/// the SOAP binding (SAML bindings §3.2): the session behind `subject` has ended.
pub fn logout_request_soap(
    signer: &SamlSigner,
    issuer: &str,
    destination: &str,
    subject: &LogoutSubject<'_>,
    now: DateTime<Utc>,
) -> Result<String, SignError> {
    let mut request = Element::new("samlp", "LogoutRequest")
        .attr("ID", new_id())
        .attr("Version", "2.0")
        .attr("IssueInstant", instant(now))
        .attr("Destination", destination)
        .attr("NotOnOrAfter", instant(now + Duration::minutes(10)))
        .child(Element::new("saml", "Issuer").text(issuer))
        .child(Element::new("saml", "NameID").attr("Format", subject.name_id_format).text(subject.name_id))
        .child(Element::new("samlp", "SessionIndex").text(subject.session_index));
    signer.sign(&mut request, 1)?;
    Ok(Element::new("soap", "Envelope").child(Element::new("soap", "Body").child(request)).canonical())
}

/// A LogoutResponse for single logout.
pub fn logout_response(issuer: &str, destination: &str, in_response_to: &str, now: DateTime<Utc>) -> String {
    Element::new("samlp", "LogoutResponse")
        .attr("ID", new_id())
        .attr("Version", "2.0")
        .attr("IssueInstant", instant(now))
        .attr("Destination", destination)
        .attr("InResponseTo", in_response_to)
        .child(Element::new("saml", "Issuer").text(issuer))
        .child(status(STATUS_SUCCESS, None, None))
        .canonical()
}
