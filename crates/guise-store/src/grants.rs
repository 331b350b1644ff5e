//! `ClientGrantStore` on diesel.

use crate::connection::Database;
use crate::convert::{from_millis, json_strings, millis, to_json};
use crate::schema::client_grants;
use diesel::prelude::*;
use guise_core::StoreError;
use guise_core::audit::AuditEvent;
use guise_core::page::{Page, PageRequest};
use guise_core::role::ClientGrant;
use guise_core::store::{ClientGrantStore, StoreResult};

#[derive(Queryable, Selectable, Insertable, Debug)]
#[diesel(table_name = client_grants)]
struct GrantRow {
    id: String,
    client_id: String,
    audience: String,
    scope: String,
    created_at: i64,
}

impl From<GrantRow> for ClientGrant {
    fn from(row: GrantRow) -> Self {
        ClientGrant {
            id: row.id,
            client_id: row.client_id,
            audience: row.audience,
            scope: json_strings(&row.scope),
            created_at: from_millis(row.created_at),
        }
    }
}

impl ClientGrantStore for Database {
    fn create_client_grant(&self, grant: ClientGrant, audit: AuditEvent) -> StoreResult<ClientGrant> {
        let row = GrantRow {
            id: grant.id.clone(),
            client_id: grant.client_id.clone(),
            audience: grant.audience.clone(),
            scope: to_json(&grant.scope),
            created_at: millis(grant.created_at),
        };
        self.changing_cached(|| {
            self.run(|| {
                self.write(vec![audit.clone()], |conn| {
                    diesel::insert_into(client_grants::table).values(&row).execute(conn)?;
                    Ok(())
                })?;
                Ok(grant.clone())
            })
        })
    }

    fn client_grant(&self, client_id: &str, audience: &str) -> StoreResult<ClientGrant> {
        let key = (client_id.to_owned(), audience.to_owned());
        self.run(|| {
            self.cached(
                |c| &c.grants,
                &key,
                |conn| {
                    let row: GrantRow = client_grants::table
                        .filter(client_grants::client_id.eq(client_id))
                        .filter(client_grants::audience.eq(audience))
                        .select(GrantRow::as_select())
                        .first(conn)?;
                    Ok(row.into())
                },
            )
        })
    }

    fn client_grant_by_id(&self, id: &str) -> StoreResult<ClientGrant> {
        self.run(|| {
            let row: GrantRow = client_grants::table.find(id).select(GrantRow::as_select()).first(&mut self.conn()?)?;
            Ok(row.into())
        })
    }

    fn list_client_grants(
        &self,
        client_id: Option<&str>,
        audience: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<ClientGrant>> {
        self.run(|| {
            let mut conn = self.conn()?;
            let filtered = || {
                let mut query = client_grants::table.into_boxed();
                if let Some(c) = client_id {
                    query = query.filter(client_grants::client_id.eq(c.to_owned()));
                }
                if let Some(a) = audience {
                    query = query.filter(client_grants::audience.eq(a.to_owned()));
                }
                query
            };
            let rows: Vec<GrantRow> = filtered()
                .order((client_grants::created_at.asc(), client_grants::id.asc()))
                .offset(page.offset())
                .limit(page.limit())
                .select(GrantRow::as_select())
                .load(&mut conn)?;
            let total = filtered().count().get_result(&mut conn)?;
            Ok(Page { items: rows.into_iter().map(ClientGrant::from).collect(), request: page, total })
        })
    }

    fn update_client_grant_scope(&self, id: &str, scope: Vec<String>, audit: AuditEvent) -> StoreResult<ClientGrant> {
        self.changing_cached(|| {
            self.run(|| {
                let (row, _) = self.write(vec![audit.clone()], |conn| {
                    let updated = diesel::update(client_grants::table.find(id))
                        .set(client_grants::scope.eq(to_json(&scope)))
                        .execute(conn)?;
                    if updated == 0 {
                        return Err(StoreError::NotFound.into());
                    }
                    Ok(client_grants::table.find(id).select(GrantRow::as_select()).first(conn)?)
                })?;
                Ok(row.into())
            })
        })
    }

    fn delete_client_grant(&self, id: &str, audit: AuditEvent) -> StoreResult<()> {
        self.changing_cached(|| {
            self.run(|| {
                self.write(vec![audit.clone()], |conn| {
                    match diesel::delete(client_grants::table.find(id)).execute(conn)? {
                        0 => Err(StoreError::NotFound.into()),
                        _ => Ok(()),
                    }
                })?;
                Ok(())
            })
        })
    }
}
