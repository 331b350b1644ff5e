//! Federation metadata (WS-Federation 1.2 §3.1): a signed EntityDescriptor with a
//! SecurityTokenServiceType role — the token signing certificate, the token types
//! offered and the passive requestor endpoint.

use crate::settings::{TOKEN_SAML11, TOKEN_SAML20};
use guise_saml::dsig::{SamlSigner, SignError};
use guise_saml::xml::Element;

pub fn federation_metadata(signer: &SamlSigner, entity_id: &str, passive_endpoint: &str) -> Result<String, SignError> {
    let key_info = Element::new("ds", "KeyInfo").child(
        Element::new("ds", "X509Data")
            .child(Element::new("ds", "X509Certificate").text(signer.certificate_b64.clone())),
    );
    let role = Element::new("md", "RoleDescriptor")
        .declare("fed")
        .declare("xsi")
        .attr("xsi:type", "fed:SecurityTokenServiceType")
        .attr("protocolSupportEnumeration", "http://docs.oasis-open.org/wsfed/federation/200706")
        .child(Element::new("md", "KeyDescriptor").attr("use", "signing").child(key_info))
        .child(
            Element::new("fed", "TokenTypesOffered")
                .child(Element::new("fed", "TokenType").attr("Uri", TOKEN_SAML11))
                .child(Element::new("fed", "TokenType").attr("Uri", TOKEN_SAML20)),
        )
        .child(Element::new("fed", "PassiveRequestorEndpoint").child(
            Element::new("wsa", "EndpointReference").child(Element::new("wsa", "Address").text(passive_endpoint)),
        ));
    let mut entity = Element::new("md", "EntityDescriptor")
        .attr("ID", guise_saml::response::new_id())
        .attr("entityID", entity_id)
        .child(role);
    signer.sign(&mut entity, 0)?;
    Ok(entity.canonical())
}
