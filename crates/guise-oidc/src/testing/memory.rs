//! An in-memory implementation of the store traits the token endpoint needs, mirroring
//! the diesel implementations in `guise-store`: the same `NotFound` / `Conflict` /
//! `InvalidReference` errors, the same cascades, single-use codes whose replay revokes
//! their descendants, rotating refresh families whose reuse revokes the family, and an
//! audit log hash-chained with [`guise_core::audit::chain_hash`].
//!
//! All tables sit behind one mutex, like one database. Every call runs as a transaction:
//! on error the tables are restored to what they were before the call, and a write's
//! audit events are appended only when the write succeeded.
//!
//! Times are stored as the database stores them, at millisecond precision.

use chrono::{DateTime, Utc};
use guise_core::StoreError;
use guise_core::audit::{AuditEvent, AuditRecord, ChainBreak, ChainVerifier, GENESIS_HASH, chain_hash};
use guise_core::authorization::{
    AccessTokenRecord, AuthorizationCode, CodeRedemption, RefreshRedemption, RefreshTokenRecord,
};
use guise_core::client::{Client, ClientFilter, ClientPatch};
use guise_core::page::{Page, PageRequest};
use guise_core::permission::Permission;
use guise_core::role::{ClientGrant, Role, RolePatch};
use guise_core::session::Session;
use guise_core::store::{
    AuditFilter, AuditStore, AuthorizationCodeStore, ClientGrantStore, ClientStore, RoleStore, SessionStore,
    StoreResult, TokenStore, UserStore,
};
use guise_core::user::{Attribution, NewUser, User, UserPatch, normalize_email};
use guise_core::user_query::{Match, UserField, UserSort, UserSortField, UserTerm};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

/// A time as it comes back from the database (Unix milliseconds).
fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or_default()
}

fn conflict(what: &str) -> StoreError {
    StoreError::Conflict(format!("UNIQUE constraint failed: {what}"))
}

fn missing_reference(what: &str) -> StoreError {
    StoreError::InvalidReference(format!("FOREIGN KEY constraint failed: {what}"))
}

/// One page of `items` (already ordered), with the total when asked for — or, as the
/// diesel stores do when it is not, the number of items on the page.
fn paged<T>(items: Vec<T>, page: PageRequest, with_total: bool) -> Page<T> {
    let total = items.len() as i64;
    let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
    let limit = usize::try_from(page.limit()).unwrap_or(usize::MAX);
    let items: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
    let total = if with_total { total } else { items.len() as i64 };
    Page { items, request: page, total }
}

#[derive(Debug, Clone)]
struct UserRow {
    user: User,
    password_hash: Option<String>,
}

#[derive(Debug, Clone)]
struct Tables {
    users: BTreeMap<String, UserRow>,
    clients: BTreeMap<String, Client>,
    client_grants: BTreeMap<String, ClientGrant>,
    roles: BTreeMap<String, Role>,
    /// `(role_id, permission)`, ordered as the diesel store lists them.
    role_permissions: BTreeSet<(String, Permission)>,
    /// `(user_id, role_id)`.
    user_roles: BTreeSet<(String, String)>,
    /// Keyed by the hash of the session cookie.
    sessions: BTreeMap<String, Session>,
    codes: BTreeMap<String, AuthorizationCode>,
    refresh_tokens: BTreeMap<String, RefreshTokenRecord>,
    access_tokens: BTreeMap<String, AccessTokenRecord>,
    audit_log: Vec<AuditRecord>,
    /// `(last_seq, last_hash)`: the chain head, kept apart from the rows as the database does.
    audit_head: (i64, String),
}

impl Default for Tables {
    fn default() -> Self {
        Self {
            users: BTreeMap::new(),
            clients: BTreeMap::new(),
            client_grants: BTreeMap::new(),
            roles: BTreeMap::new(),
            role_permissions: BTreeSet::new(),
            user_roles: BTreeSet::new(),
            sessions: BTreeMap::new(),
            codes: BTreeMap::new(),
            refresh_tokens: BTreeMap::new(),
            access_tokens: BTreeMap::new(),
            audit_log: Vec::new(),
            audit_head: (0, GENESIS_HASH.to_owned()),
        }
    }
}

