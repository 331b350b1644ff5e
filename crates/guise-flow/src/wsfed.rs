//! A WS-Federation passive request, from the client's id (or `wtrealm`) to the browser's
//! next step: the relying party looked up, `guise_wsfed::request`'s rules applied, then
//! the shared authorization flow for a sign-in, or the session ended for a sign-out.

use crate::authorization::{FlowOutcome, end_cookie_session, start};
use crate::{FlowContext, FlowError};
use guise_core::StoreError;
use guise_core::client::Client;
use guise_wsfed::request::{Refusal, WsfedParams, WsfedRequest, by_realm, relying_party, validate};
use guise_wsfed::settings::WsfedSettings;

/// Where the browser goes after a request.
#[derive(Debug, Clone, PartialEq)]
pub enum WsfedOutcome {
    /// The sign-in continues (login, consent, the sign-in response), or an error page.
    Continue(FlowOutcome),
    /// The session has ended: to `reply` (registered), or else a logged-out page.
    SignedOut { reply: Option<String> },
}

/// The relying party at `/wsfed/{client_id}`, or else the one whose realm is `realm`.
pub fn relying_party_for(
    ctx: &FlowContext<'_>,
    client_id: Option<&str>,
    realm: Option<&str>,
) -> Result<Result<(Client, WsfedSettings), Refusal>, FlowError> {
    match (client_id, realm) {
        (Some(id), _) => match ctx.store.client_by_id(id) {
            Ok(client) => Ok(relying_party(client).ok_or(Refusal::UnknownRealm)),
            Err(StoreError::NotFound) => Ok(Err(Refusal::UnknownRealm)),
            Err(e) => Err(e.into()),
        },
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
) -> Result<WsfedOutcome, FlowError> {
    let refused = |refusal: Refusal| {
        WsfedOutcome::Continue(FlowOutcome::ErrorPage {
            error: "invalid_request".into(),
            description: refusal.to_string(),
        })
    };
    if let Err(refusal) = params.check_lengths() {
        return Ok(refused(refusal));
    }
    let (client, settings) = match relying_party_for(ctx, client_id, params.wtrealm.as_deref())? {
        Ok(found) => found,
        Err(refusal) => return Ok(refused(refusal)),
    };
    match validate(&client, &settings, params) {
        Ok(WsfedRequest::SignIn(pending)) => Ok(WsfedOutcome::Continue(start(ctx, *pending, cookie)?)),
        Ok(WsfedRequest::SignOut { reply }) => {
            let client_id = Some(client.client_id);
            end_cookie_session(ctx, cookie, client_id, source_ip, "Logged out (WS-Federation)")?;
            Ok(WsfedOutcome::SignedOut { reply })
        }
        Err(refusal) => Ok(refused(refusal)),
    }
}
