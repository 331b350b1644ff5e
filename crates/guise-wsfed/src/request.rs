//! A passive requestor's request: which relying party it is for (`wtrealm`), and what it
//! asks (`wa`): a sign-in to a registered `wreply`, as fresh as `wfresh` wants, or a
//! sign-out to a registered reply address. WS-Federation has no error response: every
//! refusal is an error page, and an unregistered `wreply` is never redirected to.

use crate::settings::{WsfedSettings, from_addons};
use guise_core::authorization::{PendingAuthorization, PendingProtocol, PendingWsfed};
use guise_core::client::Client;

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct WsfedParams {
    pub wa: Option<String>,
    pub wtrealm: Option<String>,
    pub wreply: Option<String>,
    pub wctx: Option<String>,
    pub wfresh: Option<String>,
}

/// Longest value accepted for any parameter.
pub const MAX_PARAM: usize = 2048;

impl WsfedParams {
    /// Refuse an over-long parameter, before anything is looked up for it.
    pub fn check_lengths(&self) -> Result<(), Refusal> {
        let values = [&self.wa, &self.wtrealm, &self.wreply, &self.wctx, &self.wfresh];
        match values.iter().any(|v| v.as_ref().is_some_and(|v| v.len() > MAX_PARAM)) {
            true => Err(Refusal::TooLong),
            false => Ok(()),
        }
    }
}

/// Why a request is refused; the text is the error page's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("A parameter is too long")]
    TooLong,
    #[error("Unknown realm or client, or WS-Federation is not enabled for it")]
    UnknownRealm,
    #[error("wtrealm does not match the client's realm")]
    RealmMismatch,
    #[error("wreply is not a registered callback of the client")]
    UnregisteredReply,
    #[error("The client has no registered callback")]
    NoCallback,
    #[error("wfresh must be a number of minutes")]
    BadFreshness,
    #[error("wreply is not a registered logout URL of the client")]
    UnregisteredSignOutReply,
    #[error("Unsupported wa (wsignin1.0, wsignout1.0 or wsignoutcleanup1.0)")]
    UnsupportedAction,
    #[error("Missing wa")]
    MissingAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WsfedRequest {
    SignIn(Box<PendingAuthorization>),
    /// End the session, then go to `reply` (registered), or else say the user logged out.
    SignOut {
        reply: Option<String>,
    },
}

/// The client with its WS-Fed settings, if it is a relying party (valid `addons.wsfed`).
pub fn relying_party(client: Client) -> Option<(Client, WsfedSettings)> {
    let settings = from_addons(&client.client_id, &client.addons).ok().flatten()?;
    Some((client, settings))
}

/// The first of `clients` (oldest first) that is a relying party for `realm`.
pub fn by_realm(clients: Vec<Client>, realm: &str) -> Result<(Client, WsfedSettings), Refusal> {
    clients.into_iter().filter_map(relying_party).find(|(_, s)| s.realm == realm).ok_or(Refusal::UnknownRealm)
}

/// Validate a request to `client`, a relying party with `settings`, whose lengths
/// `WsfedParams::check_lengths` has passed.
pub fn validate(client: &Client, settings: &WsfedSettings, params: &WsfedParams) -> Result<WsfedRequest, Refusal> {
    if params.wtrealm.as_ref().is_some_and(|realm| *realm != settings.realm) {
        return Err(Refusal::RealmMismatch);
    }
    match params.wa.as_deref() {
        Some("wsignin1.0") => sign_in(client, settings, params).map(|p| WsfedRequest::SignIn(Box::new(p))),
        // Checked before anything ends: a refused sign-out leaves the session as it was.
        Some("wsignout1.0" | "wsignoutcleanup1.0") => match &params.wreply {
            Some(url) if !client.accepts_sign_out_reply(url) => Err(Refusal::UnregisteredSignOutReply),
            reply => Ok(WsfedRequest::SignOut { reply: reply.clone() }),
        },
        Some(_) => Err(Refusal::UnsupportedAction),
        None => Err(Refusal::MissingAction),
    }
}

fn sign_in(client: &Client, settings: &WsfedSettings, params: &WsfedParams) -> Result<PendingAuthorization, Refusal> {
    let reply = params.wreply.clone().or_else(|| client.callbacks.first().cloned()).ok_or(Refusal::NoCallback)?;
    if !client.is_registered_callback(&reply) {
        return Err(Refusal::UnregisteredReply);
    }
    // The oldest login accepted, in minutes; 0 asks for a new login.
    let (prompt, max_age) = match params.wfresh.as_deref().map(str::parse::<i64>) {
        None => (vec![], None),
        Some(Ok(0)) => (vec!["login".to_owned()], None),
        Some(Ok(minutes)) if minutes > 0 => (vec![], Some(minutes.saturating_mul(60))),
        Some(_) => return Err(Refusal::BadFreshness),
    };
    let wsfed = PendingWsfed { realm: settings.realm.clone(), reply, wctx: params.wctx.clone(), rms: settings.rms };
    let protocol = PendingProtocol::Wsfed(wsfed);
    Ok(PendingAuthorization { client_id: client.client_id.clone(), prompt, max_age, protocol })
}

#[cfg(test)]
mod tests;