impl Tables {
    /// Append events at the head of the chain, as `guise_store::connection::append_events`.
    fn append_events(&mut self, events: Vec<AuditEvent>) -> Vec<AuditRecord> {
        let (mut seq, mut prev_hash) = self.audit_head.clone();
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            seq += 1;
            let details_text = event.details.to_string();
            let hash = chain_hash(seq, &event, &details_text, &prev_hash);
            let mut stored = event.clone();
            stored.occurred_at = ms(stored.occurred_at);
            stored.details = serde_json::from_str(&details_text).unwrap_or_default();
            self.audit_log.push(AuditRecord {
                seq,
                event: stored,
                details_text: details_text.clone(),
                prev_hash: prev_hash.clone(),
                hash: hash.clone(),
            });
            let prev = std::mem::replace(&mut prev_hash, hash.clone());
            records.push(AuditRecord { seq, event, details_text, prev_hash: prev, hash });
        }
        self.audit_head = (seq, prev_hash);
        records
    }

    fn user(&self, user_id: &str) -> StoreResult<&UserRow> {
        self.users.get(user_id).ok_or(StoreError::NotFound)
    }

    fn role(&self, role_id: &str) -> StoreResult<&Role> {
        self.roles.get(role_id).ok_or(StoreError::NotFound)
    }

    /// The uniqueness rules of `users`, for a row about to be written as `user_id`.
    fn check_user_unique(
        &self,
        user_id: &str,
        email: &str,
        external_id: Option<&str>,
        username: Option<&str>,
    ) -> StoreResult<()> {
        let email = normalize_email(email);
        for other in self.users.values().filter(|r| r.user.user_id != user_id) {
            if normalize_email(&other.user.email) == email {
                return Err(StoreError::Conflict("The user already exists.".into()));
            }
            if external_id.is_some() && other.user.external_id.as_deref() == external_id {
                return Err(StoreError::Conflict("The external_id is already in use".into()));
            }
            if username.is_some() && other.user.username.as_deref() == username {
                return Err(StoreError::Conflict("The username is already in use".into()));
            }
        }
        Ok(())
    }

    fn check_role_name_unique(&self, role_id: &str, name: &str) -> StoreResult<()> {
        if self.roles.values().any(|r| r.id != role_id && r.name == name) {
            return Err(StoreError::Conflict("A role with this name already exists".into()));
        }
        Ok(())
    }

    /// `ON DELETE CASCADE` from `users`.
    fn cascade_user(&mut self, user_id: &str) {
        self.user_roles.retain(|(u, _)| u != user_id);
        self.sessions.retain(|_, s| s.user_id != user_id);
        self.codes.retain(|_, c| c.user_id != user_id);
        self.refresh_tokens.retain(|_, r| r.user_id != user_id);
    }

    /// `ON DELETE CASCADE` from `clients`.
    fn cascade_client(&mut self, client_id: &str) {
        self.client_grants.retain(|_, g| g.client_id != client_id);
        self.codes.retain(|_, c| c.client_id != client_id);
        self.refresh_tokens.retain(|_, r| r.client_id != client_id);
    }

    fn revoke_family(&mut self, family_id: &str, at: DateTime<Utc>) {
        for r in self.refresh_tokens.values_mut().filter(|r| r.family_id == family_id && r.revoked_at.is_none()) {
            r.revoked_at = Some(at);
        }
        for a in self
            .access_tokens
            .values_mut()
            .filter(|a| a.family_id.as_deref() == Some(family_id) && a.revoked_at.is_none())
        {
            a.revoked_at = Some(at);
        }
    }

    /// Revoke every refresh token (with its family) and access token descended from a code.
    fn revoke_descendants_of_code(&mut self, code_hash: &str, at: DateTime<Utc>) {
        let families: BTreeSet<String> = self
            .refresh_tokens
            .values()
            .filter(|r| r.code_hash.as_deref() == Some(code_hash))
            .map(|r| r.family_id.clone())
            .collect();
        for r in self.refresh_tokens.values_mut().filter(|r| families.contains(&r.family_id) && r.revoked_at.is_none())
        {
            r.revoked_at = Some(at);
        }
        for a in self.access_tokens.values_mut().filter(|a| a.revoked_at.is_none()) {
            let from_code = a.code_hash.as_deref() == Some(code_hash);
            let from_family = a.family_id.as_ref().is_some_and(|f| families.contains(f));
            if from_code || from_family {
                a.revoked_at = Some(at);
            }
        }
    }
}

fn user_matches(user: &User, term: &UserTerm) -> bool {
    match term {
        UserTerm::Text(text) => {
            normalize_email(&user.email).contains(text.as_str())
                || user.name.as_ref().is_some_and(|n| n.to_lowercase().contains(text.as_str()))
        }
        UserTerm::Flag(UserField::Blocked, v) => user.blocked == *v,
        UserTerm::Flag(_, v) => user.email_verified == *v,
        UserTerm::Field(field, m) => {
            let email = normalize_email(&user.email);
            let value: Option<&str> = match field {
                UserField::UserId => Some(&user.user_id),
                UserField::Email => Some(&email),
                UserField::Username => user.username.as_deref(),
                UserField::Name => user.name.as_deref(),
                UserField::GivenName => user.given_name.as_deref(),
                UserField::FamilyName => user.family_name.as_deref(),
                UserField::Nickname => user.nickname.as_deref(),
                UserField::ExternalId => user.external_id.as_deref(),
                UserField::Blocked | UserField::EmailVerified => return true,
            };
            match (value, m) {
                (None, _) => false,
                (Some(v), Match::Exact(expected)) => v == expected,
                (Some(v), Match::Prefix(prefix)) => v.to_lowercase().starts_with(&prefix.to_lowercase()),
            }
        }
    }
}

