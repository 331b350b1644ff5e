//! Incoming SAML messages: decoding the HTTP-Redirect (DEFLATE + base64) and HTTP-POST
//! (base64) bindings with size limits, parsing with DTDs refused (no XXE), and checking
//! the Redirect binding's query-string signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use sha2::Sha256;
use std::io::Read;

/// Largest encoded message accepted, and largest inflated XML.
pub const MAX_ENCODED: usize = 32 * 1024;
pub const MAX_XML: usize = 128 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("The SAML message is too large")]
    TooLarge,
    #[error("The SAML message is not valid base64")]
    BadBase64,
    #[error("The SAML message is not valid DEFLATE data")]
    BadDeflate,
    #[error("The SAML message is not valid XML: {0}")]
    BadXml(String),
    #[error("The SAML message must not contain a DOCTYPE")]
    Doctype,
    #[error("The request's ID is {0}")]
    BadId(&'static str),
    #[error("Expected a samlp:{0}")]
    WrongMessage(&'static str),
    #[error("The request signature is missing")]
    SignatureMissing,
    #[error("The request signature is invalid")]
    SignatureInvalid,
    #[error("Unsupported signature algorithm")]
    UnsupportedSigAlg,
}

fn base64_decode(encoded: &str) -> Result<Vec<u8>, RequestError> {
    if encoded.len() > MAX_ENCODED {
        return Err(RequestError::TooLarge);
    }
    let compact: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).map_err(|_| RequestError::BadBase64)
}

fn to_string(bytes: Vec<u8>) -> Result<String, RequestError> {
    String::from_utf8(bytes).map_err(|_| RequestError::BadXml("not UTF-8".into()))
}

/// `SAMLRequest` of the HTTP-Redirect binding: base64 of raw DEFLATE.
pub fn decode_redirect(encoded: &str) -> Result<String, RequestError> {
    let compressed = base64_decode(encoded)?;
    let mut xml = Vec::new();
    flate2::read::DeflateDecoder::new(compressed.as_slice())
        .take(MAX_XML as u64 + 1)
        .read_to_end(&mut xml)
        .map_err(|_| RequestError::BadDeflate)?;
    if xml.len() > MAX_XML {
        return Err(RequestError::TooLarge);
    }
    to_string(xml)
}

/// A message for the HTTP-Redirect binding: DEFLATE, then base64 (before URL-encoding).
pub fn encode_redirect(xml: &str) -> String {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = std::io::Write::write_all(&mut encoder, xml.as_bytes());
    STANDARD.encode(encoder.finish().unwrap_or_default())
}

/// `SAMLRequest` of the HTTP-POST binding: base64.
pub fn decode_post(encoded: &str) -> Result<String, RequestError> {
    to_string(base64_decode(encoded)?)
}

/// A parsed AuthnRequest: what the IdP needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnRequest {
    pub id: String,
    pub issuer: Option<String>,
    pub acs_url: Option<String>,
    pub name_id_format: Option<String>,
    pub force_authn: bool,
    pub is_passive: bool,
}

/// A parsed LogoutRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub id: String,
    pub issuer: Option<String>,
    /// `IssueInstant` (required by SAML core §3.2.1), when it parses.
    pub issue_instant: Option<chrono::DateTime<chrono::Utc>>,
    /// The `SessionIndex` values: the sessions at the IdP the request is for (guise's
    /// assertions carry the session's id).
    pub session_indexes: Vec<String>,
}

const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";

fn parse_document(xml: &str) -> Result<roxmltree::Document<'_>, RequestError> {
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(RequestError::Doctype);
    }
    let options = roxmltree::ParsingOptions { allow_dtd: false, ..Default::default() };
    roxmltree::Document::parse_with_options(xml, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => RequestError::Doctype,
        other => RequestError::BadXml(other.to_string()),
    })
}

/// Longest request ID accepted (it is echoed in `InResponseTo`).
pub const MAX_ID: usize = 256;

fn request_id<'a>(root: roxmltree::Node<'a, '_>) -> Result<&'a str, RequestError> {
    match root.attribute("ID") {
        None | Some("") => Err(RequestError::BadId("missing")),
        Some(id) if id.len() > MAX_ID => Err(RequestError::BadId("too long (at most 256 characters)")),
        Some(id) => Ok(id),
    }
}

