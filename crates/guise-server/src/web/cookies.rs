//! The cookies guise sets: the session (HttpOnly, SameSite=Lax, Secure under https), the
//! CSRF cookie that login and consent forms must echo, and the one of the logout
//! confirmation form.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};

pub const SESSION_COOKIE: &str = "guise_session";
pub const CSRF_COOKIE: &str = "guise_csrf";
/// Its own name, so that a logout page in one tab does not spoil a login form in another.
pub const LOGOUT_CSRF_COOKIE: &str = "guise_logout_csrf";

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

pub fn logout_csrf(value: String, secure: bool) -> Cookie<'static> {
    let mut cookie = base(LOGOUT_CSRF_COOKIE, value, secure);
    cookie.set_same_site(SameSite::Strict);
    cookie
}

/// A cookie that deletes `name`.
pub fn removal(name: &'static str, secure: bool) -> Cookie<'static> {
    let mut cookie = base(name, String::new(), secure);
    cookie.set_max_age(CookieDuration::ZERO);
    cookie
}
