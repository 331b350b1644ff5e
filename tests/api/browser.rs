//! A scripted browser for the login flow: keeps cookies, never follows redirects on its
//! own, fills in the login and consent forms like a person would.

use crate::helpers::TestApp;
use serde_json::{Value, json};

pub const CALLBACK: &str = "http://127.0.0.1:9/callback";
pub const LOGOUT_URL: &str = "http://127.0.0.1:9/logged-out";
pub const USER_EMAIL: &str = "grace@example.com";
pub const USER_PASSWORD: &str = "cobol is forever";

pub struct Browser {
    pub http: reqwest::Client,
}

#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Browser {
    pub fn new() -> Self {
        let http =
            reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { http }
    }

    /// A browser behind a proxy that says it is at `address` (`X-Forwarded-For` on every
    /// request; believed only with `trust_forwarded_for`).
    pub fn at(address: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", address.parse().unwrap());
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap();
        Browser { http }
    }

    async fn page(response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        Page { status, location, body: response.text().await.unwrap() }
    }

    pub async fn get(&self, url: &str) -> Page {
        Self::page(self.http.get(url).send().await.unwrap()).await
    }

    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> Page {
        Self::page(self.http.post(url).form(form).send().await.unwrap()).await
    }

    /// Start at `authorize_url`; expect the login page; submit `email`/`password`.
    /// Returns the response to the login POST.
    pub async fn login_via(&self, app: &TestApp, authorize_url: &str, email: &str, password: &str) -> Page {
        let start = self.get(authorize_url).await;
        assert_eq!(start.status, 302, "authorize should redirect to login: {}", start.body);
        let login_path = start.location.expect("location");
        assert!(login_path.starts_with("/login?tx="), "{login_path}");
        self.submit_login(app, &login_path, email, password).await
    }

    /// Load a login page and submit credentials.
    pub async fn submit_login(&self, app: &TestApp, login_path: &str, email: &str, password: &str) -> Page {
        let login = self.get(&app.url(login_path)).await;
        assert_eq!(login.status, 200, "{}", login.body);
        let tx = hidden(&login.body, "tx");
        let csrf = hidden(&login.body, "csrf");
        self.post(&app.url("/login"), &[("tx", &tx), ("csrf", &csrf), ("email", email), ("password", password)]).await
    }

    /// Follow a redirect chain inside guise (relative locations) until it leaves guise.
    pub async fn follow(&self, app: &TestApp, mut page: Page) -> Page {
        while page.status == 302 {
            match &page.location {
                Some(location) if location.starts_with('/') => page = self.get(&app.url(location)).await,
                _ => break,
            }
        }
        page
    }
}

/// The value of a hidden form field.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no hidden field {name} in {html}")) + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// Query parameters of a callback URL.
pub fn callback_params(location: &str) -> std::collections::HashMap<String, String> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// A confidential regular web app (first-party unless `extra` says otherwise).
pub async fn web_client(app: &TestApp, extra: Value) -> (String, String) {
    let mut body = json!({
        "name": "Web app",
        "app_type": "regular_web",
        "callbacks": [CALLBACK],
        "allowed_logout_urls": [LOGOUT_URL],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, client) = app.post("/api/v2/clients", &body).await;
    assert_eq!(status, 201, "{client}");
    let secret = client["client_secret"].as_str().unwrap_or_default().to_owned();
    (client["client_id"].as_str().unwrap().to_owned(), secret)
}

/// A user who can log in.
pub async fn user(app: &TestApp) -> Value {
    let (status, user) = app
        .post(
            "/api/v2/users",
            &json!({ "email": USER_EMAIL, "password": USER_PASSWORD, "name": "Grace Hopper", "email_verified": true }),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    user
}

/// An authorize URL with the given parameters.
pub fn authorize_url(app: &TestApp, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

/// The `href` of the first link whose text starts with `text`.
pub fn hidden_href(html: &str, text: &str) -> String {
    let end = html.find(&format!(">{text}")).unwrap_or_else(|| panic!("no link {text} in {html}"));
    let start = html[..end].rfind("href=\"").unwrap() + 6;
    let stop = html[start..].find('"').unwrap() + start;
    html[start..stop].replace("&#x2f;", "/").replace("&amp;", "&")
}
