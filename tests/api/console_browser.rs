//! The support console in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`, installed by `scripts/ensure-test-tools`)
//! through the `fantoccini` crate. An agent signs in through guise's login page,
//! searches, opens a user, impersonates them with a reason into a tiny relying party
//! started here (it shows the claims it received), sees the session listed, ends it,
//! and sees the application's next check with guise fail. A reader sees no Impersonate
//! button. SQLite only: the HTTP-level tests in `console.rs` cover both backends, and
//! the browser adds nothing backend-specific.
//!
//! With `GUISE_CONSOLE_SCREENSHOTS=DIR` the test saves its screenshots there (the ones
//! in `docs/console/` come from this test).

use crate::browser::{USER_EMAIL, user};
use crate::console::{AGENT_PASSWORD, agent};
use crate::helpers::{Backend, TestApp, spawn_app};
use crate::impersonation::impersonation_client;
use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver must be installed: run scripts/ensure-test-tools (Debian: chromium, chromium-driver)");
    // Owned by `Driver` at once, so that it is killed even if it never answers.
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

async fn chromium(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=en-US"] }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

async fn screenshot(browser: &Client, name: &str) {
    let Ok(dir) = std::env::var("GUISE_CONSOLE_SCREENSHOTS") else { return };
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).expect("write screenshot");
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// The relying party: `/callback` redeems the code (client_secret_basic) and shows the
/// ID token's claims; `/check` asks guise's `/userinfo` with its access token again.
struct RelyingParty {
    base: String,
}

#[derive(Clone)]
struct RpConfig {
    guise: String,
    client_id: Arc<Mutex<(String, String)>>,
    redirect_uri: Arc<Mutex<String>>,
    access_token: Arc<Mutex<Option<String>>>,
}

fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap_or_default();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap_or_default())
        .unwrap_or(Value::Null)
}

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><html><head><title>Billing</title></head><body style=\"font-family:sans-serif;margin:2rem\">\
         <h1>Billing (test application)</h1>{body}</body></html>"
    ))
}

async fn rp_callback(
    config: web::Data<RpConfig>,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> HttpResponse {
    let (client_id, secret) = config.client_id.lock().unwrap().clone();
    let redirect_uri = config.redirect_uri.lock().unwrap().clone();
    let code = query.get("code").cloned().unwrap_or_default();
    let response = reqwest::Client::new()
        .post(format!("{}/oauth/token", config.guise))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &redirect_uri)])
        .send()
        .await
        .unwrap();
    let tokens: Value = response.json().await.unwrap();
    let Some(id_token) = tokens["id_token"].as_str() else {
        return html(format!("<p id=\"who\">Sign-in failed: {tokens}</p>"));
    };
    *config.access_token.lock().unwrap() = tokens["access_token"].as_str().map(str::to_owned);
    let claims = payload(id_token);
    let impersonation = match claims["impersonator"]["email"].as_str() {
        Some(by) => {
            format!("<p id=\"impersonation\" style=\"background:#fff3d6;padding:.5rem\">impersonated by {by}</p>")
        }
        None => "<p id=\"impersonation\">not impersonated</p>".to_owned(),
    };
    html(format!(
        "<p id=\"who\">Signed in as {}</p>{impersonation}<p><a id=\"check\" href=\"/check\">Check with guise again</a></p>\
         <h2>Claims received</h2><pre id=\"claims\">{}</pre>",
        claims["email"].as_str().or(claims["sub"].as_str()).unwrap_or_default(),
        serde_json::to_string_pretty(&claims).unwrap().replace('<', "&lt;")
    ))
}

async fn rp_check(config: web::Data<RpConfig>) -> HttpResponse {
    let token = config.access_token.lock().unwrap().clone().unwrap_or_default();
    let response =
        reqwest::Client::new().get(format!("{}/userinfo", config.guise)).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    html(if status == 200 {
        "<p id=\"status\">Still signed in</p>".to_owned()
    } else {
        format!("<p id=\"status\">Refresh failed: guise answered {status}</p>")
    })
}

