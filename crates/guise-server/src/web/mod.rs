//! Browser-facing plumbing: templates, cookies, the session behind the cookie.

pub mod cookies;
pub mod pages;
