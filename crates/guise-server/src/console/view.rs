//! The console's HTML: `templates/console/` rendered by minijinja with auto-escaping
//! (the engine of the login pages), served with a strict Content-Security-Policy (no
//! script at all, styles only from guise's own stylesheet), `X-Frame-Options: DENY` and
//! `Cache-Control: no-store`.

use actix_web::HttpResponse;
use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, X_FRAME_OPTIONS};
use minijinja::Environment;
use std::sync::OnceLock;

const TEMPLATES: &[(&str, &str)] = &[
    ("console/layout.html", include_str!("../../../../templates/console/layout.html")),
    ("console/search.html", include_str!("../../../../templates/console/search.html")),
    ("console/user.html", include_str!("../../../../templates/console/user.html")),
    ("console/impersonation_ready.html", include_str!("../../../../templates/console/impersonation_ready.html")),
    ("console/impersonations.html", include_str!("../../../../templates/console/impersonations.html")),
    ("console/logs.html", include_str!("../../../../templates/console/logs.html")),
    ("console/message.html", include_str!("../../../../templates/console/message.html")),
];

const STYLESHEET: &str = include_str!("../../../../templates/console/console.css");

/// No script, no inline style, nothing from elsewhere; forms post only to guise.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| crate::web::pages::compile(TEMPLATES))
}

fn secured(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    builder
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((X_FRAME_OPTIONS, "DENY"))
        .insert_header((CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    builder
}

/// Serializable data (JSON from the API) as a template value.
pub fn data<T: serde::Serialize>(value: &T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(value))
}

/// Render a console page.
pub fn page(status: StatusCode, template: &str, context: minijinja::Value) -> HttpResponse {
    page_with_cookies(status, template, context, Vec::new())
}

pub fn page_with_cookies(
    status: StatusCode,
    template: &str,
    context: minijinja::Value,
    cookies: Vec<Cookie<'static>>,
) -> HttpResponse {
    match environment().get_template(template).and_then(|t| t.render(context)) {
        Ok(html) => {
            let mut builder = secured(status);
            for cookie in cookies {
                builder.cookie(cookie);
            }
            builder.content_type("text/html; charset=utf-8").body(html)
        }
        Err(e) => {
            tracing::error!(template, error = %e, "console template rendering failed");
            secured(StatusCode::INTERNAL_SERVER_ERROR)
                .content_type("text/plain; charset=utf-8")
                .body("Internal server error")
        }
    }
}

/// A page that only says something (an error, a refusal, "no access", "signed out").
pub fn message(status: StatusCode, title: &str, text: &str, agent: Option<minijinja::Value>) -> HttpResponse {
    page(status, "console/message.html", minijinja::context! { title => title, text => text, agent => agent })
}

/// A redirect (303: a POST's answer is fetched with GET).
pub fn redirect(location: &str, cookies: Vec<Cookie<'static>>) -> HttpResponse {
    let mut builder = secured(StatusCode::SEE_OTHER);
    for cookie in cookies {
        builder.cookie(cookie);
    }
    builder.insert_header((LOCATION, location.to_owned())).finish()
}

/// `GET /console/console.css`: the one stylesheet (the CSP allows no other).
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((CACHE_CONTROL, "public, max-age=300"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(STYLESHEET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_console_template_compiles() {
        for (name, _) in TEMPLATES {
            assert!(environment().get_template(name).is_ok(), "{name} does not compile");
        }
    }
}
