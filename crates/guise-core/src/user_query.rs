//! The user search language behind `GET /api/v2/users?q=`: plain words match email and
//! name; `field:value` terms (value optionally quoted, `*` suffix for a prefix match)
//! filter one field. Terms are ANDed; a literal `AND` between terms is accepted.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserField {
    UserId,
    Email,
    Username,
    Name,
    GivenName,
    FamilyName,
    Nickname,
    ExternalId,
    Blocked,
    EmailVerified,
}

impl UserField {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "user_id" => Self::UserId,
            "email" => Self::Email,
            "username" => Self::Username,
            "name" => Self::Name,
            "given_name" => Self::GivenName,
            "family_name" => Self::FamilyName,
            "nickname" => Self::Nickname,
            "external_id" => Self::ExternalId,
            "blocked" => Self::Blocked,
            "email_verified" => Self::EmailVerified,
            _ => return None,
        })
    }
}

/// The order of a user search (`sort=field:1|-1`); by default newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserSort {
    pub field: UserSortField,
    pub ascending: bool,
}

impl Default for UserSort {
    fn default() -> Self {
        Self { field: UserSortField::CreatedAt, ascending: false }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSortField {
    CreatedAt,
    UpdatedAt,
    LastLogin,
    LoginsCount,
    Email,
    Username,
    Name,
    Nickname,
    GivenName,
    FamilyName,
    UserId,
}

impl UserSortField {
    /// The names `sort` accepts, as Auth0 spells the fields.
    pub const NAMES: &'static [&'static str] = &[
        "created_at",
        "updated_at",
        "last_login",
        "logins_count",
        "email",
        "username",
        "name",
        "nickname",
        "given_name",
        "family_name",
        "user_id",
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            "last_login" => Self::LastLogin,
            "logins_count" => Self::LoginsCount,
            "email" => Self::Email,
            "username" => Self::Username,
            "name" => Self::Name,
            "nickname" => Self::Nickname,
            "given_name" => Self::GivenName,
            "family_name" => Self::FamilyName,
            "user_id" => Self::UserId,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserTerm {
    /// Case-insensitive substring of email or name.
    Text(String),
    /// A text field compared case-insensitively (email) or exactly (others).
    Field(UserField, Match),
    Flag(UserField, bool),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("unknown field '{0}' in query")]
    UnknownField(String),
    #[error("field '{0}' takes true or false")]
    NotABoolean(String),
    #[error("unterminated quote in query")]
    UnterminatedQuote,
    #[error("query is too long")]
    TooLong,
}

pub const MAX_QUERY_LEN: usize = 1024;

pub fn parse_user_query(q: &str) -> Result<Vec<UserTerm>, QueryError> {
    if q.len() > MAX_QUERY_LEN {
        return Err(QueryError::TooLong);
    }
    tokenize(q)?.into_iter().filter(|t| t != "AND").map(|token| parse_term(&token)).collect()
}

fn parse_term(token: &str) -> Result<UserTerm, QueryError> {
    let Some((field, value)) = token.split_once(':').filter(|(f, _)| !f.is_empty() && !f.contains('"')) else {
        return Ok(UserTerm::Text(unquote(token).to_lowercase()));
    };
    let field_kind = UserField::parse(field).ok_or_else(|| QueryError::UnknownField(field.to_owned()))?;
    let value = unquote(value);
    match field_kind {
        UserField::Blocked | UserField::EmailVerified => match value {
            "true" => Ok(UserTerm::Flag(field_kind, true)),
            "false" => Ok(UserTerm::Flag(field_kind, false)),
            _ => Err(QueryError::NotABoolean(field.to_owned())),
        },
        _ => {
            let value = if matches!(field_kind, UserField::Email | UserField::Username) {
                value.to_lowercase()
            } else {
                value.to_owned()
            };
            Ok(UserTerm::Field(
                field_kind,
                match value.strip_suffix('*') {
                    Some(prefix) => Match::Prefix(prefix.to_owned()),
                    None => Match::Exact(value),
                },
            ))
        }
    }
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s)
}

/// Split on whitespace outside double quotes, keeping the quotes.
fn tokenize(q: &str) -> Result<Vec<String>, QueryError> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if quoted {
        return Err(QueryError::UnterminatedQuote);
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_fields() {
        let terms = parse_user_query(r#"Ada email:"Ada@Example.com" AND name:Lov* blocked:false"#);
        assert_eq!(
            terms,
            Ok(vec![
                UserTerm::Text("ada".into()),
                UserTerm::Field(UserField::Email, Match::Exact("ada@example.com".into())),
                UserTerm::Field(UserField::Name, Match::Prefix("Lov".into())),
                UserTerm::Flag(UserField::Blocked, false),
            ])
        );
    }

    #[test]
    fn rejects_bad_queries() {
        assert_eq!(parse_user_query("password:x"), Err(QueryError::UnknownField("password".into())));
        assert_eq!(parse_user_query("blocked:maybe"), Err(QueryError::NotABoolean("blocked".into())));
        assert_eq!(parse_user_query("name:\"open"), Err(QueryError::UnterminatedQuote));
    }

    #[test]
    fn quoted_text_with_spaces_is_one_term() {
        assert_eq!(
            parse_user_query("name:\"Ada Lovelace\""),
            Ok(vec![UserTerm::Field(UserField::Name, Match::Exact("Ada Lovelace".into()))])
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, failure_persistence: None, ..Default::default() })]

        /// Any `q=` is answered with a filter or an error, never a panic.
        #[test]
        fn any_query_is_answered(q in "(date:\\[|\\]| TO |[a-z_]{1,8}:|\"|\\*| |AND|.){0,40}") {
            let _ = parse_user_query(&q);
        }
    }
}