fn audit_matches(record: &AuditRecord, filter: &AuditFilter) -> bool {
    let e = &record.event;
    let millis = e.occurred_at.timestamp_millis();
    filter.event_type.as_ref().is_none_or(|t| &e.event_type == t)
        && filter.user_id.as_deref().is_none_or(|u| {
            e.subject.as_deref() == Some(u) || e.actor.id() == Some(u) || e.on_behalf_of.as_deref() == Some(u)
        })
        && filter.client_id.as_ref().is_none_or(|c| e.client_id.as_ref() == Some(c))
        && filter.from.is_none_or(|from| millis >= from.timestamp_millis())
        && filter.to.is_none_or(|to| millis <= to.timestamp_millis())
        && filter.after_seq.is_none_or(|after| record.seq > after)
}

fn stored_user(mut user: User) -> User {
    user.created_at = ms(user.created_at);
    user.updated_at = ms(user.updated_at);
    user.last_login = user.last_login.map(ms);
    user
}

fn stored_client(mut client: Client) -> Client {
    client.created_at = ms(client.created_at);
    client.updated_at = ms(client.updated_at);
    client
}

fn stored_session(mut s: Session) -> Session {
    s.created_at = ms(s.created_at);
    s.auth_time = ms(s.auth_time);
    s.last_seen = ms(s.last_seen);
    s.idle_expires_at = ms(s.idle_expires_at);
    s.absolute_expires_at = ms(s.absolute_expires_at);
    s.ended_at = None;
    s
}

/// The in-memory store: every trait `TokenContext` needs, over one set of tables.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Run `change` as a transaction: all of it or, on error, none of it.
    fn transaction<T>(&self, change: impl FnOnce(&mut Tables) -> StoreResult<T>) -> StoreResult<T> {
        let mut tables = self.lock();
        let before = tables.clone();
        let outcome = change(&mut tables);
        if outcome.is_err() {
            *tables = before;
        }
        outcome
    }

    /// A write and the audit events describing it, appended only if the write succeeds.
    fn write<T>(&self, events: Vec<AuditEvent>, change: impl FnOnce(&mut Tables) -> StoreResult<T>) -> StoreResult<T> {
        self.transaction(|tables| {
            let value = change(tables)?;
            tables.append_events(events);
            Ok(value)
        })
    }

    fn read<T>(&self, query: impl FnOnce(&Tables) -> StoreResult<T>) -> StoreResult<T> {
        query(&self.lock())
    }

    /// Edit a stored audit row behind the store's back, as someone with database access
    /// could; for tests of chain verification.
    pub fn tamper_with_audit_row(&self, seq: i64, edit: impl FnOnce(&mut AuditRecord)) -> StoreResult<()> {
        let mut tables = self.lock();
        let row = tables.audit_log.iter_mut().find(|r| r.seq == seq).ok_or(StoreError::NotFound)?;
        edit(row);
        Ok(())
    }

    /// Delete the newest audit row behind the store's back (the head stays where it was).
    pub fn cut_last_audit_row(&self) -> StoreResult<AuditRecord> {
        self.lock().audit_log.pop().ok_or(StoreError::NotFound)
    }
}

impl UserStore for MemoryStore {
    fn create_user(&self, new: NewUser, audit: AuditEvent) -> StoreResult<User> {
        self.write(vec![audit], |t| {
            if t.users.contains_key(&new.user_id) {
                return Err(StoreError::Conflict("The user already exists.".into()));
            }
            t.check_user_unique(&new.user_id, &new.email, new.external_id.as_deref(), new.username.as_deref())?;
            let user = stored_user(User {
                user_id: new.user_id,
                email: new.email,
                username: new.username,
                email_verified: new.email_verified,
                name: new.name,
                given_name: new.given_name,
                family_name: new.family_name,
                nickname: new.nickname,
                picture: new.picture,
                blocked: new.blocked,
                app_metadata: new.app_metadata,
                user_metadata: new.user_metadata,
                external_id: new.external_id,
                created_at: new.created_at,
                updated_at: new.created_at,
                created_by: new.attribution.by.clone(),
                modified_by: new.attribution.by,
                created_on_behalf_by: new.attribution.on_behalf_by.clone(),
                modified_on_behalf_by: new.attribution.on_behalf_by,
                last_login: None,
                last_ip: None,
                logins_count: 0,
                has_password: new.password_hash.is_some(),
            });
            t.users.insert(user.user_id.clone(), UserRow { user: user.clone(), password_hash: new.password_hash });
            Ok(user)
        })
    }

