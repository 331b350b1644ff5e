//! Hawk bewits: single-URL credentials (HMAC-SHA256 over Hawk's normalised request
//! string for a GET of the URL), so any standard Hawk implementation given the key id and
//! key can verify a guise impersonation URL. Time is a parameter.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use url::Url;

/// The largest difference, in seconds, between the clocks of any two guise nodes that
/// the bewit rules tolerate (5 minutes). A replay record is kept until the bewit's `exp`
/// plus this much by the clock of the node that purges it, so a node whose clock is
/// behind — which still accepts the bewit as unexpired — finds the record; and a bewit
/// whose `exp` lies further ahead than the longest URL lifetime plus this much was not
/// minted by a guise node under the current configuration and is refused. Keep the
/// nodes' clocks synchronised (NTP) well within it.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// A bewit key: an id the bewit names and the secret it signs with.
#[derive(Clone)]
pub struct BewitKey {
    pub id: String,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for BewitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BewitKey").field("id", &self.id).field("key", &"<redacted>").finish()
    }
}

/// Why a bewit was refused, in Hawk's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BewitError {
    #[error("Missing bewit")]
    Missing,
    #[error("Invalid bewit encoding")]
    Malformed,
    #[error("Unknown credentials")]
    UnknownKey,
    #[error("Bad mac")]
    BadMac,
    #[error("Access expired")]
    Expired,
    /// `exp` is further ahead than any URL guise mints may live (plus the skew).
    #[error("Access expiry too far in the future")]
    TooFarAhead,
}

impl BewitError {
    /// A short machine reason for audit events.
    pub fn reason(&self) -> &'static str {
        match self {
            BewitError::Missing | BewitError::Malformed => "malformed",
            BewitError::UnknownKey => "unknown_key",
            BewitError::BadMac => "bad_mac",
            BewitError::Expired => "expired",
            BewitError::TooFarAhead => "exp_too_far_ahead",
        }
    }
}

fn default_port(url: &Url) -> u16 {
    url.port_or_known_default().unwrap_or(80)
}

/// Hawk's escaping of `ext` in the normalised string.
fn escape_ext(ext: &str) -> String {
    ext.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The resource (path and query) with any `bewit` parameter removed, as Hawk does.
fn resource_without_bewit(url: &Url) -> String {
    let mut resource = url.path().to_owned();
    if let Some(query) = url.query() {
        let kept: Vec<&str> = query.split('&').filter(|pair| !pair.starts_with("bewit=")).collect();
        if !kept.is_empty() {
            resource.push('?');
            resource.push_str(&kept.join("&"));
        }
    }
    resource
}

fn mac(key: &[u8], url: &Url, exp: i64, ext: &str) -> Option<String> {
    let host = url.host_str()?.to_lowercase();
    let normalized = format!(
        "hawk.1.bewit\n{exp}\n\nGET\n{}\n{host}\n{}\n\n{}\n",
        resource_without_bewit(url),
        default_port(url),
        escape_ext(ext)
    );
    let mut hmac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    hmac.update(normalized.as_bytes());
    Some(STANDARD.encode(hmac.finalize().into_bytes()))
}

/// The bewit for a GET of `url` until `exp` (Unix seconds).
pub fn bewit(key: &BewitKey, url: &Url, exp: i64, ext: &str) -> Option<String> {
    let mac = mac(&key.key, url, exp, ext)?;
    Some(URL_SAFE_NO_PAD.encode(format!("{}\\{exp}\\{mac}\\{ext}", key.id)))
}

/// `url` with its `bewit` query parameter appended.
pub fn sign_url(key: &BewitKey, mut url: Url, exp: i64, ext: &str) -> Option<Url> {
    let bewit = bewit(key, &url, exp, ext)?;
    url.query_pairs_mut().append_pair("bewit", &bewit);
    Some(url)
}

/// A verified bewit's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBewit {
    pub key_id: String,
    pub exp: i64,
    pub ext: String,
}

/// The key id a bewit names, to look the key up before verifying.
pub fn key_id(url: &Url) -> Result<String, BewitError> {
    Ok(parse(url)?.0)
}

