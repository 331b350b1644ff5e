//! Users: the stored profile, what creating and patching one may change, and the
//! validation rules (email shape, metadata objects) that apply before any store call.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub user_id: String,
    pub email: String,
    /// A second login identifier, unique when present; stored lower-cased.
    pub username: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub nickname: Option<String>,
    pub picture: Option<String>,
    pub blocked: bool,
    pub app_metadata: Map<String, Value>,
    pub user_metadata: Map<String, Value>,
    pub external_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Who the change was attributed to; with act-as, the user acted as.
    pub created_by: Option<String>,
    pub modified_by: Option<String>,
    /// Who really made the change when it was made on someone's behalf.
    pub created_on_behalf_by: Option<String>,
    pub modified_on_behalf_by: Option<String>,
    pub last_login: Option<DateTime<Utc>>,
    pub last_ip: Option<String>,
    pub logins_count: i64,
    /// Whether a password is set (the hash itself never leaves the store).
    pub has_password: bool,
}

impl User {
    /// The value of a user field named in a SAML or WS-Federation mapping. Both
    /// protocols read mapped attributes through this function alone.
    ///
    /// Metadata comes from `app_metadata`, which only administrators write, unless the
    /// mapping says otherwise: a bare key (`role`) or an explicit `app_metadata.<key>`.
    /// `user_metadata` is what users edit themselves (`PATCH /api/v2/me`), so it is read
    /// only when a mapping names `user_metadata.<key>` explicitly, and then the value is
    /// user-controlled: a relying party must not base authorization on it. The fixed
    /// fields are `user_id`, `email`/`upn`, `email_verified` (administrator-controlled)
    /// and the display fields `name`, `given_name`, `family_name`, `nickname`,
    /// `picture` — which `/me` also lets the user change (display only, never for
    /// authorization).
    pub fn mapped_field(&self, name: &str) -> Option<String> {
        let metadata = |map: &Map<String, Value>, key: &str| {
            map.get(key).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        match name {
            "user_id" => Some(self.user_id.clone()),
            "email" | "upn" => Some(self.email.clone()),
            "name" => self.name.clone(),
            "nickname" => self.nickname.clone(),
            "given_name" => self.given_name.clone(),
            "family_name" => self.family_name.clone(),
            "picture" => self.picture.clone(),
            "email_verified" => Some(self.email_verified.to_string()),
            other => match (other.strip_prefix("app_metadata."), other.strip_prefix("user_metadata.")) {
                (Some(key), _) => metadata(&self.app_metadata, key),
                (_, Some(key)) => metadata(&self.user_metadata, key),
                // Never a fallback to user_metadata: a user could assert anything.
                (None, None) => metadata(&self.app_metadata, other),
            },
        }
    }
}

/// Who a write is attributed to, and on whose behalf it was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    pub by: Option<String>,
    pub on_behalf_by: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub user_id: String,
    pub email: String,
    /// A second login identifier, unique when present; stored lower-cased.
    pub username: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub nickname: Option<String>,
    pub picture: Option<String>,
    pub blocked: bool,
    pub app_metadata: Map<String, Value>,
    pub user_metadata: Map<String, Value>,
    pub external_id: Option<String>,
    /// An argon2id PHC string; hashing happens before the store sees it.
    pub password_hash: Option<String>,
    pub attribution: Attribution,
    pub created_at: DateTime<Utc>,
}

impl NewUser {
    /// A user with `user_id` and `email` and every other field at its default: email not
    /// verified, no profile, no password, nothing in metadata, not blocked.
    pub fn new(user_id: impl Into<String>, email: impl Into<String>, at: DateTime<Utc>) -> Self {
        NewUser {
            user_id: user_id.into(),
            email: email.into(),
            username: None,
            email_verified: false,
            name: None,
            given_name: None,
            family_name: None,
            nickname: None,
            picture: None,
            blocked: false,
            app_metadata: Map::new(),
            user_metadata: Map::new(),
            external_id: None,
            password_hash: None,
            attribution: Attribution::default(),
            created_at: at,
        }
    }

