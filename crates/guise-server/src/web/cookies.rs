//! The cookies guise sets: the session (HttpOnly, SameSite=Lax, Secure under https) and
//! the CSRF cookie that login and consent forms must echo.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};

pub const SESSION_COOKIE: &str = "guise_session";
pub const CSRF_COOKIE: &str = "guise_csrf";

fn base(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(name, value).path("/").http_only(true).same_site(SameSite::Lax).secure(secure).finish()
}

pub fn session(value: String, secure: bool) -> Cookie<'static> {
    base(SESSION_COOKIE, value, secure)
}

pub fn csrf(value: String, secure: bool) -> Cookie<'static> {
    let mut cookie = base(CSRF_COOKIE, value, secure);
    cookie.set_same_site(SameSite::Strict);
    cookie
}

/// A cookie that deletes `name`.
pub fn removal(name: &'static str, secure: bool) -> Cookie<'static> {
    let mut cookie = base(name, String::new(), secure);
    cookie.set_max_age(CookieDuration::ZERO);
    cookie
}
