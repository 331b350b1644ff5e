//! `UserStore` on diesel: rows, search by the parsed `q` terms, merge-on-patch.

use crate::connection::{AnyConnection, Database};
use crate::convert::{DbResult, from_millis, json_object, millis, to_json};
use crate::schema::{access_tokens, refresh_tokens, sessions, users};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use guise_core::StoreError;
use guise_core::audit::AuditEvent;
use guise_core::page::{Page, PageRequest};
use guise_core::store::{StoreResult, UserStore};
use guise_core::user::{Attribution, NewUser, User, UserPatch, normalize_email};
use guise_core::user_query::{Match, UserField, UserSort, UserSortField, UserTerm};

#[diesel::declare_sql_function]
extern "SQL" {
    fn lower(x: Nullable<Text>) -> Nullable<Text>;
}

#[derive(Queryable, Selectable, Insertable, AsChangeset, Debug)]
#[diesel(table_name = users, treat_none_as_null = true)]
pub(crate) struct UserRow {
    pub user_id: String,
    pub email: String,
    pub email_normalized: String,
    pub email_verified: bool,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub nickname: Option<String>,
    pub picture: Option<String>,
    pub password_hash: Option<String>,
    pub blocked: bool,
    pub app_metadata: String,
    pub user_metadata: String,
    pub external_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub created_by: Option<String>,
    pub modified_by: Option<String>,
    pub created_on_behalf_by: Option<String>,
    pub modified_on_behalf_by: Option<String>,
    pub last_login: Option<i64>,
    pub last_ip: Option<String>,
    pub logins_count: i64,
    pub username: Option<String>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            user_id: row.user_id,
            email: row.email,
            username: row.username,
            email_verified: row.email_verified,
            name: row.name,
            given_name: row.given_name,
            family_name: row.family_name,
            nickname: row.nickname,
            picture: row.picture,
            blocked: row.blocked,
            app_metadata: json_object(&row.app_metadata),
            user_metadata: json_object(&row.user_metadata),
            external_id: row.external_id,
            created_at: from_millis(row.created_at),
            updated_at: from_millis(row.updated_at),
            created_by: row.created_by,
            modified_by: row.modified_by,
            created_on_behalf_by: row.created_on_behalf_by,
            modified_on_behalf_by: row.modified_on_behalf_by,
            last_login: row.last_login.map(from_millis),
            last_ip: row.last_ip,
            logins_count: row.logins_count,
            has_password: row.password_hash.is_some(),
        }
    }
}

/// Translate a uniqueness failure on users into a message naming the field.
fn user_conflict(e: crate::convert::DbError) -> crate::convert::DbError {
    match e.0 {
        StoreError::Conflict(what) if what.contains("external_id") => {
            StoreError::Conflict("The external_id is already in use".into()).into()
        }
        StoreError::Conflict(what) if what.contains("username") => {
            StoreError::Conflict("The username is already in use".into()).into()
        }
        StoreError::Conflict(_) => StoreError::Conflict("The user already exists.".into()).into(),
        other => other.into(),
    }
}

pub(crate) fn load_user(conn: &mut AnyConnection, user_id: &str) -> DbResult<UserRow> {
    Ok(users::table.find(user_id).select(UserRow::as_select()).first(conn)?)
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

type UserQuery<'a> = users::BoxedQuery<'a, <AnyConnection as diesel::Connection>::Backend>;

fn apply_term<'a>(query: UserQuery<'a>, term: &UserTerm) -> UserQuery<'a> {
    match term {
        UserTerm::Text(text) => {
            let pattern = format!("%{}%", escape_like(text));
            query.filter(
                users::email_normalized
                    .like(pattern.clone())
                    .escape('\\')
                    .or(lower(users::name).like(pattern).escape('\\')),
            )
        }
        UserTerm::Flag(UserField::Blocked, v) => query.filter(users::blocked.eq(*v)),
        UserTerm::Flag(_, v) => query.filter(users::email_verified.eq(*v)),
        UserTerm::Field(field, m) => {
            let (value, prefix) = match m {
                Match::Exact(v) => (v.clone(), false),
                Match::Prefix(v) => (format!("{}%", escape_like(v)), true),
            };
            // Prefix matches ignore case on both backends (SQLite's LIKE does, PostgreSQL's does not).
            macro_rules! text_field {
                ($col:expr) => {
                    if prefix {
                        query.filter(lower($col.nullable()).like(value.to_lowercase()).escape('\\'))
                    } else {
                        query.filter($col.eq(value))
                    }
                };
            }
            match field {
                UserField::UserId => text_field!(users::user_id),
                UserField::Email => text_field!(users::email_normalized),
                UserField::Username => text_field!(users::username),
                UserField::Name => text_field!(users::name),
                UserField::GivenName => text_field!(users::given_name),
                UserField::FamilyName => text_field!(users::family_name),
                UserField::Nickname => text_field!(users::nickname),
                UserField::ExternalId => text_field!(users::external_id),
                UserField::Blocked | UserField::EmailVerified => query,
            }
        }
    }
}