    /// A user known by email, as Auth0 names one that is given no profile: the name is
    /// the email, the nickname its local part.
    pub fn named_after_email(user_id: impl Into<String>, email: &str, at: DateTime<Utc>) -> Self {
        NewUser {
            name: Some(email.to_owned()),
            nickname: email.split('@').next().map(str::to_owned),
            ..NewUser::new(user_id, email, at)
        }
    }
}

/// A partial update. `Some(None)` clears an optional field; metadata objects are merged
/// key by key, a `null` value deleting the key (Auth0's semantics).
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub username: Option<Option<String>>,
    pub email_verified: Option<bool>,
    pub name: Option<Option<String>>,
    pub given_name: Option<Option<String>>,
    pub family_name: Option<Option<String>>,
    pub nickname: Option<Option<String>>,
    pub picture: Option<Option<String>>,
    pub blocked: Option<bool>,
    pub app_metadata: Option<Map<String, Value>>,
    pub user_metadata: Option<Map<String, Value>>,
    pub external_id: Option<Option<String>>,
    pub password_hash: Option<String>,
}

impl UserPatch {
    pub fn is_empty(&self) -> bool {
        self.email.is_none()
            && self.username.is_none()
            && self.email_verified.is_none()
            && self.name.is_none()
            && self.given_name.is_none()
            && self.family_name.is_none()
            && self.nickname.is_none()
            && self.picture.is_none()
            && self.blocked.is_none()
            && self.app_metadata.is_none()
            && self.user_metadata.is_none()
            && self.external_id.is_none()
            && self.password_hash.is_none()
    }

    /// Apply this patch to `user` in memory (the store persists the result).
    pub fn apply_to(&self, user: &mut User) {
        if let Some(email) = &self.email {
            user.email = email.clone();
        }
        if let Some(v) = self.email_verified {
            user.email_verified = v;
        }
        for (field, value) in [
            (&mut user.name, &self.name),
            (&mut user.given_name, &self.given_name),
            (&mut user.family_name, &self.family_name),
            (&mut user.nickname, &self.nickname),
            (&mut user.picture, &self.picture),
            (&mut user.external_id, &self.external_id),
            (&mut user.username, &self.username),
        ] {
            if let Some(v) = value {
                field.clone_from(v);
            }
        }
        if let Some(v) = self.blocked {
            user.blocked = v;
        }
        if let Some(m) = &self.app_metadata {
            merge_metadata(&mut user.app_metadata, m);
        }
        if let Some(m) = &self.user_metadata {
            merge_metadata(&mut user.user_metadata, m);
        }
        if self.password_hash.is_some() {
            user.has_password = true;
        }
    }
}

/// Merge `patch` into `target` one level deep; `null` removes a key; an empty object
/// clears all of it (as Auth0 documents for `user_metadata: {}`).
pub fn merge_metadata(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    if patch.is_empty() {
        target.clear();
    }
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            target.insert(key.clone(), value.clone());
        }
    }
}

/// Why a user's fields were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserValidationError {
    #[error("Object didn't pass validation for format email: {0}")]
    InvalidEmail(String),
    #[error("external_id must be 1 to 255 characters without control characters")]
    InvalidExternalId,
    #[error(
        "username must be 1 to 128 characters: ASCII letters, digits and _ + - . ! # $ ' ^ ` ~ (no @, which would make it an email)"
    )]
    InvalidUsername,
    #[error("{0} is too long (maximum {1} characters)")]
    TooLong(&'static str, usize),
}

/// Validate an email address; returns it trimmed. Case is kept for display, uniqueness
/// is checked on [`normalize_email`].
pub fn validate_email(email: &str) -> Result<String, UserValidationError> {
    let trimmed = email.trim();
    if trimmed.len() > 254 || !email_address::EmailAddress::is_valid(trimmed) || !trimmed.contains('.') {
        return Err(UserValidationError::InvalidEmail(email.to_owned()));
    }
    Ok(trimmed.to_owned())
}

