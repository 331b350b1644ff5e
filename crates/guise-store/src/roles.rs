//! `RoleStore` on diesel: roles, their permissions, and who holds them.

use crate::connection::Database;
use crate::schema::{role_permissions, roles, user_roles, users};
use crate::users::UserRow;
use diesel::prelude::*;
use guise_core::StoreError;
use guise_core::audit::AuditEvent;
use guise_core::page::{Page, PageRequest};
use guise_core::permission::Permission;
use guise_core::role::{Role, RolePatch};
use guise_core::store::{RoleStore, StoreResult};
use guise_core::user::User;
use std::collections::BTreeMap;

#[diesel::declare_sql_function]
extern "SQL" {
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = roles)]
struct RoleRow {
    id: String,
    name: String,
    description: String,
}

impl From<RoleRow> for Role {
    fn from(row: RoleRow) -> Self {
        Role { id: row.id, name: row.name, description: row.description }
    }
}

fn role_conflict(e: crate::convert::DbError) -> crate::convert::DbError {
    match e.0 {
        StoreError::Conflict(_) => StoreError::Conflict("A role with this name already exists".into()).into(),
        other => other.into(),
    }
}

impl RoleStore for Database {
    fn create_role(&self, role: Role, audit: AuditEvent) -> StoreResult<Role> {
        let row = RoleRow { id: role.id.clone(), name: role.name.clone(), description: role.description.clone() };
        self.run(|| {
            self.write(vec![audit.clone()], |conn| {
                diesel::insert_into(roles::table).values(&row).execute(conn).map_err(|e| role_conflict(e.into()))?;
                Ok(())
            })?;
            Ok(role.clone())
        })
    }

    fn role_by_id(&self, id: &str) -> StoreResult<Role> {
        self.run(|| {
            let row: RoleRow = roles::table.find(id).select(RoleRow::as_select()).first(&mut self.conn()?)?;
            Ok(row.into())
        })
    }

    fn list_roles(&self, name_filter: Option<&str>, page: PageRequest) -> StoreResult<Page<Role>> {
        self.run(|| {
            let mut conn = self.conn()?;
            let filtered = || {
                let mut query = roles::table.into_boxed();
                if let Some(name) = name_filter {
                    query = query.filter(lower(roles::name).eq(name.to_lowercase()));
                }
                query
            };
            let rows: Vec<RoleRow> = filtered()
                .order(roles::name.asc())
                .offset(page.offset())
                .limit(page.limit())
                .select(RoleRow::as_select())
                .load(&mut conn)?;
            let total = filtered().count().get_result(&mut conn)?;
            Ok(Page { items: rows.into_iter().map(Role::from).collect(), request: page, total })
        })
    }

    fn update_role(&self, id: &str, patch: RolePatch, audit: AuditEvent) -> StoreResult<Role> {
        self.run(|| {
            let (row, _) = self.write(vec![audit.clone()], |conn| {
                let mut row: RoleRow = roles::table.find(id).select(RoleRow::as_select()).first(conn)?;
                if let Some(name) = patch.name.clone() {
                    row.name = name;
                }
                if let Some(description) = patch.description.clone() {
                    row.description = description;
                }
                diesel::update(roles::table.find(id))
                    .set((roles::name.eq(&row.name), roles::description.eq(&row.description)))
                    .execute(conn)
                    .map_err(|e| role_conflict(e.into()))?;
                Ok(row)
            })?;
            Ok(row.into())
        })
    }

    fn delete_role(&self, id: &str, audit: AuditEvent) -> StoreResult<()> {
        self.run(|| {
            self.write(vec![audit.clone()], |conn| match diesel::delete(roles::table.find(id)).execute(conn)? {
                0 => Err(StoreError::NotFound.into()),
                _ => Ok(()),
            })?;
            Ok(())
        })
    }

    fn role_permissions(&self, role_id: &str, page: PageRequest) -> StoreResult<Page<Permission>> {
        self.run(|| {
            let mut conn = self.conn()?;
            roles::table.find(role_id).select(roles::id).first::<String>(&mut conn)?;
            let rows: Vec<(String, String)> = role_permissions::table
                .filter(role_permissions::role_id.eq(role_id))
                .order((role_permissions::resource_server_identifier, role_permissions::permission_name))
                .offset(page.offset())
                .limit(page.limit())
                .select((role_permissions::resource_server_identifier, role_permissions::permission_name))
                .load(&mut conn)?;
            let total =
                role_permissions::table.filter(role_permissions::role_id.eq(role_id)).count().get_result(&mut conn)?;
            let items = rows
                .into_iter()
                .map(|(resource_server_identifier, permission_name)| Permission {
                    resource_server_identifier,
                    permission_name,
                })
                .collect();
            Ok(Page { items, request: page, total })
        })
    }

    fn add_role_permissions(&self, role_id: &str, permissions: &[Permission], audit: AuditEvent) -> StoreResult<()> {
        self.run(|| {
            self.write(vec![audit.clone()], |conn| {
                roles::table.find(role_id).select(roles::id).first::<String>(conn)?;
                for p in permissions {
                    let exists = role_permissions::table
                        .find((role_id, &p.resource_server_identifier, &p.permission_name))
                        .count()
                        .get_result::<i64>(conn)?;
                    if exists == 0 {
                        diesel::insert_into(role_permissions::table)
                            .values((
                                role_permissions::role_id.eq(role_id),
                                role_permissions::resource_server_identifier.eq(&p.resource_server_identifier),
                                role_permissions::permission_name.eq(&p.permission_name),
                            ))
                            .execute(conn)?;
                    }
                }
                Ok(())
            })?;
            Ok(())
        })
    }

