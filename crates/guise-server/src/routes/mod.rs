//! HTTP routes outside the Management API: health, discovery, keys, the token endpoint.

pub mod health;
pub mod oauth;
