//! Enveloped XML signatures (XML-DSig) over guise's own canonical XML: RSA-SHA256 with
//! SHA-256 digests and exclusive c14n, the profile SAML 2.0 and WS-Federation SPs expect.

use crate::xml::Element;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::RsaPrivateKey;
use sha2::{Digest, Sha256};
use std::sync::Arc;

pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// The RSA signature could not be made (an internal fault of the crypto library).
#[derive(Debug, thiserror::Error)]
#[error("XML signature failed")]
pub struct SignError;

/// A signing key (parsed once, signing through aws-lc) with the certificate SPs verify
/// it by.
#[derive(Clone)]
pub struct SamlSigner {
    key: Arc<RsaKeyPair>,
    /// DER of the X.509 certificate, base64 (as it appears in KeyInfo and metadata).
    pub certificate_b64: String,
}

impl std::fmt::Debug for SamlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlSigner").field("key", &"<redacted>").finish()
    }
}

impl SamlSigner {
    pub fn new(private_key: &RsaPrivateKey, certificate_der: &[u8]) -> Result<Self, crate::cert::CertError> {
        use rsa::pkcs8::EncodePrivateKey;
        let pkcs8 = private_key.to_pkcs8_der().map_err(|e| crate::cert::CertError(e.to_string()))?;
        let key = RsaKeyPair::from_pkcs8(pkcs8.as_bytes()).map_err(|e| crate::cert::CertError(e.to_string()))?;
        Ok(Self { key: Arc::new(key), certificate_b64: STANDARD.encode(certificate_der) })
    }

    /// From a PKCS#8 PEM private key and its PEM certificate.
    pub fn from_pem(private_key_pem: &str, certificate_pem: &str) -> Result<Self, crate::cert::CertError> {
        use rsa::pkcs8::der::Document;
        use x509_cert::der::{DecodePem, Encode};
        let (_, pkcs8) = Document::from_pem(private_key_pem).map_err(|e| crate::cert::CertError(e.to_string()))?;
        let key = RsaKeyPair::from_pkcs8(pkcs8.as_bytes()).map_err(|e| crate::cert::CertError(e.to_string()))?;
        let certificate = x509_cert::Certificate::from_pem(certificate_pem.as_bytes())
            .map_err(|e| crate::cert::CertError(e.to_string()))?;
        let der = certificate.to_der().map_err(|e| crate::cert::CertError(e.to_string()))?;
        Ok(Self { key: Arc::new(key), certificate_b64: STANDARD.encode(der) })
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `data`.
    fn rsa_sha256(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), data, &mut signature).map_err(|_| SignError)?;
        Ok(signature)
    }

    /// Sign `element` (whose `ID` attribute the reference names) with an enveloped
    /// signature inserted as its child at `position` (after the Issuer, per SAML's schema).
    pub fn sign(&self, element: &mut Element, position: usize) -> Result<(), SignError> {
        let id = element.get_attr("ID").or_else(|| element.get_attr("AssertionID")).unwrap_or_default().to_owned();
        // The enveloped-signature transform removes the Signature: digest the element as
        // it is before the signature goes in.
        let digest = STANDARD.encode(Sha256::digest(element.canonical().as_bytes()));
        let inclusive = element.inclusive_prefixes();
        let mut c14n_transform = Element::new("ds", "Transform").attr("Algorithm", EXC_C14N);
        if !inclusive.is_empty() {
            c14n_transform =
                c14n_transform.child(Element::new("ec", "InclusiveNamespaces").attr("PrefixList", inclusive.join(" ")));
        }
        let signed_info = Element::new("ds", "SignedInfo")
            .child(Element::new("ds", "CanonicalizationMethod").attr("Algorithm", EXC_C14N))
            .child(Element::new("ds", "SignatureMethod").attr("Algorithm", RSA_SHA256))
            .child(
                Element::new("ds", "Reference")
                    .attr("URI", format!("#{id}"))
                    .child(
                        Element::new("ds", "Transforms")
                            .child(Element::new("ds", "Transform").attr("Algorithm", ENVELOPED))
                            .child(c14n_transform),
                    )
                    .child(Element::new("ds", "DigestMethod").attr("Algorithm", SHA256))
                    .child(Element::new("ds", "DigestValue").text(digest)),
            );
        let signature_value = STANDARD.encode(self.rsa_sha256(signed_info.canonical().as_bytes())?);
        let signature = Element::new("ds", "Signature")
            .child(signed_info)
            .child(Element::new("ds", "SignatureValue").text(signature_value))
            .child(
                Element::new("ds", "KeyInfo").child(
                    Element::new("ds", "X509Data")
                        .child(Element::new("ds", "X509Certificate").text(self.certificate_b64.clone())),
                ),
            );
        element.insert_child(position, signature);
        Ok(())
    }

    /// Sign raw bytes (the HTTP-Redirect binding's query-string signature).
    pub fn sign_bytes(&self, data: &[u8]) -> Result<String, SignError> {
        Ok(STANDARD.encode(self.rsa_sha256(data)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::Element;

    /// Verify a signed document with Debian's `xmlsec1` (an independent implementation).
    /// `id_attr` is `ATTRIBUTE NODE-URI:NODE-NAME`, e.g. `ID urn:…:assertion:Assertion`.
    pub(crate) fn xmlsec1_verifies(xml: &str, cert_pem: &str, id_attr: &str) -> Result<bool, std::io::Error> {
        let (attribute, node) = id_attr.split_once(' ').unwrap_or((id_attr, ""));
        let dir = std::env::temp_dir().join(format!("guise-dsig-{}", guise_core::ids::new_key_id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("doc.xml"), xml)?;
        std::fs::write(dir.join("cert.pem"), cert_pem)?;
        let output = std::process::Command::new("xmlsec1")
            .arg("--verify")
            .arg(format!("--id-attr:{attribute}"))
            .arg(node)
            .arg("--pubkey-cert-pem")
            .arg(dir.join("cert.pem"))
            .arg(dir.join("doc.xml"))
            .output()?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(output.status.success())
    }

    #[test]
    fn an_enveloped_signature_verifies_with_xmlsec1_and_tampering_breaks_it() -> Result<(), Box<dyn std::error::Error>>
    {
        let key = RsaPrivateKey::new(&mut rand_core::OsRng, 2048)?;
        let (der, pem) = crate::cert::self_signed(&key, "idp.example", 1)?;
        let signer = SamlSigner::new(&key, &der)?;
        let mut assertion = Element::new("saml", "Assertion")
            .attr("ID", "_abc")
            .attr("Version", "2.0")
            .attr("IssueInstant", "2026-01-01T00:00:00Z")
            .child(Element::new("saml", "Issuer").text("https://idp.example/"))
            .child(Element::new("saml", "Subject").child(Element::new("saml", "NameID").text("ada & <co>")));
        signer.sign(&mut assertion, 1)?;
        let xml = assertion.canonical();
        let id_attr = "ID urn:oasis:names:tc:SAML:2.0:assertion:Assertion";
        assert!(xmlsec1_verifies(&xml, &pem, id_attr)?, "xmlsec1 must accept: {xml}");
        let tampered = xml.replace("ada &amp;", "eve &amp;");
        assert!(!xmlsec1_verifies(&tampered, &pem, id_attr)?, "xmlsec1 must refuse a tampered assertion");
        Ok(())
    }
}
