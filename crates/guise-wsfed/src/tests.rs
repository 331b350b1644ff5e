//! The signatures guise emits verify with Debian's `xmlsec1`, an independent implementation.

use crate::metadata::federation_metadata;
use crate::settings::{TOKEN_SAML11, TOKEN_SAML20};
use crate::token::{SignIn, request_security_token_response};
use chrono::{Duration, Utc};
use guise_saml::dsig::SamlSigner;

fn signer() -> Result<(SamlSigner, String), Box<dyn std::error::Error>> {
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)?;
    let (der, pem) = guise_saml::cert::self_signed(&key, "idp.example", 7)?;
    Ok((SamlSigner::new(&key, &der)?, pem))
}

fn xmlsec1(xml: &str, pem: &str, id_attr: &str, node: &str) -> Result<bool, std::io::Error> {
    let dir = std::env::temp_dir().join(format!("guise-wsfed-{}", guise_saml::response::new_id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("doc.xml"), xml)?;
    std::fs::write(dir.join("cert.pem"), pem)?;
    let status = std::process::Command::new("xmlsec1")
        .args(["--verify", &format!("--id-attr:{id_attr}"), node, "--pubkey-cert-pem"])
        .arg(dir.join("cert.pem"))
        .arg(dir.join("doc.xml"))
        .output()?
        .status;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(status.success())
}

fn sign_in(token_type: &'static str) -> SignIn<'static> {
    SignIn {
        issuer: "https://idp.example/",
        realm: "urn:app",
        name_id: "guise|abc",
        email_name_id: false,
        claims: vec![(
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress".into(),
            vec!["a@example.com".into()],
        )],
        now: Utc::now(),
        lifetime: Duration::hours(1),
        authn_instant: Utc::now(),
        session_index: "sid",
        token_type,
    }
}

fn assertion(xml: &str, open: &str, close: &str) -> String {
    let start = xml.find(open).unwrap_or(0);
    let end = xml.find(close).map(|e| e + close.len()).unwrap_or(xml.len());
    xml[start..end].to_owned()
}

#[test]
fn saml11_and_saml20_tokens_and_metadata_verify() -> Result<(), Box<dyn std::error::Error>> {
    let (signer, pem) = signer()?;
    let rstr = request_security_token_response(&signer, &sign_in(TOKEN_SAML11))?;
    let token = assertion(&rstr, "<saml1:Assertion", "</saml1:Assertion>");
    assert!(xmlsec1(&token, &pem, "AssertionID", "urn:oasis:names:tc:SAML:1.0:assertion:Assertion")?, "{token}");
    assert!(!xmlsec1(
        &token.replace("a@example.com", "b@example.com"),
        &pem,
        "AssertionID",
        "urn:oasis:names:tc:SAML:1.0:assertion:Assertion"
    )?);
    assert!(
        rstr.contains("<wsa:Address>urn:app</wsa:Address>")
            && rstr.contains("<saml1:Audience>urn:app</saml1:Audience>")
    );

    let rstr = request_security_token_response(&signer, &sign_in(TOKEN_SAML20))?;
    let token = assertion(&rstr, "<saml:Assertion", "</saml:Assertion>");
    assert!(xmlsec1(&token, &pem, "ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion")?, "{token}");

    let metadata = federation_metadata(&signer, "https://idp.example/", "https://idp.example/wsfed")?;
    assert!(metadata.contains(r#"xsi:type="fed:SecurityTokenServiceType""#));
    assert!(xmlsec1(&metadata, &pem, "ID", "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor")?, "{metadata}");
    Ok(())
}
