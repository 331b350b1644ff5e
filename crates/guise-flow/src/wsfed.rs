//! A WS-Federation request, from the client's id (or `wtrealm`) to the browser's next
//! step: the relying party looked up, `guise_wsfed::request`'s rules applied, then the
//! shared login flow for a sign-in, or the session ended for a sign-out.

use crate::authorization::{FlowOutcome, SignOutOutcome, end_cookie_session, start};
use crate::{FlowContext, FlowError};
use guise_core::client::Client;
use guise_core::store::found;
use guise_wsfed::request::{Refusal, WsfedParams, WsfedRequest, by_realm, relying_party, validate};
use guise_wsfed::settings::WsfedSettings;

/// The relying party at `/wsfed/{client_id}`, or else the one whose realm is `realm`.
pub fn relying_party_for(
    ctx: &FlowContext<'_>,
    client_id: Option<&str>,
    realm: Option<&str>,
) -> Result<Result<(Client, WsfedSettings), Refusal>, FlowError> {
    match (client_id, realm) {
        (Some(id), _) => Ok(found(ctx.store.client_by_id(id))?.and_then(relying_party).ok_or(Refusal::UnknownRealm)),
        (None, Some(realm)) => Ok(by_realm(ctx.store.all_clients()?, realm)),
        (None, None) => Ok(Err(Refusal::UnknownRealm)),
    }
}

/// Answer a request to `client_id` (or by `wtrealm`) from the browser with `cookie`.
pub fn request(
    ctx: &FlowContext<'_>,
    client_id: Option<&str>,
    params: &WsfedParams,
    cookie: Option<&str>,
    source_ip: Option<String>,
) -> Result<SignOutOutcome, FlowError> {
    let checked = match params.check_lengths() {
        Ok(()) => relying_party_for(ctx, client_id, params.wtrealm.as_deref())?,
        Err(refusal) => Err(refusal),
    };
    let checked = checked.and_then(|(client, settings)| Ok((validate(&client, &settings, params)?, client)));
    match checked {
        Ok((WsfedRequest::SignIn(pending), _)) => Ok(SignOutOutcome::Continue(start(ctx, *pending, cookie)?)),
        Ok((WsfedRequest::SignOut { reply }, client)) => {
            end_cookie_session(ctx, cookie, Some(client.client_id), source_ip, "Logged out (WS-Federation)")?;
            Ok(SignOutOutcome::SignedOut { reply })
        }
        Err(refusal) => Ok(SignOutOutcome::Continue(FlowOutcome::invalid_request(refusal.to_string()))),
    }
}
