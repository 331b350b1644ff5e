//! Self-signed X.509 certificates for signing keys: SAML and WS-Federation metadata
//! publish the key as a certificate.

use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::EncodePublicKey;
use sha2::Sha256;
use std::str::FromStr;
use std::time::Duration;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::{Encode, EncodePem};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

#[derive(Debug, thiserror::Error)]
#[error("certificate generation failed: {0}")]
pub struct CertError(pub(crate) String);

/// A self-signed certificate for a PKCS#8 PEM key (the form signing keys are stored in).
pub fn self_signed_pem(private_key_pem: &str, common_name: &str, serial: u64) -> Result<String, CertError> {
    use rsa::pkcs8::DecodePrivateKey;
    let key = RsaPrivateKey::from_pkcs8_pem(private_key_pem).map_err(|e| CertError(e.to_string()))?;
    Ok(self_signed(&key, common_name, serial)?.1)
}

/// A self-signed certificate for `key`, named after the issuer host, valid ten years.
pub fn self_signed(key: &RsaPrivateKey, common_name: &str, serial: u64) -> Result<(Vec<u8>, String), CertError> {
    let err = |e: &dyn std::fmt::Display| CertError(e.to_string());
    let cn: String =
        common_name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':')).collect();
    let subject = Name::from_str(&format!("CN={}", if cn.is_empty() { "guise" } else { &cn })).map_err(|e| err(&e))?;
    let public_der = key.to_public_key().to_public_key_der().map_err(|e| err(&e))?;
    let spki = SubjectPublicKeyInfoOwned::try_from(public_der.as_bytes()).map_err(|e| err(&e))?;
    let validity = Validity::from_now(Duration::from_secs(10 * 365 * 86_400)).map_err(|e| err(&e))?;
    let signer = SigningKey::<Sha256>::new(key.clone());
    // A self-signed end-entity certificate: KeyUsage digitalSignature (what signing XML
    // needs), not a CA.
    let profile =
        Profile::Leaf { issuer: subject.clone(), enable_key_agreement: false, enable_key_encipherment: false };
    let builder = CertificateBuilder::new(profile, SerialNumber::from(serial), validity, subject, spki, &signer)
        .map_err(|e| err(&e))?;
    let certificate = builder.build::<rsa::pkcs1v15::Signature>().map_err(|e| err(&e))?;
    let der = certificate.to_der().map_err(|e| err(&e))?;
    let pem = certificate.to_pem(x509_cert::der::pem::LineEnding::LF).map_err(|e| err(&e))?;
    Ok((der, pem))
}

/// The RSA public key of a PEM certificate (an SP's signing certificate).
pub fn public_key_from_pem(pem: &str) -> Result<rsa::RsaPublicKey, CertError> {
    use x509_cert::der::DecodePem;
    use x509_cert::der::referenced::OwnedToRef;
    let pem = pem.trim();
    let wrapped;
    let pem = if pem.starts_with("-----BEGIN") {
        pem
    } else {
        // Auth0 accepts the bare base64 body too.
        wrapped = format!("-----BEGIN CERTIFICATE-----\n{pem}\n-----END CERTIFICATE-----\n");
        &wrapped
    };
    let certificate = x509_cert::Certificate::from_pem(pem.as_bytes()).map_err(|e| CertError(e.to_string()))?;
    let spki = certificate.tbs_certificate.subject_public_key_info.owned_to_ref();
    rsa::RsaPublicKey::try_from(spki).map_err(|e| CertError(e.to_string()))
}