fn issuer(root: roxmltree::Node<'_, '_>) -> Option<String> {
    root.children().find(|n| n.has_tag_name((NS_SAML, "Issuer"))).and_then(|n| n.text()).map(|t| t.trim().to_owned())
}

pub fn parse_authn_request(xml: &str) -> Result<AuthnRequest, RequestError> {
    let doc = parse_document(xml)?;
    let root = doc.root_element();
    if !root.has_tag_name((NS_SAMLP, "AuthnRequest")) {
        return Err(RequestError::WrongMessage("AuthnRequest"));
    }
    let id = request_id(root)?;
    let name_id_format = root
        .children()
        .find(|n| n.has_tag_name((NS_SAMLP, "NameIDPolicy")))
        .and_then(|n| n.attribute("Format"))
        .map(str::to_owned);
    Ok(AuthnRequest {
        id: id.to_owned(),
        issuer: issuer(root),
        acs_url: root.attribute("AssertionConsumerServiceURL").map(str::to_owned),
        name_id_format,
        force_authn: root.attribute("ForceAuthn") == Some("true"),
        is_passive: root.attribute("IsPassive") == Some("true"),
    })
}

pub fn parse_logout_request(xml: &str) -> Result<LogoutRequest, RequestError> {
    let doc = parse_document(xml)?;
    let root = doc.root_element();
    if !root.has_tag_name((NS_SAMLP, "LogoutRequest")) {
        return Err(RequestError::WrongMessage("LogoutRequest"));
    }
    let id = request_id(root)?;
    let issue_instant = root
        .attribute("IssueInstant")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    let session_indexes = root
        .children()
        .filter(|n| n.has_tag_name((NS_SAMLP, "SessionIndex")))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    Ok(LogoutRequest { id: id.to_owned(), issuer: issuer(root), issue_instant, session_indexes })
}

