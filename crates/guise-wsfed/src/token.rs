//! The sign-in response: `wresult` is a WS-Trust RequestSecurityTokenResponse whose
//! RequestedSecurityToken is a signed SAML 1.1 assertion (WS-Fed's default) or a signed
//! SAML 2.0 assertion.

use crate::settings::{TOKEN_SAML11, TOKEN_SAML20};
use chrono::{DateTime, Duration, Utc};
use guise_saml::dsig::{SamlSigner, SignError};
use guise_saml::response::{self, instant, new_id};
use guise_saml::xml::Element;

pub const CLAIMS_RMS: &str = "http://schemas.xmlsoap.org/claims";
/// Impersonation claims (see docs/impersonation.md).
pub const CLAIM_IMPERSONATED: &str = "http://schemas.guise.dev/claims/impersonated";
pub const CLAIM_IMPERSONATOR_ID: &str = "http://schemas.guise.dev/claims/impersonator_id";
pub const CLAIM_IMPERSONATOR_EMAIL: &str = "http://schemas.guise.dev/claims/impersonator_email";
const EMAIL_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
const UNSPECIFIED_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";

/// Microsoft Rights Management (`wsfed-rms`): the subject is the email address and the
/// organisation claims UPN, EmailAddress and CommonName are sent in their ADFS names.
pub fn rms_mappings() -> Vec<(String, String)> {
    [("upn", "UPN"), ("email", "EmailAddress"), ("name", "CommonName")]
        .into_iter()
        .map(|(field, claim)| (field.to_owned(), format!("{CLAIMS_RMS}/{claim}")))
        .collect()
}

pub struct SignIn<'a> {
    pub issuer: &'a str,
    pub realm: &'a str,
    /// The subject: the user id, or the email address for `wsfed-rms`.
    pub name_id: &'a str,
    pub email_name_id: bool,
    /// (claim type URI, values)
    pub claims: Vec<(String, Vec<String>)>,
    pub now: DateTime<Utc>,
    pub lifetime: Duration,
    pub authn_instant: DateTime<Utc>,
    pub session_index: &'a str,
    pub token_type: &'static str,
}

/// Split a claim type URI into SAML 1.1's AttributeNamespace and AttributeName.
fn split_claim(claim: &str) -> (&str, &str) {
    claim.rsplit_once('/').unwrap_or(("", claim))
}

fn saml11_assertion(signer: &SamlSigner, s: &SignIn<'_>) -> Result<Element, SignError> {
    let subject = || {
        Element::new("saml1", "Subject")
            .child(
                Element::new("saml1", "NameIdentifier")
                    .attr("Format", if s.email_name_id { EMAIL_FORMAT } else { UNSPECIFIED_FORMAT })
                    .text(s.name_id),
            )
            .child(
                Element::new("saml1", "SubjectConfirmation")
                    .child(Element::new("saml1", "ConfirmationMethod").text("urn:oasis:names:tc:SAML:1.0:cm:bearer")),
            )
    };
    let attributes: Vec<Element> = s
        .claims
        .iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(claim, values)| {
            let (namespace, name) = split_claim(claim);
            Element::new("saml1", "Attribute")
                .attr("AttributeName", name)
                .attr("AttributeNamespace", namespace)
                .children(values.iter().map(|v| Element::new("saml1", "AttributeValue").text(v.as_str())))
        })
        .collect();
    let mut assertion = Element::new("saml1", "Assertion")
        .attr("MajorVersion", "1")
        .attr("MinorVersion", "1")
        .attr("AssertionID", new_id())
        .attr("Issuer", s.issuer)
        .attr("IssueInstant", instant(s.now))
        .child(
            Element::new("saml1", "Conditions")
                .attr("NotBefore", instant(s.now - Duration::seconds(60)))
                .attr("NotOnOrAfter", instant(s.now + s.lifetime))
                .child(
                    Element::new("saml1", "AudienceRestrictionCondition")
                        .child(Element::new("saml1", "Audience").text(s.realm)),
                ),
        )
        .child(Element::new("saml1", "AttributeStatement").child(subject()).children(attributes))
        .child(
            Element::new("saml1", "AuthenticationStatement")
                .attr("AuthenticationMethod", "urn:oasis:names:tc:SAML:1.0:am:password")
                .attr("AuthenticationInstant", instant(s.authn_instant))
                .child(subject()),
        );
    // SAML 1.1 puts the signature last.
    let last = assertion.children.len();
    signer.sign(&mut assertion, last)?;
    Ok(assertion)
}

fn saml20_assertion(signer: &SamlSigner, s: &SignIn<'_>) -> Result<Element, SignError> {
    response::signed_assertion(
        signer,
        &response::Assertion {
            issuer: s.issuer,
            destination: s.realm,
            recipient: s.realm,
            audience: s.realm,
            in_response_to: None,
            name_id: s.name_id,
            name_id_format: if s.email_name_id { EMAIL_FORMAT } else { UNSPECIFIED_FORMAT },
            session_index: s.session_index,
            authn_instant: s.authn_instant,
            attributes: s.claims.clone(),
            now: s.now,
            lifetime: s.lifetime,
            sign_response: false,
        },
    )
}

/// The `wresult` of a sign-in response.
pub fn request_security_token_response(signer: &SamlSigner, s: &SignIn<'_>) -> Result<String, SignError> {
    let token = if s.token_type == TOKEN_SAML20 { saml20_assertion(signer, s)? } else { saml11_assertion(signer, s)? };
    Ok(Element::new("t", "RequestSecurityTokenResponse")
        .child(
            Element::new("t", "Lifetime")
                .child(Element::new("wsu", "Created").text(instant(s.now)))
                .child(Element::new("wsu", "Expires").text(instant(s.now + s.lifetime))),
        )
        .child(
            Element::new("wsp", "AppliesTo")
                .child(Element::new("wsa", "EndpointReference").child(Element::new("wsa", "Address").text(s.realm))),
        )
        .child(Element::new("t", "RequestedSecurityToken").child(token))
        .child(Element::new("t", "TokenType").text(if s.token_type == TOKEN_SAML20 {
            TOKEN_SAML20
        } else {
            TOKEN_SAML11
        }))
        .child(Element::new("t", "RequestType").text("http://schemas.xmlsoap.org/ws/2005/02/trust/Issue"))
        .child(Element::new("t", "KeyType").text("http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey"))
        .canonical())
}