fn filtered<'a>(terms: &[UserTerm]) -> UserQuery<'a> {
    terms.iter().fold(users::table.into_boxed(), apply_term)
}

/// Blocking is the emergency stop: every session of the user ends and every token
/// minted for them is revoked, in the transaction that blocks them.
fn end_everything_of(conn: &mut AnyConnection, user_id: &str, at: i64) -> DbResult<()> {
    let live: Vec<String> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::ended_at.is_null())
        .select(sessions::sid)
        .load(conn)?;
    diesel::update(sessions::table.filter(sessions::user_id.eq(user_id)).filter(sessions::ended_at.is_null()))
        .set(sessions::ended_at.eq(at))
        .execute(conn)?;
    crate::outbox::sessions_ended(conn, &live, at)?;
    diesel::update(
        refresh_tokens::table.filter(refresh_tokens::user_id.eq(user_id)).filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(at))
    .execute(conn)?;
    diesel::update(
        access_tokens::table.filter(access_tokens::user_id.eq(user_id)).filter(access_tokens::revoked_at.is_null()),
    )
    .set(access_tokens::revoked_at.eq(at))
    .execute(conn)?;
    Ok(())
}

/// Add `key: true` to an event's details (an object; anything else is left alone).
fn mark(event: &mut AuditEvent, key: &str) {
    if let Some(details) = event.details.as_object_mut() {
        details.insert(key.to_owned(), serde_json::Value::Bool(true));
    }
}

impl UserStore for Database {
    fn create_user(&self, new: NewUser, audit: AuditEvent) -> StoreResult<User> {
        let row = UserRow {
            user_id: new.user_id,
            email_normalized: normalize_email(&new.email),
            email: new.email,
            email_verified: new.email_verified,
            name: new.name,
            given_name: new.given_name,
            family_name: new.family_name,
            nickname: new.nickname,
            picture: new.picture,
            password_hash: new.password_hash,
            blocked: new.blocked,
            app_metadata: to_json(&new.app_metadata),
            user_metadata: to_json(&new.user_metadata),
            external_id: new.external_id,
            created_at: millis(new.created_at),
            updated_at: millis(new.created_at),
            created_by: new.attribution.by.clone(),
            modified_by: new.attribution.by,
            created_on_behalf_by: new.attribution.on_behalf_by.clone(),
            modified_on_behalf_by: new.attribution.on_behalf_by,
            last_login: None,
            last_ip: None,
            logins_count: 0,
            username: new.username,
        };
        self.run(|| {
            let (row, _) = self.write(vec![audit.clone()], |conn| {
                diesel::insert_into(users::table).values(&row).execute(conn).map_err(|e| user_conflict(e.into()))?;
                load_user(conn, &row.user_id)
            })?;
            Ok(row.into())
        })
    }

    fn user_by_id(&self, user_id: &str) -> StoreResult<User> {
        self.run(|| Ok(load_user(&mut *self.conn()?, user_id)?.into()))
    }

    fn user_by_email(&self, email: &str) -> StoreResult<User> {
        self.run(|| {
            let row: UserRow = users::table
                .filter(users::email_normalized.eq(normalize_email(email)))
                .select(UserRow::as_select())
                .first(&mut self.conn()?)?;
            Ok(row.into())
        })
    }

    fn user_by_username(&self, username: &str) -> StoreResult<User> {
        self.run(|| {
            let row: UserRow = users::table
                .filter(users::username.eq(username.to_lowercase()))
                .select(UserRow::as_select())
                .first(&mut self.conn()?)?;
            Ok(row.into())
        })
    }

    fn user_by_external_id(&self, external_id: &str) -> StoreResult<User> {
        self.run(|| {
            let row: UserRow = users::table
                .filter(users::external_id.eq(external_id))
                .select(UserRow::as_select())
                .first(&mut self.conn()?)?;
            Ok(row.into())
        })
    }

