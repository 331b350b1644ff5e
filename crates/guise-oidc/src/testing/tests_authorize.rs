//! `/authorize`: request validation and the choice of the next step, as tables of cases.

use super::*;
use crate::authorize::{AuthorizeError, AuthorizeParams, NextStep, next_step, validate};
use guise_core::authorization::{PendingAuthorization, PendingProtocol};

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

/// A good request from `WEB_APP`: code flow, PKCE S256, state and nonce.
fn params() -> AuthorizeParams {
    AuthorizeParams {
        response_type: some("code"),
        client_id: some(WEB_APP),
        redirect_uri: some(CALLBACK),
        scope: some("openid profile"),
        state: some("af0ifjsldkj"),
        nonce: some(NONCE),
        code_challenge: some(CHALLENGE),
        code_challenge_method: some("S256"),
        ..AuthorizeParams::default()
    }
}

#[derive(Debug)]
enum Expect {
    Valid,
    /// Shown on an error page; never sent to the redirect URI.
    Page(&'static str),
    /// Sent back to the (registered) redirect URI, with the request's state.
    Redirect(&'static str, &'static str),
}

#[test]
fn validate_decides_between_an_error_page_a_redirected_error_and_a_valid_request() {
    let web = client(WEB_APP, AppType::RegularWeb, Some(WEB_SECRET));
    let spa = client(SPA, AppType::Spa, None);
    let machine = client(M2M, AppType::NonInteractive, Some(M2M_SECRET));
    let mut native = client("nativeclient00000000000000000000", AppType::Native, None);
    native.callbacks = vec!["http://127.0.0.1:8400/cb".into()];
    let too_long = "x".repeat(2049);

    let cases: Vec<(&str, AuthorizeParams, Option<&Client>, Expect)> = vec![
        ("a good request", params(), Some(&web), Expect::Valid),
        (
            "unregistered redirect_uri",
            AuthorizeParams { redirect_uri: some("https://evil.example.com/callback"), ..params() },
            Some(&web),
            Expect::Page("The redirect_uri is not registered for this client (it must match a callback URL exactly)"),
        ),
        (
            "redirect_uri differing by a trailing slash",
            AuthorizeParams { redirect_uri: some("https://app.example.com/callback/"), ..params() },
            Some(&web),
            Expect::Page("The redirect_uri is not registered for this client (it must match a callback URL exactly)"),
        ),
        (
            "missing redirect_uri",
            AuthorizeParams { redirect_uri: None, ..params() },
            Some(&web),
            Expect::Page("Missing required parameter: redirect_uri"),
        ),
        ("unknown client", params(), None, Expect::Page("Unknown client")),
        (
            "missing client_id",
            AuthorizeParams { client_id: None, ..params() },
            Some(&web),
            Expect::Page("Missing required parameter: client_id"),
        ),
        (
            "a parameter too long",
            AuthorizeParams { state: Some(too_long), ..params() },
            Some(&web),
            Expect::Page("A request parameter is too long"),
        ),
        (
            "unknown response_mode",
            AuthorizeParams { response_mode: some("fragment"), ..params() },
            Some(&web),
            Expect::Page("response_mode must be query or form_post"),
        ),
        (
            "plain PKCE",
            AuthorizeParams { code_challenge: some(VERIFIER), code_challenge_method: some("plain"), ..params() },
            Some(&web),
            Expect::Redirect("invalid_request", "code_challenge_method must be S256 (plain is not allowed)"),
        ),
        (
            "a challenge without a method (plain by default)",
            AuthorizeParams { code_challenge_method: None, ..params() },
            Some(&web),
            Expect::Redirect("invalid_request", "code_challenge_method must be S256 (plain is not allowed)"),
        ),
        (
            "an unknown challenge method",
            AuthorizeParams { code_challenge_method: some("S512"), ..params() },
            Some(&web),
            Expect::Redirect("invalid_request", "Unsupported code_challenge_method"),
        ),
        (
            "a malformed challenge",
            AuthorizeParams { code_challenge: some("too-short"), ..params() },
            Some(&web),
            Expect::Redirect("invalid_request", "code_challenge is malformed"),
        ),
        (
            "a public client without PKCE",
            AuthorizeParams { client_id: some(SPA), code_challenge: None, code_challenge_method: None, ..params() },
            Some(&spa),
            Expect::Redirect("invalid_request", "PKCE (code_challenge with S256) is required for public clients"),
        ),
        (
            "a confidential client without PKCE",
            AuthorizeParams { code_challenge: None, code_challenge_method: None, ..params() },
            Some(&web),
            Expect::Valid,
        ),
        (
            "response_type=token",
            AuthorizeParams { response_type: some("token"), ..params() },
            Some(&web),
            Expect::Redirect("unsupported_response_type", "Only response_type=code is supported"),
        ),
        (
            "missing response_type",
            AuthorizeParams { response_type: None, ..params() },
            Some(&web),
            Expect::Redirect("invalid_request", "Missing required parameter: response_type"),
        ),
        (
            "a client without the code grant",
            AuthorizeParams { client_id: some(M2M), ..params() },
            Some(&machine),
            Expect::Redirect("unauthorized_client", "The client may not use the authorization code grant"),
        ),
        (
            "an invalid scope token",
            AuthorizeParams { scope: some("openid bad\"scope"), ..params() },
            Some(&web),
            Expect::Redirect("invalid_scope", "Invalid scope 'bad\"scope'"),
        ),
        (
            "prompt=none with another value",
            AuthorizeParams { prompt: some("none login"), ..params() },
            Some(&web),
            Expect::Redirect("invalid_request", "prompt=none cannot be combined with other values"),
        ),
        (
            "an unknown prompt",
            AuthorizeParams { prompt: some("create"), ..params() },
            Some(&web),
            Expect::Redirect("invalid_request", "Unsupported prompt value 'create'"),
        ),
        (
            "a negative max_age",
            AuthorizeParams { max_age: some("-1"), ..params() },
            Some(&web),
            Expect::Redirect("invalid_request", "max_age must be a non-negative integer"),
        ),
        (
            "an audience that is no identifier",
            AuthorizeParams { audience: some("not an api"), ..params() },
            Some(&web),
            Expect::Redirect("invalid_request", "audience must be an API identifier"),
        ),
        (
            "a request object",
            AuthorizeParams { request: some("eyJhbGciOiJub25lIn0.e30."), ..params() },
            Some(&web),
            Expect::Redirect("request_not_supported", "Request objects are not supported"),
        ),
        (
            "a native app on another loopback port",
            AuthorizeParams {
                client_id: some("nativeclient00000000000000000000"),
                redirect_uri: some("http://127.0.0.1:51234/cb"),
                ..params()
            },
            Some(&native),
            Expect::Valid,
        ),
        (
            "a native app on localhost (a name, not a loopback IP)",
            AuthorizeParams {
                client_id: some("nativeclient00000000000000000000"),
                redirect_uri: some("http://localhost:8400/cb"),
                ..params()
            },
            Some(&native),
            Expect::Page("The redirect_uri is not registered for this client (it must match a callback URL exactly)"),
        ),
    ];

    for (name, params, client, expect) in cases {
        let outcome = validate(&params, client);
        match (&expect, outcome) {
            (Expect::Valid, Ok(PendingAuthorization { protocol: PendingProtocol::Oidc(pending), .. })) => {
                assert_eq!(pending.redirect_uri, params.redirect_uri.unwrap_or_default(), "{name}");
                assert_eq!(pending.state, params.state, "{name}");
            }
            (Expect::Page(description), Err(AuthorizeError::Page { error, description: got })) => {
                assert_eq!((error.as_str(), got.as_str()), ("invalid_request", *description), "{name}");
            }
            (
                Expect::Redirect(error, description),
                Err(AuthorizeError::Redirect { redirect_uri, response_mode, state, error: got, description: got_d }),
            ) => {
                assert_eq!((got, got_d.as_str()), (*error, *description), "{name}");
                assert_eq!(Some(redirect_uri), params.redirect_uri, "{name}: back to the registered URI");
                assert_eq!(response_mode, "query", "{name}");
                assert_eq!(state, params.state, "{name}: the state goes back with the error");
            }
            (expect, outcome) => panic!("{name}: expected {expect:?}, got {outcome:?}"),
        }
    }
}

#[test]
fn a_valid_request_keeps_everything_the_next_steps_need() {
    let web = client(WEB_APP, AppType::RegularWeb, Some(WEB_SECRET));
    let request = AuthorizeParams {
        scope: some("openid openid profile read:things"),
        prompt: some("login consent"),
        max_age: some("300"),
        login_hint: some(ALICE_EMAIL),
        audience: some(API),
        response_mode: some("form_post"),
        ..params()
    };
    let pending: PendingAuthorization = validate(&request, Some(&web)).expect("a valid request");
    assert_eq!(pending.client_id, WEB_APP);
    assert_eq!(pending.prompt, ["login", "consent"]);
    assert_eq!(pending.max_age, Some(300));
    let PendingProtocol::Oidc(oidc) = pending.protocol else { panic!("an OIDC request") };
    assert_eq!(oidc.redirect_uri, CALLBACK);
    assert_eq!(oidc.scope, ["openid", "profile", "read:things"], "deduplicated, in order");
    assert_eq!(oidc.state, some("af0ifjsldkj"));
    assert_eq!(oidc.nonce, some(NONCE));
    assert_eq!(oidc.code_challenge, some(CHALLENGE));
    assert_eq!(oidc.audience, some(API));
    assert_eq!(oidc.login_hint, some(ALICE_EMAIL));
    assert_eq!(oidc.response_mode, "form_post");
    // Errors after the redirect URI is trusted go back in the mode asked for.
    let plain = AuthorizeParams { code_challenge_method: some("plain"), ..request };
    match validate(&plain, Some(&web)) {
        Err(AuthorizeError::Redirect { response_mode, .. }) => assert_eq!(response_mode, "form_post"),
        other => panic!("expected a redirected error, got {other:?}"),
    }
}

#[test]
fn next_step_asks_for_login_or_consent_only_when_needed() {
    let requested_at = t0();
    let now = t0() + Duration::seconds(10);
    let live = session(SID, ALICE); // authenticated five minutes before the request
    let fresh = Session { auth_time: t0() + Duration::seconds(5), ..live.clone() };
    let ended = Session { ended_at: Some(t0()), ..live.clone() };
    let idle = Session { idle_expires_at: t0() + Duration::seconds(1), ..live.clone() };
    let everything: Vec<String> = vec!["openid".into(), "profile".into()];
    let only_openid: Vec<String> = vec!["openid".into()];
    let login_required = NextStep::Fail { error: "login_required", description: "The user must log in" };
    let consent_required = NextStep::Fail { error: "consent_required", description: "The user must consent" };

    struct Case<'a> {
        name: &'a str,
        prompt: &'a str,
        max_age: Option<i64>,
        session: Option<&'a Session>,
        first_party: bool,
        consented: Option<&'a [String]>,
        consent_given_now: bool,
        expect: NextStep,
    }
    let base = Case {
        name: "",
        prompt: "",
        max_age: None,
        session: Some(&live),
        first_party: true,
        consented: None,
        consent_given_now: false,
        expect: NextStep::IssueCode,
    };
    let cases = [
        Case { name: "a live session, first-party client", expect: NextStep::IssueCode, ..base },
        Case { name: "no session", session: None, expect: NextStep::Login, ..base },
        Case {
            name: "prompt=none without a session",
            prompt: "none",
            session: None,
            expect: login_required.clone(),
            ..base
        },
        Case { name: "an ended session", session: Some(&ended), expect: NextStep::Login, ..base },
        Case { name: "an idle-expired session", session: Some(&idle), expect: NextStep::Login, ..base },
        Case { name: "max_age exceeded", max_age: Some(60), expect: NextStep::Login, ..base },
        Case { name: "max_age=0", max_age: Some(0), expect: NextStep::Login, ..base },
        Case {
            name: "max_age exceeded with prompt=none",
            prompt: "none",
            max_age: Some(60),
            expect: login_required.clone(),
            ..base
        },
        Case { name: "max_age not reached", max_age: Some(600), expect: NextStep::IssueCode, ..base },
        // Beyond what a chrono Duration holds: not a panic, just never too old.
        Case { name: "max_age = i64::MAX", max_age: Some(i64::MAX), expect: NextStep::IssueCode, ..base },
        Case { name: "prompt=login, logged in before the request", prompt: "login", expect: NextStep::Login, ..base },
        Case {
            name: "prompt=login, logged in since the request",
            prompt: "login",
            session: Some(&fresh),
            expect: NextStep::IssueCode,
            ..base
        },
        Case { name: "third party without consent", first_party: false, expect: NextStep::Consent, ..base },
        Case {
            name: "third party without consent, prompt=none",
            prompt: "none",
            first_party: false,
            expect: consent_required.clone(),
            ..base
        },
        Case {
            name: "third party, consent covers the scope",
            first_party: false,
            consented: Some(&everything),
            expect: NextStep::IssueCode,
            ..base
        },
        Case {
            name: "third party, consent covers part of the scope",
            first_party: false,
            consented: Some(&only_openid),
            expect: NextStep::Consent,
            ..base
        },
        Case { name: "prompt=consent, first party", prompt: "consent", expect: NextStep::Consent, ..base },
        Case {
            name: "prompt=consent, consent just given",
            prompt: "consent",
            consent_given_now: true,
            expect: NextStep::IssueCode,
            ..base
        },
    ];

    let web = client(WEB_APP, AppType::RegularWeb, Some(WEB_SECRET));
    for case in cases {
        let mut request = validate(&params(), Some(&web)).expect("a valid request");
        request.prompt = case.prompt.split_whitespace().map(str::to_owned).collect();
        request.max_age = case.max_age;
        let client = Client { is_first_party: case.first_party, ..web.clone() };
        let step =
            next_step(&request, requested_at, case.session, &client, case.consented, case.consent_given_now, now);
        assert_eq!(step, case.expect, "{}", case.name);
    }
}
