//! The stored shape of pending requests, read and written across versions.

use super::*;
use serde_json::{Value, json};

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Rows as the version before `PendingOidc` wrote them, and what they read as.
fn old_rows() -> Vec<(Value, PendingAuthorization)> {
    let oidc = json!({"client_id":"c","redirect_uri":"https://a/cb","scope":["openid","read"],"state":"st",
        "nonce":"n","code_challenge":"cc","audience":"https://api","prompt":["consent"],"max_age":300,
        "login_hint":"a@x","response_mode":"query","saml":null,"wsfed":null});
    let saml = json!({"client_id":"s","redirect_uri":"https://sp/acs","scope":["openid","profile","email"],
        "state":null,"nonce":null,"code_challenge":null,"audience":null,"prompt":["none"],"max_age":null,
        "login_hint":null,"response_mode":"form_post","saml":{"request_id":"id1","acs_url":"https://sp/acs",
        "audience":"urn:sp","relay_state":"rs","name_id_format":"urn:f"},"wsfed":null});
    let wsfed = json!({"client_id":"w","redirect_uri":"https://rp/reply","scope":["openid","profile","email"],
        "state":null,"nonce":null,"code_challenge":null,"audience":null,"prompt":[],"max_age":600,
        "login_hint":null,"response_mode":"form_post","saml":null,"wsfed":{"realm":"urn:r",
        "reply":"https://rp/reply","wctx":"ctx","rms":true}});
    let oidc_request = PendingAuthorization {
        client_id: "c".into(),
        prompt: strings(&["consent"]),
        max_age: Some(300),
        protocol: PendingProtocol::Oidc(PendingOidc {
            redirect_uri: "https://a/cb".into(),
            scope: strings(&["openid", "read"]),
            state: Some("st".into()),
            nonce: Some("n".into()),
            code_challenge: Some("cc".into()),
            audience: Some("https://api".into()),
            login_hint: Some("a@x".into()),
            response_mode: "query".into(),
        }),
    };
    let saml_request = PendingAuthorization {
        client_id: "s".into(),
        prompt: strings(&["none"]),
        max_age: None,
        protocol: PendingProtocol::Saml(PendingSaml {
            request_id: Some("id1".into()),
            acs_url: "https://sp/acs".into(),
            audience: "urn:sp".into(),
            relay_state: Some("rs".into()),
            name_id_format: "urn:f".into(),
        }),
    };
    let wsfed_request = PendingAuthorization {
        client_id: "w".into(),
        prompt: vec![],
        max_age: Some(600),
        protocol: PendingProtocol::Wsfed(PendingWsfed {
            realm: "urn:r".into(),
            reply: "https://rp/reply".into(),
            wctx: Some("ctx".into()),
            rms: true,
        }),
    };
    vec![(oidc, oidc_request), (saml, saml_request), (wsfed, wsfed_request)]
}

#[test]
fn rows_of_the_old_shape_read_and_new_rows_are_written_in_it() {
    for (row, request) in old_rows() {
        let read: PendingAuthorization = serde_json::from_value(row.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, request);
        // Written exactly as the old version wrote it, so it reads the row back.
        assert_eq!(serde_json::to_value(&request).unwrap_or_default(), row);
    }
}

#[test]
fn oidc_rows_without_the_protocol_members_read_and_both_protocols_are_refused() {
    let (mut oidc, request) = old_rows().swap_remove(0);
    if let Some(row) = oidc.as_object_mut() {
        row.remove("saml");
        row.remove("wsfed");
    }
    assert_eq!(serde_json::from_value::<PendingAuthorization>(oidc).ok(), Some(request));
    let (mut saml, _) = old_rows().swap_remove(1);
    saml["wsfed"] = json!({"realm":"urn:r","reply":"https://rp/reply","wctx":null,"rms":false});
    assert!(serde_json::from_value::<PendingAuthorization>(saml).is_err());
}
