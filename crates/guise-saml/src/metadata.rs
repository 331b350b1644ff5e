//! IdP metadata (SAML 2.0 metadata), signed: the signing certificate and the single
//! sign-on and logout endpoints for one client.

use crate::dsig::{SamlSigner, SignError};
use crate::settings::NAMEID_FORMATS;
use crate::xml::Element;

const REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

pub struct Endpoints<'a> {
    pub entity_id: &'a str,
    pub sso_url: &'a str,
    pub slo_url: &'a str,
    /// Whether the SP must sign its AuthnRequests (it registered a signing certificate).
    pub want_authn_requests_signed: bool,
}

pub fn idp_metadata(signer: &SamlSigner, endpoints: &Endpoints<'_>) -> Result<String, SignError> {
    let key_info = Element::new("ds", "KeyInfo").child(
        Element::new("ds", "X509Data")
            .child(Element::new("ds", "X509Certificate").text(signer.certificate_b64.clone())),
    );
    let descriptor = Element::new("md", "IDPSSODescriptor")
        .attr("protocolSupportEnumeration", "urn:oasis:names:tc:SAML:2.0:protocol")
        .attr("WantAuthnRequestsSigned", if endpoints.want_authn_requests_signed { "true" } else { "false" })
        .child(Element::new("md", "KeyDescriptor").attr("use", "signing").child(key_info))
        .child(Element::new("md", "SingleLogoutService").attr("Binding", REDIRECT).attr("Location", endpoints.slo_url))
        .children(NAMEID_FORMATS.iter().map(|f| Element::new("md", "NameIDFormat").text(*f)))
        .child(Element::new("md", "SingleSignOnService").attr("Binding", REDIRECT).attr("Location", endpoints.sso_url))
        .child(Element::new("md", "SingleSignOnService").attr("Binding", POST).attr("Location", endpoints.sso_url));
    let mut entity = Element::new("md", "EntityDescriptor")
        .attr("ID", crate::response::new_id())
        .attr("entityID", endpoints.entity_id)
        .child(descriptor);
    signer.sign(&mut entity, 0)?;
    Ok(entity.canonical())
}