/// Verify the HTTP-Redirect binding signature: RSA-SHA256 over
/// `SAMLRequest=…&RelayState=…&SigAlg=…` exactly as the parameters appear in the raw
/// (still URL-encoded) query string.
pub fn verify_redirect_signature(raw_query: &str, sp_cert_pem: &str) -> Result<(), RequestError> {
    let param = |name: &str| {
        raw_query.split('&').find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
    };
    let (Some(sig_alg), Some(signature)) = (param("SigAlg"), param("Signature")) else {
        return Err(RequestError::SignatureMissing);
    };
    let decode = |v: &str| url::form_urlencoded::parse(format!("v={v}").as_bytes()).next().map(|(_, v)| v.into_owned());
    if decode(sig_alg).as_deref() != Some(crate::dsig::RSA_SHA256) {
        return Err(RequestError::UnsupportedSigAlg);
    }
    let mut signed = String::new();
    for name in ["SAMLRequest", "RelayState", "SigAlg"] {
        if let Some(value) = param(name) {
            if !signed.is_empty() {
                signed.push('&');
            }
            signed.push_str(name);
            signed.push('=');
            signed.push_str(value);
        }
    }
    let signature = decode(signature).ok_or(RequestError::SignatureInvalid)?;
    let signature = STANDARD.decode(signature.trim()).map_err(|_| RequestError::SignatureInvalid)?;
    let signature = Signature::try_from(signature.as_slice()).map_err(|_| RequestError::SignatureInvalid)?;
    let key = crate::cert::public_key_from_pem(sp_cert_pem).map_err(|_| RequestError::SignatureInvalid)?;
    VerifyingKey::<Sha256>::new(key).verify(signed.as_bytes(), &signature).map_err(|_| RequestError::SignatureInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use encode_redirect as deflate;

    const REQUEST: &str = r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_req1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" AssertionConsumerServiceURL="https://sp.example/acs" ForceAuthn="true"><saml:Issuer>https://sp.example/</saml:Issuer><samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"/></samlp:AuthnRequest>"#;

    #[test]
    fn redirect_and_post_bindings_decode_and_parse() {
        let parsed = decode_redirect(&deflate(REQUEST)).map(|xml| parse_authn_request(&xml));
        let request = parsed.ok().and_then(Result::ok);
        assert_eq!(request.as_ref().map(|r| r.id.as_str()), Some("_req1"));
        assert_eq!(request.as_ref().and_then(|r| r.acs_url.as_deref()), Some("https://sp.example/acs"));
        assert_eq!(request.as_ref().map(|r| r.force_authn), Some(true));
        assert_eq!(request.and_then(|r| r.issuer), Some("https://sp.example/".into()));
        let posted = decode_post(&STANDARD.encode(REQUEST)).map(|xml| parse_authn_request(&xml).is_ok());
        assert_eq!(posted, Ok(true));
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(decode_redirect("%%%"), Err(RequestError::BadBase64));
        assert_eq!(decode_redirect(&STANDARD.encode("not deflate")), Err(RequestError::BadDeflate));
        let xxe = r#"<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="a">&e;</samlp:AuthnRequest>"#;
        assert_eq!(parse_authn_request(xxe), Err(RequestError::Doctype));
        assert_eq!(decode_post(&"A".repeat(MAX_ENCODED + 4)), Err(RequestError::TooLarge));
        assert!(matches!(parse_authn_request("<a>"), Err(RequestError::BadXml(_))));
        assert_eq!(
            parse_authn_request(r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>"#),
            Err(RequestError::WrongMessage("AuthnRequest"))
        );
        // A missing and an overlong ID are told apart.
        let with_id = |id: &str| REQUEST.replace("ID=\"_req1\"", &format!("ID=\"{id}\""));
        assert_eq!(parse_authn_request(&with_id("")), Err(RequestError::BadId("missing")));
        let long = parse_authn_request(&with_id(&"a".repeat(10_000))).map(|r| r.id);
        assert_eq!(
            long.map_err(|e| e.to_string()),
            Err("The request's ID is too long (at most 256 characters)".into())
        );
        // A zip bomb stops at the limit.
        let bomb = deflate(&"A".repeat(MAX_XML * 4));
        assert_eq!(decode_redirect(&bomb), Err(RequestError::TooLarge));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn config() -> ProptestConfig {
            ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
        }

        /// An AuthnRequest or LogoutRequest with arbitrary attribute values and children.
        fn message() -> impl Strategy<Value = String> {
            (
                prop_oneof!["samlp:AuthnRequest", "samlp:LogoutRequest", "samlp:Response", "[a-z:]{1,12}"],
                proptest::option::of(".{0,300}"),
                proptest::option::of("[ -~]{0,40}"),
                proptest::option::of("[ -~]{0,40}"),
                "[ -~]{0,60}",
            )
                .prop_map(|(tag, id, issuer, acs, body)| {
                    let attr = |name: &str, v: &Option<String>| {
                        v.as_ref().map(|v| format!(r#" {name}="{}""#, v.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;"))).unwrap_or_default()
                    };
                    format!(
                        r#"<{tag} xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"{}{}><saml:Issuer>{}</saml:Issuer>{body}</{tag}>"#,
                        attr("ID", &id),
                        attr("AssertionConsumerServiceURL", &acs),
                        issuer.unwrap_or_default().replace('&', "&amp;").replace('<', "&lt;"),
                    )
                })
        }

        proptest! {
            #![proptest_config(config())]

            /// Any string as a Redirect- or POST-binding SAMLRequest is decoded or refused.
            #[test]
            fn any_encoded_message_is_answered(encoded in "[ -~]{0,400}") {
                let _ = decode_redirect(&encoded).map(|xml| parse_authn_request(&xml));
                let _ = decode_post(&encoded).map(|xml| parse_logout_request(&xml));
            }

            /// Any bytes, base64-encoded (and so past the first check), are decoded or refused.
            #[test]
            fn any_bytes_are_answered(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                let encoded = STANDARD.encode(&bytes);
                let _ = decode_redirect(&encoded).map(|xml| parse_authn_request(&xml));
                let _ = decode_post(&encoded).map(|xml| parse_logout_request(&xml));
            }

            /// Any XML-ish text is parsed or refused, over both bindings.
            #[test]
            fn any_message_is_parsed_or_refused(xml in message()) {
                let _ = parse_authn_request(&xml);
                let _ = parse_logout_request(&xml);
                let _ = decode_redirect(&deflate(&xml)).map(|xml| parse_authn_request(&xml));
                let _ = decode_post(&STANDARD.encode(&xml)).map(|xml| parse_logout_request(&xml));
            }

            /// Any raw query string is checked for a Redirect-binding signature without a panic.
            #[test]
            fn any_query_signature_is_answered(query in "(SAMLRequest=|RelayState=|SigAlg=|Signature=|&|%[0-9A-F]{2}|[ -~]){0,80}") {
                prop_assert!(verify_redirect_signature(&query, "not a certificate").is_err());
            }
        }
    }
}
