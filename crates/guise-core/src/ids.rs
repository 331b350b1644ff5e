//! Identifiers and random secrets: user ids (`guise|…`), client ids, role and grant ids.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};

/// Prefix of every user id guise mints, in the `provider|id` shape Auth0 uses.
pub const USER_ID_PREFIX: &str = "guise|";

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `guise|` followed by 24 hex digits (96 random bits).
pub fn new_user_id() -> String {
    format!("{USER_ID_PREFIX}{}", hex(&random_bytes::<12>()))
}

/// 32 random letters and digits (about 190 bits), like an Auth0 client id — no `-` or
/// `_`, so an id never looks like a command-line flag.
pub fn new_client_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut id = String::with_capacity(32);
    while id.len() < 32 {
        for byte in random_bytes::<32>() {
            // Rejection sampling keeps every character equally likely (248 = 4 × 62).
            if byte < 248 && id.len() < 32 {
                id.push(char::from(ALPHABET[usize::from(byte % 62)]));
            }
        }
    }
    id
}

/// A 256-bit random secret, base64url without padding (43 characters).
pub fn new_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

pub fn new_role_id() -> String {
    format!("rol_{}", hex(&random_bytes::<8>()))
}

pub fn new_client_grant_id() -> String {
    format!("cgr_{}", hex(&random_bytes::<8>()))
}

/// A random token identifier (`jti`), 128 bits.
pub fn new_token_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// A key id for a signing or bewit key.
pub fn new_key_id() -> String {
    hex(&random_bytes::<8>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_shapes() {
        let user = new_user_id();
        assert!(user.starts_with("guise|"));
        assert_eq!(user.len(), 6 + 24);
        let client_id = new_client_id();
        assert_eq!(client_id.len(), 32);
        assert!(client_id.bytes().all(|b| b.is_ascii_alphanumeric()), "{client_id}");
        assert_eq!(new_secret().len(), 43);
        assert_ne!(new_secret(), new_secret());
        assert!(new_role_id().starts_with("rol_"));
    }
}