fn parse(url: &Url) -> Result<(String, i64, String, String), BewitError> {
    let mut bewits = url.query_pairs().filter(|(k, _)| k == "bewit").map(|(_, v)| v.into_owned());
    let raw = bewits.next().ok_or(BewitError::Missing)?;
    // The MAC covers the URL without any `bewit`: a second one would ride along
    // unsigned (`<valid URL>&bewit=garbage` redeemed). Exactly one, or the URL was
    // changed after signing.
    if bewits.next().is_some() {
        return Err(BewitError::BadMac);
    }
    let decoded = URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')).map_err(|_| BewitError::Malformed)?;
    let decoded = String::from_utf8(decoded).map_err(|_| BewitError::Malformed)?;
    let parts: Vec<&str> = decoded.splitn(4, '\\').collect();
    let [id, exp, mac, ext] = parts.as_slice() else { return Err(BewitError::Malformed) };
    if id.is_empty() || mac.is_empty() {
        return Err(BewitError::Malformed);
    }
    let exp = exp.parse::<i64>().map_err(|_| BewitError::Malformed)?;
    Ok(((*id).to_owned(), exp, (*mac).to_owned(), (*ext).to_owned()))
}

/// The time window of a bewit at `now` (Unix seconds): not expired (`exp > now`), and
/// not expiring further ahead than `max_lifetime_secs` (the longest URL lifetime a
/// minting request may ask for) plus [`MAX_CLOCK_SKEW_SECS`] — a URL minted by a node
/// whose clock is ahead by at most the skew still passes.
pub fn check_window(exp: i64, now: i64, max_lifetime_secs: i64) -> Result<(), BewitError> {
    if exp <= now {
        return Err(BewitError::Expired);
    }
    if exp.saturating_sub(now) > max_lifetime_secs.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(BewitError::TooFarAhead);
    }
    Ok(())
}

