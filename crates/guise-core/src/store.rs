//! Narrow storage traits, one per need, so each protocol depends only on what it uses.
//! Every mutating call takes the audit events that describe it; implementations append
//! them in the same transaction, so no write lands unaudited.

use crate::audit::{AuditEvent, AuditRecord, ChainBreak};
use crate::authorization::{
    AccessTokenRecord, AuthorizationCode, AuthorizationRequestRecord, CodeRedemption, RefreshRedemption,
    RefreshTokenRecord,
};
use crate::bewit::BewitKey;
use crate::client::{Client, ClientFilter, ClientPatch};
use crate::console::ConsoleSession;
use crate::outbox::{AttemptOutcome, Delivery, DeliveryFilter, Webhook, WebhookPatch};
use crate::page::{Page, PageRequest};
use crate::permission::{Permission, PermissionSet};
use crate::role::{ClientGrant, Role, RolePatch};
use crate::session::Session;
use crate::signing_key::SigningKey;
use crate::throttle::ThrottleCounter;
use crate::user::{Attribution, NewUser, User, UserPatch};
use crate::user_query::{UserSort, UserTerm};
use chrono::{DateTime, Utc};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken; the string names what collided (safe to show).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A reference to something that does not exist (e.g. an unknown role id).
    #[error("invalid reference: {0}")]
    InvalidReference(String),
    /// The database failed. The message is for logs only, never for responses.
    #[error("storage backend error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A lookup's result with `NotFound` as `None`.
pub fn found<T>(result: StoreResult<T>) -> StoreResult<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