    fn user_by_id(&self, user_id: &str) -> StoreResult<User> {
        self.read(|t| Ok(t.user(user_id)?.user.clone()))
    }

    fn user_by_email(&self, email: &str) -> StoreResult<User> {
        let email = normalize_email(email);
        self.read(|t| {
            t.users
                .values()
                .find(|r| normalize_email(&r.user.email) == email)
                .map(|r| r.user.clone())
                .ok_or(StoreError::NotFound)
        })
    }

    fn user_by_username(&self, username: &str) -> StoreResult<User> {
        let username = username.to_lowercase();
        self.read(|t| {
            t.users
                .values()
                .find(|r| r.user.username.as_deref() == Some(username.as_str()))
                .map(|r| r.user.clone())
                .ok_or(StoreError::NotFound)
        })
    }

    fn user_by_external_id(&self, external_id: &str) -> StoreResult<User> {
        self.read(|t| {
            t.users
                .values()
                .find(|r| r.user.external_id.as_deref() == Some(external_id))
                .map(|r| r.user.clone())
                .ok_or(StoreError::NotFound)
        })
    }

    fn search_users(
        &self,
        terms: &[UserTerm],
        sort: UserSort,
        page: PageRequest,
        with_total: bool,
    ) -> StoreResult<Page<User>> {
        self.read(|t| {
            let mut found: Vec<User> = t
                .users
                .values()
                .filter(|r| terms.iter().all(|term| user_matches(&r.user, term)))
                .map(|r| r.user.clone())
                .collect();
            // As the database sorts: missing values last, ties by user id.
            let key = |u: &User| -> Option<String> {
                match sort.field {
                    UserSortField::CreatedAt => Some(format!("{:020}", u.created_at.timestamp_millis())),
                    UserSortField::UpdatedAt => Some(format!("{:020}", u.updated_at.timestamp_millis())),
                    UserSortField::LastLogin => u.last_login.map(|t| format!("{:020}", t.timestamp_millis())),
                    UserSortField::LoginsCount => Some(format!("{:020}", u.logins_count)),
                    UserSortField::Email => Some(normalize_email(&u.email)),
                    UserSortField::Username => u.username.clone(),
                    UserSortField::Name => u.name.clone(),
                    UserSortField::Nickname => u.nickname.clone(),
                    UserSortField::GivenName => u.given_name.clone(),
                    UserSortField::FamilyName => u.family_name.clone(),
                    UserSortField::UserId => Some(u.user_id.clone()),
                }
            };
            found.sort_by(|a, b| {
                let by_key = match (key(a), key(b)) {
                    (Some(x), Some(y)) if sort.ascending => x.cmp(&y),
                    (Some(x), Some(y)) => y.cmp(&x),
                    (x, y) => x.is_none().cmp(&y.is_none()),
                };
                by_key.then_with(|| a.user_id.cmp(&b.user_id))
            });
            Ok(paged(found, page, with_total))
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
        self.write(vec![audit], |t| {
            let row = t.user(user_id)?.clone();
            let password_hash = patch.password_hash.clone().or(row.password_hash);
            let mut user = row.user;
            patch.apply_to(&mut user);
            user.updated_at = at;
            user.modified_by = by.by;
            user.modified_on_behalf_by = by.on_behalf_by;
            user.has_password = password_hash.is_some();
            t.check_user_unique(user_id, &user.email, user.external_id.as_deref(), user.username.as_deref())?;
            let user = stored_user(user);
            t.users.insert(user_id.to_owned(), UserRow { user: user.clone(), password_hash });
            Ok(user)
        })
    }

    fn delete_user(&self, user_id: &str, audit: AuditEvent) -> StoreResult<()> {
        self.write(vec![audit], |t| {
            t.users.remove(user_id).ok_or(StoreError::NotFound)?;
            t.cascade_user(user_id);
            Ok(())
        })
    }

    fn password_hash(&self, user_id: &str) -> StoreResult<Option<String>> {
        self.read(|t| Ok(t.user(user_id)?.password_hash.clone()))
    }

    fn record_login(&self, user_id: &str, at: DateTime<Utc>, ip: Option<&str>) -> StoreResult<()> {
        self.transaction(|t| {
            // An UPDATE of no row: not an error.
            if let Some(row) = t.users.get_mut(user_id) {
                row.user.last_login = Some(ms(at));
                row.user.last_ip = ip.map(str::to_owned);
                row.user.logins_count += 1;
            }
            Ok(())
        })
    }
}

impl ClientStore for MemoryStore {
    fn create_client(&self, client: Client, audit: AuditEvent) -> StoreResult<Client> {
        self.write(vec![audit], |t| {
            if t.clients.contains_key(&client.client_id) {
                return Err(conflict("clients.client_id"));
            }
            t.clients.insert(client.client_id.clone(), stored_client(client.clone()));
            Ok(client)
        })
    }

    fn client_by_id(&self, client_id: &str) -> StoreResult<Client> {
        self.read(|t| t.clients.get(client_id).cloned().ok_or(StoreError::NotFound))
    }

    fn list_clients(&self, filter: &ClientFilter, page: PageRequest, with_total: bool) -> StoreResult<Page<Client>> {
        self.read(|t| {
            let mut all: Vec<Client> = t
                .clients
                .values()
                .filter(|c| filter.app_types.is_empty() || filter.app_types.contains(&c.app_type))
                .filter(|c| filter.is_first_party.is_none_or(|f| f == c.is_first_party))
                .cloned()
                .collect();
            all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.client_id.cmp(&b.client_id)));
            Ok(paged(all, page, with_total))
        })
    }