/// Verify the bewit in `url` with `key` at `now` (Unix seconds): MAC first, then the
/// time window ([`check_window`]) for URLs that live at most `max_lifetime_secs`.
pub fn verify(url: &Url, key: &BewitKey, now: i64, max_lifetime_secs: i64) -> Result<VerifiedBewit, BewitError> {
    let (id, exp, presented, ext) = parse(url)?;
    if id != key.id {
        return Err(BewitError::UnknownKey);
    }
    let expected = mac(&key.key, url, exp, &ext).ok_or(BewitError::BadMac)?;
    if !bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
        return Err(BewitError::BadMac);
    }
    check_window(exp, now, max_lifetime_secs)?;
    Ok(VerifiedBewit { key_id: id, exp, ext })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hawk_key() -> BewitKey {
        BewitKey { id: "123456".into(), key: b"2983d45yun89q".to_vec() }
    }

    #[test]
    fn hawk_test_vector() {
        // From Hawk's own test suite (sha256, ext "xandyandz").
        let url = Url::parse("https://example.com/somewhere/over/the/rainbow").unwrap_or_else(|_| unreachable!());
        assert_eq!(
            bewit(&hawk_key(), &url, 1_356_420_707, "xandyandz").as_deref(),
            Some("MTIzNDU2XDEzNTY0MjA3MDdca3NjeHdOUjJ0SnBQMVQxekRMTlBiQjVVaUtJVTl0T1NKWFRVZEc3WDloOD1ceGFuZHlhbmR6")
        );
    }

    #[test]
    fn signed_urls_verify_and_any_change_is_a_bad_mac() {
        let key = hawk_key();
        let url = Url::parse("https://idp.example/impersonate/redeem?user_id=guise%7Cabc&client_id=c1")
            .unwrap_or_else(|_| unreachable!());
        let signed = sign_url(&key, url, 2_000, "").unwrap_or_else(|| unreachable!());
        assert_eq!(verify(&signed, &key, 1_000, 1_000).map(|v| v.exp), Ok(2_000));
        assert_eq!(verify(&signed, &key, 2_000, 1_000), Err(BewitError::Expired));

        let tampered =
            Url::parse(&signed.as_str().replace("client_id=c1", "client_id=c2")).unwrap_or_else(|_| unreachable!());
        assert_eq!(verify(&tampered, &key, 1_000, 1_000), Err(BewitError::BadMac));
        let other_host =
            Url::parse(&signed.as_str().replace("idp.example", "evil.example")).unwrap_or_else(|_| unreachable!());
        assert_eq!(verify(&other_host, &key, 1_000, 1_000), Err(BewitError::BadMac));

        let wrong_key = BewitKey { id: "other".into(), key: b"k".to_vec() };
        assert_eq!(verify(&signed, &wrong_key, 1_000, 1_000), Err(BewitError::UnknownKey));
        let no_bewit = Url::parse("https://idp.example/x").unwrap_or_else(|_| unreachable!());
        assert_eq!(verify(&no_bewit, &key, 0, 600), Err(BewitError::Missing));
        let garbage = Url::parse("https://idp.example/x?bewit=%%%").unwrap_or_else(|_| unreachable!());
        assert_eq!(verify(&garbage, &key, 0, 600), Err(BewitError::Malformed));

        // Exactly one bewit: a second, after or before the real one, is a change.
        for twice in [format!("{signed}&bewit=garbage"), signed.as_str().replacen('?', "?bewit=garbage&", 1)] {
            let twice = Url::parse(&twice).unwrap_or_else(|_| unreachable!());
            assert_eq!(verify(&twice, &key, 1_000, 1_000), Err(BewitError::BadMac), "{twice}");
        }
    }

    #[test]
    fn far_future_expiry_is_refused_beyond_the_lifetime_plus_skew() {
        let max = 600;
        assert_eq!(check_window(1_000 + max, 1_000, max), Ok(()));
        // A minting node ahead by up to the skew still passes…
        assert_eq!(check_window(1_000 + max + MAX_CLOCK_SKEW_SECS, 1_000, max), Ok(()));
        // …one second more does not.
        assert_eq!(check_window(1_000 + max + MAX_CLOCK_SKEW_SECS + 1, 1_000, max), Err(BewitError::TooFarAhead));
        assert_eq!(check_window(i64::MAX, 1_000, max), Err(BewitError::TooFarAhead));
        assert_eq!(check_window(1_000, 1_000, max), Err(BewitError::Expired));
        assert_eq!(check_window(i64::MIN, 1_000, max), Err(BewitError::Expired));

        let key = hawk_key();
        let url = Url::parse("https://idp.example/impersonate/redeem?jti=x").unwrap_or_else(|_| unreachable!());
        let far = sign_url(&key, url, 1_000_000, "").unwrap_or_else(|| unreachable!());
        assert_eq!(verify(&far, &key, 1_000, max), Err(BewitError::TooFarAhead));
        assert_eq!(verify(&far, &key, 1_000_000 - max, max).map(|v| v.exp), Ok(1_000_000));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn config() -> ProptestConfig {
            ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
        }

        proptest! {
            #![proptest_config(config())]

            /// Whatever follows `?` in a redemption URL, verification answers and never panics.
            #[test]
            fn any_query_is_answered(query in "[ -~]{0,200}", now in any::<i64>(), max in any::<i64>()) {
                if let Ok(url) = Url::parse(&format!("https://idp.example/users/u/impersonate?{query}")) {
                    let _ = key_id(&url);
                    let _ = verify(&url, &hawk_key(), now, max);
                }
            }

            /// Any bytes as the bewit value (base64url of anything, or not base64 at all).
            #[test]
            fn any_bewit_is_answered(raw in proptest::collection::vec(any::<u8>(), 0..120), encode in any::<bool>(), now in any::<i64>()) {
                let value = if encode { URL_SAFE_NO_PAD.encode(&raw) } else { String::from_utf8_lossy(&raw).into_owned() };
                let mut url = Url::parse("https://idp.example/users/u/impersonate?client_id=c").unwrap_or_else(|_| unreachable!());
                url.query_pairs_mut().append_pair("bewit", &value);
                let _ = verify(&url, &hawk_key(), now, 600);
            }

            /// Any bewit-shaped contents (`id\\exp\\mac\\ext` with arbitrary parts).
            #[test]
            fn any_bewit_fields_are_answered(id in ".{0,20}", exp in ".{0,25}", mac in ".{0,50}", ext in ".{0,20}") {
                let value = URL_SAFE_NO_PAD.encode(format!("{id}\\{exp}\\{mac}\\{ext}"));
                let mut url = Url::parse("https://idp.example/x").unwrap_or_else(|_| unreachable!());
                url.query_pairs_mut().append_pair("bewit", &value);
                prop_assert!(verify(&url, &hawk_key(), 0, 600).is_err());
            }

            /// What guise signs verifies, for any path and query values.
            #[test]
            fn signed_urls_round_trip(path in "[a-zA-Z0-9/._~-]{0,40}", pairs in proptest::collection::vec(("[a-z_]{1,10}", ".{0,20}"), 0..5), ext in "[ -~]{0,20}") {
                let mut url = Url::parse("https://idp.example/").unwrap_or_else(|_| unreachable!());
                url.set_path(&path);
                for (k, v) in &pairs {
                    if k != "bewit" {
                        url.query_pairs_mut().append_pair(k, v);
                    }
                }
                let key = hawk_key();
                let signed = sign_url(&key, url, 1_600, &ext);
                prop_assert!(signed.is_some());
                let verified = signed.map(|u| verify(&u, &key, 1_000, 600));
                prop_assert_eq!(verified.map(|v| v.map(|v| (v.exp, v.ext))), Some(Ok((1_600, ext))));
            }
        }
    }
}
