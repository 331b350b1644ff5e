//! `ClientStore` on diesel.

use crate::connection::{AnyConnection, Database};
use crate::convert::{DbResult, from_millis, json_object, json_strings, millis, to_json};
use crate::schema::clients;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use guise_core::StoreError;
use guise_core::audit::AuditEvent;
use guise_core::client::{AppType, Client, ClientFilter, ClientPatch, TokenEndpointAuthMethod};
use guise_core::page::{Page, PageRequest};
use guise_core::store::{ClientStore, StoreResult};

#[derive(Queryable, Selectable, Insertable, AsChangeset, Debug)]
#[diesel(table_name = clients, treat_none_as_null = true)]
struct ClientRow {
    client_id: String,
    client_secret_hash: Option<String>,
    name: String,
    description: String,
    app_type: String,
    is_first_party: bool,
    callbacks: String,
    allowed_logout_urls: String,
    grant_types: String,
    token_endpoint_auth_method: String,
    allow_impersonation: bool,
    allow_act_as: bool,
    initiate_login_uri: Option<String>,
    addons: String,
    jwt_configuration: String,
    created_at: i64,
    updated_at: i64,
    web_origins: String,
    allowed_origins: String,
    oidc_conformant: bool,
    logo_uri: Option<String>,
    client_metadata: String,
    allow_token_exchange: bool,
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
}

impl From<ClientRow> for Client {
    fn from(row: ClientRow) -> Self {
        Client {
            client_id: row.client_id,
            client_secret_hash: row.client_secret_hash,
            name: row.name,
            description: row.description,
            app_type: AppType::parse(&row.app_type).unwrap_or(AppType::RegularWeb),
            is_first_party: row.is_first_party,
            callbacks: json_strings(&row.callbacks),
            allowed_logout_urls: json_strings(&row.allowed_logout_urls),
            grant_types: json_strings(&row.grant_types),
            token_endpoint_auth_method: TokenEndpointAuthMethod::parse(&row.token_endpoint_auth_method)
                .unwrap_or(TokenEndpointAuthMethod::ClientSecretPost),
            allow_impersonation: row.allow_impersonation,
            allow_act_as: row.allow_act_as,
            allow_token_exchange: row.allow_token_exchange,
            initiate_login_uri: row.initiate_login_uri,
            addons: json_object(&row.addons),
            jwt_configuration: json_object(&row.jwt_configuration),
            web_origins: json_strings(&row.web_origins),
            allowed_origins: json_strings(&row.allowed_origins),
            oidc_conformant: row.oidc_conformant,
            logo_uri: row.logo_uri,
            client_metadata: json_object(&row.client_metadata),
            backchannel_logout_uri: row.backchannel_logout_uri,
            backchannel_logout_session_required: row.backchannel_logout_session_required,
            created_at: from_millis(row.created_at),
            updated_at: from_millis(row.updated_at),
        }
    }
}

impl From<&Client> for ClientRow {
    fn from(c: &Client) -> Self {
        ClientRow {
            client_id: c.client_id.clone(),
            client_secret_hash: c.client_secret_hash.clone(),
            name: c.name.clone(),
            description: c.description.clone(),
            app_type: c.app_type.as_str().to_owned(),
            is_first_party: c.is_first_party,
            callbacks: to_json(&c.callbacks),
            allowed_logout_urls: to_json(&c.allowed_logout_urls),
            grant_types: to_json(&c.grant_types),
            token_endpoint_auth_method: c.token_endpoint_auth_method.as_str().to_owned(),
            allow_impersonation: c.allow_impersonation,
            allow_act_as: c.allow_act_as,
            allow_token_exchange: c.allow_token_exchange,
            initiate_login_uri: c.initiate_login_uri.clone(),
            addons: to_json(&c.addons),
            jwt_configuration: to_json(&c.jwt_configuration),
            web_origins: to_json(&c.web_origins),
            allowed_origins: to_json(&c.allowed_origins),
            oidc_conformant: c.oidc_conformant,
            logo_uri: c.logo_uri.clone(),
            client_metadata: to_json(&c.client_metadata),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: c.backchannel_logout_session_required,
            created_at: millis(c.created_at),
            updated_at: millis(c.updated_at),
        }
    }
}

