//! HTTP routes outside the Management API: health, discovery and keys, the OAuth and
//! OpenID Connect endpoints, and the login and consent pages.

pub mod authorize;
pub mod health;
pub mod home;
pub mod impersonate;
pub mod login;
pub mod logout;
pub mod oauth;
pub mod samlp;
pub mod userinfo;
pub mod wsfed;