pub trait UserStore: Send + Sync {
    fn create_user(&self, user: NewUser, audit: AuditEvent) -> StoreResult<User>;
    fn user_by_id(&self, user_id: &str) -> StoreResult<User>;
    fn user_by_email(&self, email: &str) -> StoreResult<User>;
    /// The user with this username (compared lower-cased).
    fn user_by_username(&self, username: &str) -> StoreResult<User>;
    fn user_by_external_id(&self, external_id: &str) -> StoreResult<User>;
    fn search_users(
        &self,
        terms: &[UserTerm],
        sort: UserSort,
        page: PageRequest,
        with_total: bool,
    ) -> StoreResult<Page<User>>;
    fn update_user(
        &self,
        user_id: &str,
        patch: UserPatch,
        by: Attribution,
        at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> StoreResult<User>;
    fn delete_user(&self, user_id: &str, audit: AuditEvent) -> StoreResult<()>;
    /// The stored argon2id PHC string, for the login check only.
    fn password_hash(&self, user_id: &str) -> StoreResult<Option<String>>;
    /// Count a successful login.
    fn record_login(&self, user_id: &str, at: DateTime<Utc>, ip: Option<&str>) -> StoreResult<()>;
}

pub trait ClientStore: Send + Sync {
    fn create_client(&self, client: Client, audit: AuditEvent) -> StoreResult<Client>;
    fn client_by_id(&self, client_id: &str) -> StoreResult<Client>;
    fn list_clients(&self, filter: &ClientFilter, page: PageRequest, with_total: bool) -> StoreResult<Page<Client>>;
    /// Every client's `web_origins` (one list per client), for the CORS checks.
    fn web_origins(&self) -> StoreResult<std::sync::Arc<Vec<Vec<String>>>>;
    fn update_client(
        &self,
        client_id: &str,
        patch: ClientPatch,
        at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> StoreResult<Client>;
    fn set_client_secret_hash(
        &self,
        client_id: &str,
        hash: &str,
        at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> StoreResult<Client>;
    fn delete_client(&self, client_id: &str, audit: AuditEvent) -> StoreResult<()>;

    /// Every client, in `list_clients` order (clients are few; this pages through them).
    fn all_clients(&self) -> StoreResult<Vec<Client>> {
        crate::page::every_page(|page| self.list_clients(&ClientFilter::default(), page, false))
    }
}

pub trait ClientGrantStore: Send + Sync {
    fn create_client_grant(&self, grant: ClientGrant, audit: AuditEvent) -> StoreResult<ClientGrant>;
    fn client_grant(&self, client_id: &str, audience: &str) -> StoreResult<ClientGrant>;
    fn client_grant_by_id(&self, id: &str) -> StoreResult<ClientGrant>;
    fn list_client_grants(
        &self,
        client_id: Option<&str>,
        audience: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Page<ClientGrant>>;
    fn update_client_grant_scope(&self, id: &str, scope: Vec<String>, audit: AuditEvent) -> StoreResult<ClientGrant>;
    fn delete_client_grant(&self, id: &str, audit: AuditEvent) -> StoreResult<()>;

    /// What a client's grant on `audience` gives it now, as permissions (nothing when it
    /// holds no grant there, or no longer exists: grants go with their client).
    fn granted_on(&self, client_id: &str, audience: &str) -> StoreResult<PermissionSet> {
        match self.client_grant(client_id, audience) {
            Ok(grant) => Ok(PermissionSet::on(audience, grant.scope)),
            Err(StoreError::NotFound) => Ok(PermissionSet::default()),
            Err(e) => Err(e),
        }
    }
}

pub trait RoleStore: Send + Sync {
    fn create_role(&self, role: Role, audit: AuditEvent) -> StoreResult<Role>;
    fn role_by_id(&self, id: &str) -> StoreResult<Role>;
    fn list_roles(&self, name_filter: Option<&str>, page: PageRequest) -> StoreResult<Page<Role>>;
    fn update_role(&self, id: &str, patch: RolePatch, audit: AuditEvent) -> StoreResult<Role>;
    fn delete_role(&self, id: &str, audit: AuditEvent) -> StoreResult<()>;
    fn role_permissions(&self, role_id: &str, page: PageRequest) -> StoreResult<Page<Permission>>;
    fn add_role_permissions(&self, role_id: &str, permissions: &[Permission], audit: AuditEvent) -> StoreResult<()>;
    fn remove_role_permissions(&self, role_id: &str, permissions: &[Permission], audit: AuditEvent) -> StoreResult<()>;
    fn role_users(&self, role_id: &str, page: PageRequest) -> StoreResult<Page<User>>;
    fn user_roles(&self, user_id: &str, page: PageRequest) -> StoreResult<Page<Role>>;
    fn assign_roles(&self, user_id: &str, role_ids: &[String], audit: AuditEvent) -> StoreResult<()>;
    fn unassign_roles(&self, user_id: &str, role_ids: &[String], audit: AuditEvent) -> StoreResult<()>;
    /// Give a role to several users at once: all of them or, if one is unknown, none.
    fn add_role_users(&self, role_id: &str, user_ids: &[String], audit: Vec<AuditEvent>) -> StoreResult<()>;
    /// Every permission a user holds through its roles, with the roles granting each.
    fn user_permissions(&self, user_id: &str) -> StoreResult<Vec<(Permission, Vec<Role>)>>;

    /// The permission set a user holds (the union over its roles).
    fn user_permission_set(&self, user_id: &str) -> StoreResult<PermissionSet> {
        Ok(PermissionSet::new(self.user_permissions(user_id)?.into_iter().map(|(p, _)| p)))
    }
}

pub trait SigningKeyStore: Send + Sync {
    /// Keys that are active or retiring (retired keys are not returned).
    fn published_keys(&self) -> StoreResult<Vec<SigningKey>>;
    /// Insert `new_key` as the active key for its algorithm; the previous active key of
    /// that algorithm becomes retiring until `retire_previous_after`.
    fn rotate_in(
        &self,
        new_key: SigningKey,
        retire_previous_after: DateTime<Utc>,
        audit: AuditEvent,
    ) -> StoreResult<()>;
    /// Install `key` as the active key for its algorithm unless one exists already
    /// (checked under the write lock, so nodes starting together install one key).
    fn install_first_key(&self, key: SigningKey, audit: AuditEvent) -> StoreResult<bool>;
    /// Attach a certificate to a key that has none (SAML and WS-Fed publish keys as certificates).
    fn set_certificate(&self, kid: &str, certificate_pem: &str) -> StoreResult<()>;
    /// Mark retiring keys whose time has passed as retired; returns how many.
    fn retire_expired(&self, now: DateTime<Utc>) -> StoreResult<usize>;
}

/// Filters for reading the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub event_type: Option<String>,
    /// Events whose subject, actor or on-behalf-of is this user.
    pub user_id: Option<String>,
    /// Events whose actor is this user or client.
    pub actor_id: Option<String>,
    /// Events done on behalf of this user (acting as them, or impersonating).
    pub on_behalf_of: Option<String>,
    pub client_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only rows after this sequence number (checkpoint pagination).
    pub after_seq: Option<i64>,
    /// Newest first (default) or oldest first.
    pub ascending: bool,
}

pub trait AuditStore: Send + Sync {
    /// Append events outside any other write (e.g. a refused request).
    fn append(&self, events: Vec<AuditEvent>) -> StoreResult<Vec<AuditRecord>>;
    fn audit_records(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
        with_total: bool,
    ) -> StoreResult<Page<AuditRecord>>;
    fn audit_record(&self, seq: i64) -> StoreResult<AuditRecord>;
    /// Walk the whole chain. `Ok(Ok(rows))` when intact, `Ok(Err(break))` naming the
    /// first bad row.
    fn verify_chain(&self) -> StoreResult<Result<u64, ChainBreak>>;
}

/// Browser sessions (SSO at guise).
pub trait SessionStore: Send + Sync {
    /// Store a new session under the hash of its cookie value.
    fn create_session(&self, id_hash: &str, session: Session, audit: AuditEvent) -> StoreResult<()>;
    fn session_by_cookie_hash(&self, id_hash: &str) -> StoreResult<Session>;
    fn session_by_sid(&self, sid: &str) -> StoreResult<Session>;
    fn touch_session(&self, sid: &str, last_seen: DateTime<Utc>, idle_expires_at: DateTime<Utc>) -> StoreResult<()>;
    /// End a session and revoke every token minted from it.
    fn end_session(&self, sid: &str, at: DateTime<Utc>, audit: AuditEvent) -> StoreResult<()>;
    fn sessions_of_user(&self, user_id: &str) -> StoreResult<Vec<Session>>;
    /// End up to `limit` sessions that expired by `now` and have someone to tell — an
    /// impersonation (its user and webhooks), a client with a back-channel logout URI,
    /// or a SAML login — each at the moment it expired, audited (`guise_impersonation_ended` with
    /// reason `expired`, or `guise_session_expired`). Returns how many ended.
    fn end_expired_sessions(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<usize>;
}

/// Authorization requests waiting for login or consent.
pub trait AuthorizationRequestStore: Send + Sync {
    fn save_authorization_request(&self, record: AuthorizationRequestRecord) -> StoreResult<()>;
    fn authorization_request(&self, id: &str) -> StoreResult<AuthorizationRequestRecord>;
    fn delete_authorization_request(&self, id: &str) -> StoreResult<()>;
}

pub trait ConsentStore: Send + Sync {
    /// The scopes a user has consented to for a client, if any.
    fn consented_scopes(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Vec<String>>>;
    fn grant_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &[String],
        at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> StoreResult<()>;
}

pub trait AuthorizationCodeStore: Send + Sync {
    fn save_code(&self, code: AuthorizationCode) -> StoreResult<()>;
    /// Consume a code atomically. A second consumption revokes every token issued from
    /// the code and reports the replay.
    fn consume_code(&self, code_hash: &str, now: DateTime<Utc>) -> StoreResult<CodeRedemption>;
    /// After recording the tokens issued from a redeemed code: `true` when no replay was
    /// detected meanwhile. A replay that raced the issuing may have missed the new rows,
    /// so on `false` everything issued from the code has been revoked here, and the
    /// tokens must not be handed out. Ordered against `consume_code`'s replay on the
    /// code's row, so under any interleaving one of the two revokes them.
    fn confirm_code_issue(&self, code_hash: &str, now: DateTime<Utc>) -> StoreResult<bool>;
}

pub trait TokenStore: Send + Sync {
    fn save_refresh_token(&self, record: RefreshTokenRecord) -> StoreResult<()>;
    /// Use a refresh token atomically: first use rotates, reuse revokes its family.
    fn use_refresh_token(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<RefreshRedemption>;
    /// After recording the tokens a rotation of `token_hash` issued: `true` when the
    /// family was not revoked meanwhile (a reuse); on `false` the family, now including
    /// the new rows, has been revoked, and the tokens must not be handed out.
    fn confirm_rotation(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    fn refresh_token(&self, token_hash: &str) -> StoreResult<RefreshTokenRecord>;
    /// Revoke a refresh token's whole family (and the access tokens minted from it).
    fn revoke_refresh_family(&self, family_id: &str, now: DateTime<Utc>) -> StoreResult<()>;
    fn record_access_token(&self, record: AccessTokenRecord) -> StoreResult<()>;
    fn access_token_record(&self, jti: &str) -> StoreResult<AccessTokenRecord>;
    fn revoke_access_token(&self, jti: &str, now: DateTime<Utc>) -> StoreResult<()>;
}

pub trait LoginThrottleStore: Send + Sync {
    fn throttle_counter(&self, key: &str) -> StoreResult<Option<ThrottleCounter>>;
    fn save_throttle_counter(&self, counter: &ThrottleCounter) -> StoreResult<()>;
    fn clear_throttle_counter(&self, key: &str) -> StoreResult<()>;
}

/// Bewit keys and the single-use record of redeemed bewits.
pub trait BewitStore: Send + Sync {
    fn bewit_keys(&self) -> StoreResult<Vec<(BewitKey, bool)>>;
    /// Install `key` as the active key unless one is active (checked under the write lock).
    fn install_first_bewit_key(&self, key: BewitKey, at: DateTime<Utc>, audit: AuditEvent) -> StoreResult<bool>;
    /// Make `key` the active key; earlier keys still verify until their bewits expire.
    fn rotate_bewit_key(&self, key: BewitKey, at: DateTime<Utc>, audit: AuditEvent) -> StoreResult<()>;
    /// Record a redemption. `Ok(false)` when `jti` was redeemed before (a replay).
    /// `expires_at` is the bewit's `exp`; the record is kept until `expires_at` plus
    /// [`crate::bewit::MAX_CLOCK_SKEW_SECS`] by the clock passed as `at`.
    fn redeem_once(&self, jti: &str, at: DateTime<Utc>, expires_at: DateTime<Utc>) -> StoreResult<bool>;
}

/// Which impersonation sessions to list.
#[derive(Debug, Clone, Default)]
pub struct ImpersonationFilter {
    pub impersonator_id: Option<String>,
    pub user_id: Option<String>,
}

/// The support console's sessions. Bookkeeping of a relying party (guise's own console
/// client): the login and the token behind a row are audited where they happen.
pub trait ConsoleSessionStore: Send + Sync {
    /// Store a new session (and drop the ones expired by `now`).
    fn create_console_session(&self, session: &ConsoleSession, now: DateTime<Utc>) -> StoreResult<()>;
    /// The unexpired session whose cookie hashes to `id_hash`.
    fn console_session(&self, id_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<ConsoleSession>>;
    fn delete_console_session(&self, id_hash: &str) -> StoreResult<()>;
}

pub trait ImpersonationSessionStore: Send + Sync {
    /// Live impersonation sessions at `now`, newest first.
    fn impersonation_sessions(&self, filter: &ImpersonationFilter, now: DateTime<Utc>) -> StoreResult<Vec<Session>>;
}

/// Removing rows nothing can use any more.
pub trait Housekeeping: Send + Sync {
    /// Delete expired pending requests, codes, access-token records, throttle counters,
    /// and sessions past their end by more than `keep_sessions_for` (offline refresh
    /// tokens still name their session). Returns how many rows went.
    fn purge_expired(&self, now: DateTime<Utc>, keep_sessions_for: chrono::Duration) -> StoreResult<usize>;
}

/// Webhook subscriptions (the Management API's `/webhooks`).
pub trait WebhookStore: Send + Sync {
    fn create_webhook(&self, webhook: Webhook, audit: AuditEvent) -> StoreResult<Webhook>;
    fn webhook(&self, id: &str) -> StoreResult<Webhook>;
    fn list_webhooks(&self, page: PageRequest) -> StoreResult<Page<Webhook>>;
    fn update_webhook(
        &self,
        id: &str,
        patch: WebhookPatch,
        at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> StoreResult<Webhook>;
    fn delete_webhook(&self, id: &str, audit: AuditEvent) -> StoreResult<()>;
}

/// The outbox's deliveries. They are written by the store itself, in the transaction of
/// the audited change that causes them (an impersonation event, a blocked user, an ended
/// session); these calls deliver, list and retry them.
pub trait OutboxStore: Send + Sync {
    /// Claim the oldest due delivery for one attempt: it is leased until `lease_until`
    /// (no other node attempts it meanwhile) and its attempt counted. `None` when nothing
    /// is due.
    fn claim_delivery(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> StoreResult<Option<Delivery>>;
    /// Record how a claimed attempt went: delivered, retried at `retry_at`, or (no
    /// `retry_at`) given up.
    fn record_attempt(
        &self,
        id: &str,
        outcome: &AttemptOutcome,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    fn deliveries(&self, filter: &DeliveryFilter, page: PageRequest) -> StoreResult<Page<Delivery>>;
    fn delivery(&self, id: &str) -> StoreResult<Delivery>;
    /// Make a delivery due now again (failed or pending; not one delivered), with a fresh
    /// count of attempts.
    fn retry_delivery(&self, id: &str, now: DateTime<Utc>, audit: AuditEvent) -> StoreResult<Delivery>;
}