    fn update_client(
        &self,
        client_id: &str,
        patch: ClientPatch,
        at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> StoreResult<Client> {
        self.write(vec![audit], |t| {
            let mut client = t.clients.get(client_id).cloned().ok_or(StoreError::NotFound)?;
            patch.apply_to(&mut client);
            client.updated_at = at;
            t.clients.insert(client_id.to_owned(), stored_client(client.clone()));
            Ok(client)
        })
    }

    fn set_client_secret_hash(
        &self,
        client_id: &str,
        hash: &str,
        at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> StoreResult<Client> {
        self.write(vec![audit], |t| {
            let mut client = t.clients.get(client_id).cloned().ok_or(StoreError::NotFound)?;
            client.client_secret_hash = Some(hash.to_owned());
            client.updated_at = at;
            t.clients.insert(client_id.to_owned(), stored_client(client.clone()));
            Ok(client)
        })
    }

    fn delete_client(&self, client_id: &str, audit: AuditEvent) -> StoreResult<()> {
        self.write(vec![audit], |t| {
            t.clients.remove(client_id).ok_or(StoreError::NotFound)?;
            t.cascade_client(client_id);
            Ok(())
        })
    }
}

impl ClientGrantStore for MemoryStore {
    fn create_client_grant(&self, grant: ClientGrant, audit: AuditEvent) -> StoreResult<ClientGrant> {
        self.write(vec![audit], |t| {
            if t.client_grants.contains_key(&grant.id) {
                return Err(conflict("client_grants.id"));
            }
            if t.client_grants.values().any(|g| g.client_id == grant.client_id && g.audience == grant.audience) {
                return Err(conflict("client_grants.client_id, client_grants.audience"));
            }
            if !t.clients.contains_key(&grant.client_id) {
                return Err(missing_reference("client_grants.client_id"));
            }
            let mut stored = grant.clone();
            stored.created_at = ms(stored.created_at);
            t.client_grants.insert(grant.id.clone(), stored);
            Ok(grant)
        })
    }

    fn client_grant(&self, client_id: &str, audience: &str) -> StoreResult<ClientGrant> {
        self.read(|t| {
            t.client_grants
                .values()
                .find(|g| g.client_id == client_id && g.audience == audience)
                .cloned()
                .ok_or(StoreError::NotFound)
        })
    }

    fn client_grant_by_id(&self, id: &str) -> StoreResult<ClientGrant> {
        self.read(|t| t.client_grants.get(id).cloned().ok_or(StoreError::NotFound))
    }

    fn list_client_grants(
        &self,
        client_id: Option<&str>,
        audience: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<ClientGrant>> {
        self.read(|t| {
            let mut found: Vec<ClientGrant> = t
                .client_grants
                .values()
                .filter(|g| client_id.is_none_or(|c| g.client_id == c) && audience.is_none_or(|a| g.audience == a))
                .cloned()
                .collect();
            found.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
            Ok(paged(found, page, true))
        })
    }

    fn update_client_grant_scope(&self, id: &str, scope: Vec<String>, audit: AuditEvent) -> StoreResult<ClientGrant> {
        self.write(vec![audit], |t| {
            let grant = t.client_grants.get_mut(id).ok_or(StoreError::NotFound)?;
            grant.scope = scope;
            Ok(grant.clone())
        })
    }

    fn delete_client_grant(&self, id: &str, audit: AuditEvent) -> StoreResult<()> {
        self.write(vec![audit], |t| t.client_grants.remove(id).map(drop).ok_or(StoreError::NotFound))
    }
}

impl RoleStore for MemoryStore {
    fn create_role(&self, role: Role, audit: AuditEvent) -> StoreResult<Role> {
        self.write(vec![audit], |t| {
            if t.roles.contains_key(&role.id) {
                return Err(StoreError::Conflict("A role with this name already exists".into()));
            }
            t.check_role_name_unique(&role.id, &role.name)?;
            t.roles.insert(role.id.clone(), role.clone());
            Ok(role)
        })
    }

    fn role_by_id(&self, id: &str) -> StoreResult<Role> {
        self.read(|t| t.role(id).cloned())
    }

    fn list_roles(&self, name_filter: Option<&str>, page: PageRequest) -> StoreResult<Page<Role>> {
        let name_filter = name_filter.map(str::to_lowercase);
        self.read(|t| {
            let mut found: Vec<Role> = t
                .roles
                .values()
                .filter(|r| name_filter.as_ref().is_none_or(|n| &r.name.to_lowercase() == n))
                .cloned()
                .collect();
            found.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(paged(found, page, true))
        })
    }

    fn update_role(&self, id: &str, patch: RolePatch, audit: AuditEvent) -> StoreResult<Role> {
        self.write(vec![audit], |t| {
            let mut role = t.role(id)?.clone();
            if let Some(name) = patch.name {
                role.name = name;
            }
            if let Some(description) = patch.description {
                role.description = description;
            }
            t.check_role_name_unique(id, &role.name)?;
            t.roles.insert(id.to_owned(), role.clone());
            Ok(role)
        })
    }

    fn delete_role(&self, id: &str, audit: AuditEvent) -> StoreResult<()> {
        self.write(vec![audit], |t| {
            t.roles.remove(id).ok_or(StoreError::NotFound)?;
            t.role_permissions.retain(|(r, _)| r != id);
            t.user_roles.retain(|(_, r)| r != id);
            Ok(())
        })
    }

    fn role_permissions(&self, role_id: &str, page: PageRequest) -> StoreResult<Page<Permission>> {
        self.read(|t| {
            t.role(role_id)?;
            let found: Vec<Permission> =
                t.role_permissions.iter().filter(|(r, _)| r == role_id).map(|(_, p)| p.clone()).collect();
            Ok(paged(found, page, true))
        })
    }

    fn add_role_permissions(&self, role_id: &str, permissions: &[Permission], audit: AuditEvent) -> StoreResult<()> {
        self.write(vec![audit], |t| {
            t.role(role_id)?;
            for p in permissions {
                t.role_permissions.insert((role_id.to_owned(), p.clone()));
            }
            Ok(())
        })
    }

    fn remove_role_permissions(&self, role_id: &str, permissions: &[Permission], audit: AuditEvent) -> StoreResult<()> {
        self.write(vec![audit], |t| {
            t.role(role_id)?;
            for p in permissions {
                t.role_permissions.remove(&(role_id.to_owned(), p.clone()));
            }
            Ok(())
        })
    }

    fn role_users(&self, role_id: &str, page: PageRequest) -> StoreResult<Page<User>> {
        self.read(|t| {
            t.role(role_id)?;
            // `user_roles` iterates by user id: the diesel store's order.
            let found: Vec<User> = t
                .user_roles
                .iter()
                .filter(|(_, r)| r == role_id)
                .filter_map(|(u, _)| t.users.get(u).map(|row| row.user.clone()))
                .collect();
            Ok(paged(found, page, true))
        })
    }

    fn user_roles(&self, user_id: &str, page: PageRequest) -> StoreResult<Page<Role>> {
        self.read(|t| {
            t.user(user_id)?;
            let mut found: Vec<Role> = t
                .user_roles
                .iter()
                .filter(|(u, _)| u == user_id)
                .filter_map(|(_, r)| t.roles.get(r).cloned())
                .collect();
            found.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(paged(found, page, true))
        })
    }

    fn assign_roles(&self, user_id: &str, role_ids: &[String], audit: AuditEvent) -> StoreResult<()> {
        self.write(vec![audit], |t| {
            t.user(user_id)?;
            for role_id in role_ids {
                if !t.roles.contains_key(role_id) {
                    return Err(StoreError::InvalidReference(format!("role {role_id} does not exist")));
                }
                t.user_roles.insert((user_id.to_owned(), role_id.clone()));
            }
            Ok(())
        })
    }

    fn unassign_roles(&self, user_id: &str, role_ids: &[String], audit: AuditEvent) -> StoreResult<()> {
        self.write(vec![audit], |t| {
            t.user(user_id)?;
            t.user_roles.retain(|(u, r)| u != user_id || !role_ids.contains(r));
            Ok(())
        })
    }

    fn add_role_users(&self, role_id: &str, user_ids: &[String], audit: Vec<AuditEvent>) -> StoreResult<()> {
        self.write(audit, |t| {
            t.role(role_id)?;
            for user_id in user_ids {
                t.user(user_id)?;
                t.user_roles.insert((user_id.clone(), role_id.to_owned()));
            }
            Ok(())
        })
    }

    fn user_permissions(&self, user_id: &str) -> StoreResult<Vec<(Permission, Vec<Role>)>> {
        self.read(|t| {
            let mut by_permission: BTreeMap<Permission, Vec<Role>> = BTreeMap::new();
            for (_, role_id) in t.user_roles.iter().filter(|(u, _)| u == user_id) {
                let Some(role) = t.roles.get(role_id) else { continue };
                for (_, permission) in t.role_permissions.iter().filter(|(r, _)| r == role_id) {
                    by_permission.entry(permission.clone()).or_default().push(role.clone());
                }
            }
            Ok(by_permission.into_iter().collect())
        })
    }
}

impl AuditStore for MemoryStore {
    fn append(&self, events: Vec<AuditEvent>) -> StoreResult<Vec<AuditRecord>> {
        self.transaction(|t| Ok(t.append_events(events)))
    }

    fn audit_records(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
        with_total: bool,
    ) -> StoreResult<Page<AuditRecord>> {
        self.read(|t| {
            let mut found: Vec<AuditRecord> =
                t.audit_log.iter().filter(|r| audit_matches(r, filter)).cloned().collect();
            if !filter.ascending {
                found.reverse();
            }
            Ok(paged(found, page, with_total))
        })
    }

    fn audit_record(&self, seq: i64) -> StoreResult<AuditRecord> {
        self.read(|t| t.audit_log.iter().find(|r| r.seq == seq).cloned().ok_or(StoreError::NotFound))
    }

    fn verify_chain(&self) -> StoreResult<Result<u64, ChainBreak>> {
        self.read(|t| {
            let mut rows: Vec<&AuditRecord> = t.audit_log.iter().collect();
            rows.sort_by_key(|r| r.seq);
            let mut verifier = ChainVerifier::default();
            for row in rows {
                if let Err(broken) = verifier.check(row) {
                    return Ok(Err(broken));
                }
            }
            // Rows cut from the end leave the chain intact but behind its recorded head.
            let (head_seq, head_hash) = &t.audit_head;
            let (seq, hash) = verifier.head();
            if seq != *head_seq || hash != head_hash {
                return Ok(Err(ChainBreak::BrokenLink { seq: seq + 1 }));
            }
            Ok(Ok(verifier.rows))
        })
    }
}

impl SessionStore for MemoryStore {
    fn create_session(&self, id_hash: &str, session: Session, audit: AuditEvent) -> StoreResult<()> {
        self.write(vec![audit], |t| {
            if t.sessions.contains_key(id_hash) {
                return Err(conflict("sessions.id_hash"));
            }
            if t.sessions.values().any(|s| s.sid == session.sid) {
                return Err(conflict("sessions.sid"));
            }
            if !t.users.contains_key(&session.user_id) {
                return Err(missing_reference("sessions.user_id"));
            }
            t.sessions.insert(id_hash.to_owned(), stored_session(session));
            Ok(())
        })
    }

    fn session_by_cookie_hash(&self, id_hash: &str) -> StoreResult<Session> {
        self.read(|t| t.sessions.get(id_hash).cloned().ok_or(StoreError::NotFound))
    }

    fn session_by_sid(&self, sid: &str) -> StoreResult<Session> {
        self.read(|t| t.sessions.values().find(|s| s.sid == sid).cloned().ok_or(StoreError::NotFound))
    }

    fn touch_session(&self, sid: &str, last_seen: DateTime<Utc>, idle_expires_at: DateTime<Utc>) -> StoreResult<()> {
        self.transaction(|t| {
            for s in t.sessions.values_mut().filter(|s| s.sid == sid) {
                s.last_seen = ms(last_seen);
                s.idle_expires_at = ms(idle_expires_at);
            }
            Ok(())
        })
    }

    fn end_session(&self, sid: &str, at: DateTime<Utc>, audit: AuditEvent) -> StoreResult<()> {
        let at = ms(at);
        self.write(vec![audit], |t| {
            let session =
                t.sessions.values_mut().find(|s| s.sid == sid && s.ended_at.is_none()).ok_or(StoreError::NotFound)?;
            session.ended_at = Some(at);
            for r in t.refresh_tokens.values_mut().filter(|r| r.sid == sid && r.revoked_at.is_none()) {
                r.revoked_at = Some(at);
            }
            for a in t.access_tokens.values_mut().filter(|a| a.sid == sid && a.revoked_at.is_none()) {
                a.revoked_at = Some(at);
            }
            Ok(())
        })
    }

    fn sessions_of_user(&self, user_id: &str) -> StoreResult<Vec<Session>> {
        self.read(|t| {
            let mut found: Vec<Session> = t.sessions.values().filter(|s| s.user_id == user_id).cloned().collect();
            found.sort_by_key(|s| std::cmp::Reverse(s.created_at));
            Ok(found)
        })
    }
}

impl AuthorizationCodeStore for MemoryStore {
    fn save_code(&self, code: AuthorizationCode) -> StoreResult<()> {
        self.transaction(|t| {
            if t.codes.contains_key(&code.code_hash) {
                return Err(conflict("authorization_codes.code_hash"));
            }
            if !t.clients.contains_key(&code.client_id) {
                return Err(missing_reference("authorization_codes.client_id"));
            }
            if !t.users.contains_key(&code.user_id) {
                return Err(missing_reference("authorization_codes.user_id"));
            }
            let stored = AuthorizationCode {
                auth_time: ms(code.auth_time),
                created_at: ms(code.created_at),
                expires_at: ms(code.expires_at),
                consumed_at: None,
                ..code
            };
            t.codes.insert(stored.code_hash.clone(), stored);
            Ok(())
        })
    }

    fn consume_code(&self, code_hash: &str, now: DateTime<Utc>) -> StoreResult<CodeRedemption> {
        let now = ms(now);
        self.transaction(|t| {
            let code = t.codes.get_mut(code_hash).ok_or(StoreError::NotFound)?;
            // The conditional claim is the single-use guarantee.
            if code.consumed_at.is_none() {
                code.consumed_at = Some(now);
                return Ok(CodeRedemption::Redeemed(code.clone()));
            }
            let code = code.clone();
            t.revoke_descendants_of_code(code_hash, now);
            Ok(CodeRedemption::Replayed(code))
        })
    }
}

impl TokenStore for MemoryStore {
    fn save_refresh_token(&self, record: RefreshTokenRecord) -> StoreResult<()> {
        self.transaction(|t| {
            if t.refresh_tokens.contains_key(&record.token_hash) {
                return Err(conflict("refresh_tokens.token_hash"));
            }
            if !t.clients.contains_key(&record.client_id) {
                return Err(missing_reference("refresh_tokens.client_id"));
            }
            if !t.users.contains_key(&record.user_id) {
                return Err(missing_reference("refresh_tokens.user_id"));
            }
            let stored = RefreshTokenRecord {
                auth_time: ms(record.auth_time),
                created_at: ms(record.created_at),
                family_expires_at: ms(record.family_expires_at),
                used_at: None,
                revoked_at: None,
                ..record
            };
            t.refresh_tokens.insert(stored.token_hash.clone(), stored);
            Ok(())
        })
    }

    fn use_refresh_token(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<RefreshRedemption> {
        let now = ms(now);
        self.transaction(|t| {
            let record = t.refresh_tokens.get_mut(token_hash).ok_or(StoreError::NotFound)?;
            if record.used_at.is_none() && record.revoked_at.is_none() && record.family_expires_at > now {
                record.used_at = Some(now);
                return Ok(RefreshRedemption::Rotated(record.clone()));
            }
            let record = record.clone();
            if record.revoked_at.is_none() && record.used_at.is_some() {
                t.revoke_family(&record.family_id, now);
                return Ok(RefreshRedemption::Reused(record));
            }
            Ok(RefreshRedemption::Dead(record))
        })
    }

    fn refresh_token(&self, token_hash: &str) -> StoreResult<RefreshTokenRecord> {
        self.read(|t| t.refresh_tokens.get(token_hash).cloned().ok_or(StoreError::NotFound))
    }

    fn revoke_refresh_family(&self, family_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.transaction(|t| {
            t.revoke_family(family_id, ms(now));
            Ok(())
        })
    }

    fn record_access_token(&self, record: AccessTokenRecord) -> StoreResult<()> {
        self.transaction(|t| {
            if t.access_tokens.contains_key(&record.jti) {
                return Err(conflict("access_tokens.jti"));
            }
            let stored = AccessTokenRecord { expires_at: ms(record.expires_at), revoked_at: None, ..record };
            t.access_tokens.insert(stored.jti.clone(), stored);
            Ok(())
        })
    }

    fn access_token_record(&self, jti: &str) -> StoreResult<AccessTokenRecord> {
        self.read(|t| t.access_tokens.get(jti).cloned().ok_or(StoreError::NotFound))
    }

    fn revoke_access_token(&self, jti: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.transaction(|t| {
            // An UPDATE of no row (unknown or already revoked): not an error.
            if let Some(record) = t.access_tokens.get_mut(jti).filter(|a| a.revoked_at.is_none()) {
                record.revoked_at = Some(ms(now));
            }
            Ok(())
        })
    }
}
