//! Server-rendered pages from `templates/` (embedded in the binary) through an
//! auto-escaping template engine, with headers that keep them out of frames and caches.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, X_FRAME_OPTIONS};
use actix_web::{HttpRequest, HttpResponse, Responder};
use minijinja::Environment;
use std::sync::OnceLock;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../../../../templates/layout.html")),
    ("login.html", include_str!("../../../../templates/login.html")),
    ("consent.html", include_str!("../../../../templates/consent.html")),
    ("error.html", include_str!("../../../../templates/error.html")),
    ("form_post.html", include_str!("../../../../templates/form_post.html")),
    ("logged_out.html", include_str!("../../../../templates/logged_out.html")),
    ("logout_confirm.html", include_str!("../../../../templates/logout_confirm.html")),
    ("home.html", include_str!("../../../../templates/home.html")),
];

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| compile(TEMPLATES))
}

/// An auto-escaping environment holding `templates` (name, source), compiled into the
/// binary; a syntax error is logged here and caught by the tests.
pub fn compile(templates: &'static [(&'static str, &'static str)]) -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in templates {
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "template does not compile");
        }
    }
    env
}

/// A browser reply built off the async workers (it is `Send`, unlike `HttpResponse`).
#[derive(Debug)]
pub struct Reply {
    status: StatusCode,
    body: ReplyBody,
    cookies: Vec<Cookie<'static>>,
}

#[derive(Debug)]
enum ReplyBody {
    Html(String),
    Redirect(String),
}

impl Reply {
    pub fn redirect(location: String) -> Self {
        Self { status: StatusCode::FOUND, body: ReplyBody::Redirect(location), cookies: Vec::new() }
    }

    pub fn with_cookie(mut self, cookie: Cookie<'static>) -> Self {
        self.cookies.push(cookie);
        self
    }

    pub fn into_response(self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        for cookie in self.cookies {
            builder.cookie(cookie);
        }
        builder.insert_header((CACHE_CONTROL, "no-store"));
        match self.body {
            ReplyBody::Redirect(location) => builder.insert_header((LOCATION, location)).finish(),
            ReplyBody::Html(html) => builder
                .content_type("text/html; charset=utf-8")
                .insert_header((X_FRAME_OPTIONS, "DENY"))
                .insert_header((
                    CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; form-action *; frame-ancestors 'none'",
                ))
                .body(html),
        }
    }
}

impl Responder for Reply {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        self.into_response()
    }
}

/// Render `template` with `context`; a rendering failure becomes a plain 500 page.
pub fn render(status: StatusCode, template: &str, context: minijinja::Value) -> Reply {
    match environment().get_template(template).and_then(|t| t.render(context)) {
        Ok(html) => Reply { status, body: ReplyBody::Html(html), cookies: Vec::new() },
        Err(e) => {
            tracing::error!(template, error = %e, "template rendering failed");
            Reply {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                body: ReplyBody::Html("Internal server error".into()),
                cookies: Vec::new(),
            }
        }
    }
}

/// The error page: shown instead of redirecting when the client cannot be trusted.
pub fn error_page(status: StatusCode, error: &str, description: &str) -> Reply {
    render(
        status,
        "error.html",
        minijinja::context! { title => "Something went wrong", error => error, description => description },
    )
}

/// An auto-submitting form that POSTs `fields` to `action` (response_mode=form_post).
pub fn form_post(action: &str, fields: &[(&str, String)]) -> Reply {
    render(
        StatusCode::OK,
        "form_post.html",
        minijinja::context! {
            action => action,
            fields => fields.iter().map(|(k, v)| vec![(*k).to_owned(), v.clone()]).collect::<Vec<_>>(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_escapes() {
        for (name, _) in TEMPLATES {
            assert!(environment().get_template(name).is_ok(), "{name} does not compile");
        }
        let html = environment()
            .get_template("error.html")
            .and_then(|t| t.render(minijinja::context! { title => "t", error => "<script>", description => "\"x\"" }))
            .unwrap_or_default();
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"), "{html}");
    }
}