fn load_client(conn: &mut AnyConnection, client_id: &str) -> DbResult<Client> {
    let row: ClientRow = clients::table.find(client_id).select(ClientRow::as_select()).first(conn)?;
    Ok(row.into())
}

impl Database {
    fn replace_client(
        &self,
        client_id: &str,
        audit: AuditEvent,
        change: impl FnOnce(&mut Client),
    ) -> StoreResult<Client> {
        // Taken only once the transaction holds its lock: a connection found lost
        // before that leaves it for the retry.
        let mut change = Some(change);
        self.changing_cached(|| {
            self.run(|| {
                let (client, _) = self.write(vec![audit.clone()], |conn| {
                    let mut client = load_client(conn, client_id)?;
                    let change = change.take().ok_or_else(|| StoreError::Backend("change already attempted".into()))?;
                    change(&mut client);
                    diesel::update(clients::table.find(client_id)).set(&ClientRow::from(&client)).execute(conn)?;
                    Ok(client)
                })?;
                Ok(client)
            })
        })
    }
}

impl ClientStore for Database {
    fn create_client(&self, client: Client, audit: AuditEvent) -> StoreResult<Client> {
        self.changing_cached(|| {
            self.run(|| {
                self.write(vec![audit.clone()], |conn| {
                    diesel::insert_into(clients::table).values(&ClientRow::from(&client)).execute(conn)?;
                    Ok(())
                })?;
                Ok(client.clone())
            })
        })
    }

    fn client_by_id(&self, client_id: &str) -> StoreResult<Client> {
        let key = client_id.to_owned();
        self.run(|| self.cached(|c| &c.clients, &key, |conn| load_client(conn, client_id)))
    }

    fn web_origins(&self) -> StoreResult<std::sync::Arc<Vec<Vec<String>>>> {
        self.run(|| {
            self.cached(
                |c| &c.origins,
                &(),
                |conn| {
                    let rows: Vec<String> = clients::table.select(clients::web_origins).load(conn)?;
                    Ok(std::sync::Arc::new(rows.iter().map(|r| json_strings(r)).collect()))
                },
            )
        })
    }

    fn list_clients(&self, filter: &ClientFilter, page: PageRequest, with_total: bool) -> StoreResult<Page<Client>> {
        let filtered = || {
            let mut query = clients::table.into_boxed();
            if !filter.app_types.is_empty() {
                query = query.filter(clients::app_type.eq_any(filter.app_types.iter().map(|t| t.as_str())));
            }
            if let Some(first_party) = filter.is_first_party {
                query = query.filter(clients::is_first_party.eq(first_party));
            }
            query
        };
        self.run(|| {
            let mut conn = self.conn()?;
            let rows: Vec<ClientRow> = filtered()
                .order((clients::created_at.asc(), clients::client_id.asc()))
                .offset(page.offset())
                .limit(page.limit())
                .select(ClientRow::as_select())
                .load(&mut conn)?;
            let total = if with_total { filtered().count().get_result(&mut conn)? } else { rows.len() as i64 };
            Ok(Page { items: rows.into_iter().map(Client::from).collect(), request: page, total })
        })
    }

    fn update_client(
        &self,
        client_id: &str,
        patch: ClientPatch,
        at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> StoreResult<Client> {
        self.replace_client(client_id, audit, |client| {
            patch.apply_to(client);
            client.updated_at = at;
        })
    }

    fn set_client_secret_hash(
        &self,
        client_id: &str,
        hash: &str,
        at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> StoreResult<Client> {
        self.replace_client(client_id, audit, |client| {
            client.client_secret_hash = Some(hash.to_owned());
            client.updated_at = at;
        })
    }

    fn delete_client(&self, client_id: &str, audit: AuditEvent) -> StoreResult<()> {
        self.changing_cached(|| {
            self.run(|| {
                self.write(vec![audit.clone()], |conn| {
                    match diesel::delete(clients::table.find(client_id)).execute(conn)? {
                        0 => Err(StoreError::NotFound.into()),
                        _ => Ok(()),
                    }
                })?;
                Ok(())
            })
        })
    }
}