    fn search_users(
        &self,
        terms: &[UserTerm],
        sort: UserSort,
        page: PageRequest,
        with_total: bool,
    ) -> StoreResult<Page<User>> {
        self.run(|| {
            let mut conn = self.conn()?;
            let query = filtered(terms);
            // Missing values sort last either way, the same on both backends (SQLite
            // puts NULL first when ascending, PostgreSQL last); ties by user id.
            macro_rules! by {
                ($col:expr) => {
                    if sort.ascending {
                        query.order(($col.is_null().asc(), $col.asc(), users::user_id.asc()))
                    } else {
                        query.order(($col.is_null().asc(), $col.desc(), users::user_id.asc()))
                    }
                };
            }
            let query = match sort.field {
                UserSortField::CreatedAt => by!(users::created_at),
                UserSortField::UpdatedAt => by!(users::updated_at),
                UserSortField::LastLogin => by!(users::last_login),
                UserSortField::LoginsCount => by!(users::logins_count),
                UserSortField::Email => by!(users::email_normalized),
                UserSortField::Username => by!(users::username),
                UserSortField::Name => by!(users::name),
                UserSortField::Nickname => by!(users::nickname),
                UserSortField::GivenName => by!(users::given_name),
                UserSortField::FamilyName => by!(users::family_name),
                UserSortField::UserId => by!(users::user_id),
            };
            let rows: Vec<UserRow> =
                query.offset(page.offset()).limit(page.limit()).select(UserRow::as_select()).load(&mut conn)?;
            let total = if with_total { filtered(terms).count().get_result(&mut conn)? } else { rows.len() as i64 };
            Ok(Page { items: rows.into_iter().map(User::from).collect(), request: page, total })
        })
    }

    fn update_user(
        &self,
        user_id: &str,
        patch: UserPatch,
        by: Attribution,
        at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> StoreResult<User> {
        self.run(|| {
            let (row, _) = self.write_deciding(|conn| {
                let mut audit = audit.clone();
                let row = load_user(conn, user_id)?;
                let was_blocked = row.blocked;
                let password_hash = patch.password_hash.clone().or(row.password_hash.clone());
                let mut user = User::from(row);
                patch.apply_to(&mut user);
                let updated = UserRow {
                    user_id: user.user_id.clone(),
                    email_normalized: normalize_email(&user.email),
                    email: user.email,
                    email_verified: user.email_verified,
                    name: user.name,
                    given_name: user.given_name,
                    family_name: user.family_name,
                    nickname: user.nickname,
                    picture: user.picture,
                    password_hash,
                    blocked: user.blocked,
                    app_metadata: to_json(&user.app_metadata),
                    user_metadata: to_json(&user.user_metadata),
                    external_id: user.external_id,
                    created_at: millis(user.created_at),
                    updated_at: millis(at),
                    created_by: user.created_by,
                    modified_by: by.by.clone(),
                    created_on_behalf_by: user.created_on_behalf_by,
                    modified_on_behalf_by: by.on_behalf_by.clone(),
                    last_login: user.last_login.map(millis),
                    last_ip: user.last_ip,
                    logins_count: user.logins_count,
                    username: user.username,
                };
                diesel::update(users::table.find(user_id))
                    .set(&updated)
                    .execute(conn)
                    .map_err(|e| user_conflict(e.into()))?;
                // What the update did, said in its event (and so in its webhooks).
                if updated.blocked && !was_blocked {
                    end_everything_of(conn, user_id, millis(at))?;
                    mark(&mut audit, guise_core::outbox::DETAIL_USER_BLOCKED);
                }
                if patch.password_hash.is_some() {
                    mark(&mut audit, guise_core::outbox::DETAIL_PASSWORD_CHANGED);
                }
                Ok((updated, vec![audit]))
            })?;
            Ok(row.into())
        })
    }

    fn delete_user(&self, user_id: &str, audit: AuditEvent) -> StoreResult<()> {
        self.run(|| {
            self.write(vec![audit.clone()], |conn| {
                match diesel::delete(users::table.find(user_id)).execute(conn)? {
                    0 => Err(StoreError::NotFound.into()),
                    _ => Ok(()),
                }
            })?;
            Ok(())
        })
    }

    fn password_hash(&self, user_id: &str) -> StoreResult<Option<String>> {
        self.run(|| {
            Ok(users::table.find(user_id).select(users::password_hash).first::<Option<String>>(&mut self.conn()?)?)
        })
    }

    fn record_login(&self, user_id: &str, at: DateTime<Utc>, ip: Option<&str>) -> StoreResult<()> {
        self.run(|| {
            diesel::update(users::table.find(user_id))
                .set((
                    users::last_login.eq(Some(millis(at))),
                    users::last_ip.eq(ip),
                    users::logins_count.eq(users::logins_count + 1),
                ))
                .execute(&mut self.conn()?)?;
            Ok(())
        })
    }
}
