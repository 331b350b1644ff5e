//! The console's cookies and what they protect. The session cookie is a 256-bit secret;
//! the database keeps only its SHA-256 (the row's key) and the agent's token sealed with
//! ChaCha20-Poly1305 under a key derived from it (HKDF-SHA256), so neither a copy of the
//! database nor the cookie alone is a usable token store. Every form carries a CSRF token
//! derived from the cookie (HMAC-SHA256), checked in constant time.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The console session (path `/console`).
pub const SESSION_COOKIE: &str = "guise_console";
/// The sign-in in progress: `state`, PKCE verifier, nonce and where to return.
pub const LOGIN_COOKIE: &str = "guise_console_login";
/// Cookies are sent only to the console's own paths.
const PATH: &str = "/console";
/// A cookie longer than this is not one of ours.
const MAX_COOKIE: usize = 2048;

fn base(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(name, value).path(PATH).http_only(true).same_site(SameSite::Lax).secure(secure).finish()
}

pub fn session_cookie(value: String, secure: bool) -> Cookie<'static> {
    base(SESSION_COOKIE, value, secure)
}

pub fn login_cookie(value: String, secure: bool) -> Cookie<'static> {
    let mut cookie = base(LOGIN_COOKIE, value, secure);
    cookie.set_max_age(CookieDuration::minutes(15));
    cookie
}

pub fn removal(name: &'static str, secure: bool) -> Cookie<'static> {
    let mut cookie = base(name, String::new(), secure);
    cookie.set_max_age(CookieDuration::ZERO);
    cookie
}

/// A cookie value we would have set: present, short, base64url.
pub fn well_formed(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_COOKIE
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The database key of a session cookie.
pub fn id_hash(cookie: &str) -> String {
    guise_oidc::grant::hash_secret(cookie)
}

fn sealing_key(cookie: &str) -> Key {
    let mut key = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32: expand cannot fail.
    let _ = hkdf::Hkdf::<Sha256>::new(None, cookie.as_bytes()).expand(b"guise console token v1", &mut key);
    Key::from(key)
}

/// The token sealed under the cookie: base64url(nonce || ciphertext).
pub fn seal(cookie: &str, token: &str) -> Option<String> {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let sealed = ChaCha20Poly1305::new(&sealing_key(cookie)).encrypt(&Nonce::from(nonce), token.as_bytes()).ok()?;
    let mut out = nonce.to_vec();
    out.extend(sealed);
    Some(URL_SAFE_NO_PAD.encode(out))
}

/// The token, if `sealed` was sealed under this cookie.
pub fn open(cookie: &str, sealed: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if bytes.len() < 12 {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    let plain = ChaCha20Poly1305::new(&sealing_key(cookie)).decrypt(&Nonce::from(nonce), ciphertext).ok()?;
    String::from_utf8(plain).ok()
}

fn mac(key: &str, purpose: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(purpose);
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The CSRF token of the console's forms for this session cookie.
pub fn csrf_token(cookie: &str) -> String {
    mac(cookie, b"guise console csrf v1")
}

/// The CSRF token of the "End impersonation" form on guise's own pages, bound to the
/// guise session cookie of the impersonation.
pub fn end_impersonation_token(guise_session_cookie: &str) -> String {
    mac(guise_session_cookie, b"guise end impersonation v1")
}

/// Constant-time comparison of a submitted token with the expected one.
pub fn tokens_match(expected: &str, given: &str) -> bool {
    !expected.is_empty() && expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// A sign-in in progress, kept in `LOGIN_COOKIE` between `/console/login` and the
/// callback.
#[derive(Debug, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub state: String,
    pub verifier: String,
    pub nonce: String,
    /// A console path (checked by `safe_return`).
    pub return_to: String,
}

impl PendingSignIn {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(value: &str) -> Option<Self> {
        if value.len() > MAX_COOKIE {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(value).ok()?).ok()
    }
}

/// Only console paths are places to return to after sign-in (no open redirect).
pub fn safe_return(path: Option<&str>) -> String {
    match path {
        Some(p)
            if (p == "/console" || p.starts_with("/console/") || p.starts_with("/console?"))
                && !p.contains("//")
                && !p.contains('\\')
                && p.len() <= 1024 =>
        {
            p.to_owned()
        }
        _ => "/console".to_owned(),
    }
}

/// A console form that carries only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_only_under_its_cookie() {
        let sealed = seal("cookie-a", "the token").unwrap_or_default();
        assert_eq!(open("cookie-a", &sealed).as_deref(), Some("the token"));
        assert_eq!(open("cookie-b", &sealed), None);
        assert_eq!(open("cookie-a", "AAAA"), None);
        assert!(!sealed.contains("the token"));
    }

    #[test]
    fn csrf_tokens_are_per_cookie_and_purpose() {
        assert!(tokens_match(&csrf_token("a"), &csrf_token("a")));
        assert!(!tokens_match(&csrf_token("a"), &csrf_token("b")));
        assert!(!tokens_match(&csrf_token("a"), &end_impersonation_token("a")));
        assert!(!tokens_match(&csrf_token("a"), ""));
    }

    #[test]
    fn only_console_paths_are_returned_to() {
        assert_eq!(safe_return(Some("/console/users/x?y=1")), "/console/users/x?y=1");
        for bad in ["https://evil.example/", "//evil.example/console", "/console//evil", "/consolex", "/\\evil"] {
            assert_eq!(safe_return(Some(bad)), "/console", "{bad}");
        }
    }
}