async fn relying_party(app: &TestApp) -> (RelyingParty, RpConfig) {
    let config = RpConfig {
        guise: app.base.clone(),
        client_id: Arc::new(Mutex::new(Default::default())),
        redirect_uri: Arc::new(Mutex::new(String::new())),
        access_token: Arc::new(Mutex::new(None)),
    };
    let data = web::Data::new(config.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/callback", web::get().to(rp_callback))
            .route("/check", web::get().to(rp_check))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    let base = format!("http://127.0.0.1:{port}");
    *config.redirect_uri.lock().unwrap() = format!("{base}/callback");
    (RelyingParty { base }, config)
}

/// Sign in at the console through guise's login page.
async fn sign_in(browser: &Client, app: &TestApp, email: &str, password: &str) {
    browser.goto(&app.url("/console")).await.unwrap();
    let field = browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("input#email")).await.unwrap();
    field.send_keys(email).await.unwrap();
    browser.find(Locator::Css("input#password")).await.unwrap().send_keys(password).await.unwrap();
    browser.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let who = text_of(browser, "form.who strong").await;
    assert_eq!(who, email);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_impersonates_from_the_console_in_a_real_browser() {
    let app = spawn_app(Backend::Sqlite).await;
    let (rp, rp_config) = relying_party(&app).await;
    agent(&app, "helpdesk@example.com", &["read:users", "read:clients", "read:logs", "impersonate:users"]).await;
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap().to_owned();
    let (client_id, secret) =
        impersonation_client(&app, json!({ "name": "Billing", "callbacks": [format!("{}/callback", rp.base)] })).await;
    *rp_config.client_id.lock().unwrap() = (client_id, secret);

    let driver = driver().await;
    let browser = chromium(&driver).await;
    sign_in(&browser, &app, "helpdesk@example.com", AGENT_PASSWORD).await;

    // Find the user.
    let search = browser.find(Locator::Css("input#q")).await.unwrap();
    search.send_keys("grace").await.unwrap();
    browser.find(Locator::Css("form.search button")).await.unwrap().click().await.unwrap();
    let link = browser.wait().for_element(Locator::LinkText(USER_EMAIL)).await.unwrap();
    screenshot(&browser, "search").await;
    link.click().await.unwrap();
    assert_eq!(text_of(&browser, "h1").await, "Grace Hopper");

    // Impersonate with a reason; the application opens in a new window.
    browser.find(Locator::Css("input#reason")).await.unwrap().send_keys("T-1234: invoices missing").await.unwrap();
    screenshot(&browser, "user").await;
    browser.find(Locator::Css("#impersonate-button")).await.unwrap().click().await.unwrap();
    let open = browser.wait().for_element(Locator::Css("#open-app")).await.unwrap();
    screenshot(&browser, "impersonation-ready").await;
    let console_window = browser.window().await.unwrap();
    open.click().await.unwrap();
    let mut windows = Vec::new();
    for _ in 0..50 {
        windows = browser.windows().await.unwrap();
        if windows.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let app_window =
        windows.into_iter().find(|w| *w != console_window).expect("the application opened in a new window");
    browser.switch_to_window(app_window.clone()).await.unwrap();
    assert_eq!(text_of(&browser, "#who").await, format!("Signed in as {target_id}"));
    assert_eq!(text_of(&browser, "#impersonation").await, "impersonated by helpdesk@example.com");
    assert!(text_of(&browser, "#claims").await.contains(&target_id));
    screenshot(&browser, "application").await;

    // guise's own pages show the banner with End impersonation.
    browser.goto(&app.url("/")).await.unwrap();
    let banner = text_of(&browser, ".banner").await;
    assert!(
        banner.contains("helpdesk@example.com is acting as grace@example.com") && banner.contains("T-1234"),
        "{banner}"
    );
    assert!(browser.find(Locator::Css(".banner button")).await.is_ok(), "End impersonation is offered");
    screenshot(&browser, "banner").await;

    // The console lists the session; End now ends it.
    browser.switch_to_window(console_window.clone()).await.unwrap();
    browser.goto(&app.url("/console/impersonations")).await.unwrap();
    let table = text_of(&browser, "table.list").await;
    assert!(table.contains("T-1234: invoices missing") && table.contains(&target_id), "{table}");
    screenshot(&browser, "impersonations").await;
    browser.find(Locator::Css("table.list button.danger")).await.unwrap().click().await.unwrap();
    assert!(text_of(&browser, "p.notice").await.contains("was ended"));
    assert!(browser.find(Locator::Css("table.list")).await.is_err(), "no impersonation is left");

    // The application's next check with guise fails: the session's tokens are revoked.
    browser.switch_to_window(app_window).await.unwrap();
    browser.goto(&format!("{}/check", rp.base)).await.unwrap();
    let status = text_of(&browser, "#status").await;
    assert!(status.starts_with("Refresh failed: guise answered 401"), "{status}");

    // The audit log, with the hash chain checked.
    browser.switch_to_window(console_window).await.unwrap();
    browser.goto(&app.url("/console/logs")).await.unwrap();
    browser.find(Locator::LinkText("Check the chain now")).await.unwrap().click().await.unwrap();
    assert!(text_of(&browser, "#chain-status").await.starts_with("Intact: all"));
    let logs = text_of(&browser, "table.logs").await;
    assert!(logs.contains("guise_impersonation_ended") && logs.contains("guise_impersonation_minted"), "{logs}");
    screenshot(&browser, "audit-log").await;
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_sees_no_impersonate_button_in_a_real_browser() {
    let app = spawn_app(Backend::Sqlite).await;
    agent(&app, "reader@example.com", &["read:users"]).await;
    let target = user(&app).await;
    let driver = driver().await;
    let browser = chromium(&driver).await;
    sign_in(&browser, &app, "reader@example.com", AGENT_PASSWORD).await;
    let path = format!("/console/users/{}", crate::users::urlencode(target["user_id"].as_str().unwrap()));
    browser.goto(&app.url(&path)).await.unwrap();
    assert_eq!(text_of(&browser, "h1").await, "Grace Hopper");
    assert!(browser.find(Locator::Css("#impersonate-button")).await.is_err(), "no Impersonate button");
    assert!(text_of(&browser, "section[aria-labelledby=impersonate]").await.contains("lacks impersonate:users"));
    browser.close().await.unwrap();
}
