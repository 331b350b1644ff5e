//! A SAML single sign-on request, from the client's id to the browser's next step: the
//! client and its SAML settings looked up, `guise_saml::sso`'s rules applied, then the
//! shared authorization flow; a refusal is an error page, or a SAML error Response to a
//! registered ACS.

use crate::authorization::{FlowOutcome, start};
use crate::{FlowContext, FlowError};
use guise_core::StoreError;
use guise_core::client::Client;
use guise_saml::response::STATUS_REQUESTER;
use guise_saml::settings::{SamlSettings, from_addons};
use guise_saml::sso::{Binding, SamlParams, SsoRefusal, pending_sso};

fn page(description: impl Into<String>) -> FlowOutcome {
    FlowOutcome::ErrorPage { error: "invalid_request".into(), description: description.into() }
}

/// The client and its SAML settings, or the error page for an unknown client or one
/// without (valid) SAML settings.
pub fn saml_client(
    ctx: &FlowContext<'_>,
    client_id: &str,
) -> Result<Result<(Client, SamlSettings), FlowOutcome>, FlowError> {
    let client = match ctx.store.client_by_id(client_id) {
        Ok(client) => client,
        Err(StoreError::NotFound) => return Ok(Err(page("Unknown client"))),
        Err(e) => return Err(e.into()),
    };
    Ok(match from_addons(&client.addons) {
        Ok(Some(settings)) => Ok((client, settings)),
        Ok(None) => Err(page("SAML is not enabled for this client")),
        Err(e) => Err(page(e.to_string())),
    })
}

/// Begin (or refuse) single sign-on to `client_id` for the browser with `cookie`.
pub fn sign_in(
    ctx: &FlowContext<'_>,
    client_id: &str,
    params: &SamlParams,
    binding: &Binding,
    cookie: Option<&str>,
) -> Result<FlowOutcome, FlowError> {
    let (client, settings) = match saml_client(ctx, client_id)? {
        Ok(found) => found,
        Err(outcome) => return Ok(outcome),
    };
    match pending_sso(&client, &settings, params, binding) {
        Ok(pending) => start(ctx, pending, cookie),
        Err(SsoRefusal::Page(description)) => Ok(page(description)),
        Err(SsoRefusal::ToAcs { pending, status, message }) => {
            Ok(FlowOutcome::saml_error(ctx, &pending, STATUS_REQUESTER, status, message))
        }
    }
}