    fn remove_role_permissions(&self, role_id: &str, permissions: &[Permission], audit: AuditEvent) -> StoreResult<()> {
        self.run(|| {
            self.write(vec![audit.clone()], |conn| {
                roles::table.find(role_id).select(roles::id).first::<String>(conn)?;
                for p in permissions {
                    diesel::delete(role_permissions::table.find((
                        role_id,
                        &p.resource_server_identifier,
                        &p.permission_name,
                    )))
                    .execute(conn)?;
                }
                Ok(())
            })?;
            Ok(())
        })
    }

    fn role_users(&self, role_id: &str, page: PageRequest) -> StoreResult<Page<User>> {
        self.run(|| {
            let mut conn = self.conn()?;
            roles::table.find(role_id).select(roles::id).first::<String>(&mut conn)?;
            let rows: Vec<UserRow> = users::table
                .inner_join(user_roles::table)
                .filter(user_roles::role_id.eq(role_id))
                .order(users::user_id.asc())
                .offset(page.offset())
                .limit(page.limit())
                .select(UserRow::as_select())
                .load(&mut conn)?;
            let total = user_roles::table.filter(user_roles::role_id.eq(role_id)).count().get_result(&mut conn)?;
            Ok(Page { items: rows.into_iter().map(User::from).collect(), request: page, total })
        })
    }

    fn user_roles(&self, user_id: &str, page: PageRequest) -> StoreResult<Page<Role>> {
        self.run(|| {
            let mut conn = self.conn()?;
            users::table.find(user_id).select(users::user_id).first::<String>(&mut conn)?;
            let rows: Vec<RoleRow> = roles::table
                .inner_join(user_roles::table)
                .filter(user_roles::user_id.eq(user_id))
                .order(roles::name.asc())
                .offset(page.offset())
                .limit(page.limit())
                .select(RoleRow::as_select())
                .load(&mut conn)?;
            let total = user_roles::table.filter(user_roles::user_id.eq(user_id)).count().get_result(&mut conn)?;
            Ok(Page { items: rows.into_iter().map(Role::from).collect(), request: page, total })
        })
    }

    fn assign_roles(&self, user_id: &str, role_ids: &[String], audit: AuditEvent) -> StoreResult<()> {
        self.run(|| {
            self.write(vec![audit.clone()], |conn| {
                users::table.find(user_id).select(users::user_id).first::<String>(conn)?;
                for role_id in role_ids {
                    let role = roles::table.find(role_id).select(roles::id).first::<String>(conn).optional()?;
                    if role.is_none() {
                        return Err(StoreError::InvalidReference(format!("role {role_id} does not exist")).into());
                    }
                    let exists = user_roles::table.find((user_id, role_id)).count().get_result::<i64>(conn)?;
                    if exists == 0 {
                        diesel::insert_into(user_roles::table)
                            .values((user_roles::user_id.eq(user_id), user_roles::role_id.eq(role_id)))
                            .execute(conn)?;
                    }
                }
                Ok(())
            })?;
            Ok(())
        })
    }

    fn unassign_roles(&self, user_id: &str, role_ids: &[String], audit: AuditEvent) -> StoreResult<()> {
        self.run(|| {
            self.write(vec![audit.clone()], |conn| {
                users::table.find(user_id).select(users::user_id).first::<String>(conn)?;
                diesel::delete(
                    user_roles::table
                        .filter(user_roles::user_id.eq(user_id))
                        .filter(user_roles::role_id.eq_any(role_ids)),
                )
                .execute(conn)?;
                Ok(())
            })?;
            Ok(())
        })
    }

    fn add_role_users(&self, role_id: &str, user_ids: &[String], audit: Vec<AuditEvent>) -> StoreResult<()> {
        self.run(|| {
            self.write(audit.clone(), |conn| {
                roles::table.find(role_id).select(roles::id).first::<String>(conn)?;
                for user_id in user_ids {
                    users::table.find(user_id).select(users::user_id).first::<String>(conn)?;
                    let exists = user_roles::table.find((user_id, role_id)).count().get_result::<i64>(conn)?;
                    if exists == 0 {
                        diesel::insert_into(user_roles::table)
                            .values((user_roles::user_id.eq(user_id), user_roles::role_id.eq(role_id)))
                            .execute(conn)?;
                    }
                }
                Ok(())
            })?;
            Ok(())
        })
    }

    fn user_permissions(&self, user_id: &str) -> StoreResult<Vec<(Permission, Vec<Role>)>> {
        self.run(|| {
            let mut conn = self.conn()?;
            let rows: Vec<(String, String, RoleRow)> = role_permissions::table
                .inner_join(roles::table.inner_join(user_roles::table))
                .filter(user_roles::user_id.eq(user_id))
                .select((
                    role_permissions::resource_server_identifier,
                    role_permissions::permission_name,
                    RoleRow::as_select(),
                ))
                .load(&mut conn)?;
            let mut by_permission: BTreeMap<Permission, Vec<Role>> = BTreeMap::new();
            for (resource_server_identifier, permission_name, role) in rows {
                by_permission
                    .entry(Permission { resource_server_identifier, permission_name })
                    .or_default()
                    .push(role.into());
            }
            Ok(by_permission.into_iter().collect())
        })
    }
}