/// The form under which emails are unique: lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Validate a username and return the form it is stored and looked up under
/// (lower-cased: `Ada` and `ada` are one username). It may not contain `@`, so a login
/// identifier is an email exactly when it contains one.
pub fn validate_username(username: &str) -> Result<String, UserValidationError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_+-.!#$'^`~".contains(c);
    if username.is_empty() || username.chars().count() > 128 || !username.chars().all(allowed) {
        return Err(UserValidationError::InvalidUsername);
    }
    Ok(username.to_lowercase())
}

pub fn validate_external_id(id: &str) -> Result<(), UserValidationError> {
    if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
        return Err(UserValidationError::InvalidExternalId);
    }
    Ok(())
}

pub fn validate_length(field: &'static str, value: &str, max: usize) -> Result<(), UserValidationError> {
    if value.chars().count() > max {
        return Err(UserValidationError::TooLong(field, max));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails_are_validated_and_normalised() {
        assert_eq!(validate_email(" Ada@Example.com ").as_deref(), Ok("Ada@Example.com"));
        assert!(validate_email("not-an-email").is_err());
        assert!(validate_email("a@b").is_err());
        assert_eq!(normalize_email("Ada@Example.COM"), "ada@example.com");
    }

    fn user_with_metadata(app: Value, own: Value) -> User {
        let now = chrono::DateTime::from_timestamp(0, 0).unwrap_or_default();
        User {
            user_id: "guise|1".into(),
            email: "ada@example.com".into(),
            username: None,
            email_verified: true,
            name: Some("Ada".into()),
            given_name: None,
            family_name: None,
            nickname: None,
            picture: None,
            blocked: false,
            app_metadata: app.as_object().cloned().unwrap_or_default(),
            user_metadata: own.as_object().cloned().unwrap_or_default(),
            external_id: None,
            created_at: now,
            updated_at: now,
            created_by: None,
            modified_by: None,
            created_on_behalf_by: None,
            modified_on_behalf_by: None,
            last_login: None,
            last_ip: None,
            logins_count: 0,
            has_password: true,
        }
    }

    #[test]
    fn mapped_fields_read_user_metadata_only_when_named() {
        let user =
            user_with_metadata(json!({ "plan": "gold", "level": 3 }), json!({ "role": "admin", "plan": "free" }));
        assert_eq!(user.mapped_field("email").as_deref(), Some("ada@example.com"));
        assert_eq!(user.mapped_field("upn").as_deref(), Some("ada@example.com"));
        // A bare key reads app_metadata only; it never falls back to user_metadata.
        assert_eq!(user.mapped_field("role"), None);
        assert_eq!(user.mapped_field("plan").as_deref(), Some("gold"));
        assert_eq!(user.mapped_field("level").as_deref(), Some("3"));
        assert_eq!(user.mapped_field("app_metadata.plan").as_deref(), Some("gold"));
        assert_eq!(user.mapped_field("app_metadata.role"), None);
        // Explicitly named, user_metadata is read.
        assert_eq!(user.mapped_field("user_metadata.role").as_deref(), Some("admin"));
        assert_eq!(user.mapped_field("user_metadata.plan").as_deref(), Some("free"));
        assert_eq!(user.mapped_field("user_metadata.missing"), None);
        // Profile fields cannot be shadowed by metadata of the same name.
        let shadow = user_with_metadata(json!({}), json!({ "email": "eve@example.com" }));
        assert_eq!(shadow.mapped_field("email").as_deref(), Some("ada@example.com"));
    }

    #[test]
    fn usernames_are_validated_and_lower_cased() {
        assert_eq!(validate_username("Ada.L_1").as_deref(), Ok("ada.l_1"));
        for bad in ["", "ada@example.com", "ada lovelace", "ada\n", &"a".repeat(129), "<script>"] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn metadata_merges_and_null_deletes() {
        let mut target = json!({"a": 1, "b": 2}).as_object().cloned().unwrap_or_default();
        let patch = json!({"b": null, "c": 3}).as_object().cloned().unwrap_or_default();
        merge_metadata(&mut target, &patch);
        assert_eq!(Value::Object(target.clone()), json!({"a": 1, "c": 3}));
        merge_metadata(&mut target, &Map::new());
        assert!(target.is_empty(), "an empty object clears");
    }
}
