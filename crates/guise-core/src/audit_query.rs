//! The log search language behind `GET /api/v2/logs?q=`: `type:CODE`, `user_id:ID`,
//! `client_id:ID` and `date:[FROM TO TO]` (dates as `YYYY-MM-DD` or RFC 3339, `*` for
//! open), ANDed.

use crate::store::AuditFilter;
use chrono::{DateTime, NaiveDate, Utc};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogQueryError {
    #[error("unsupported term '{0}' (use type:, user_id:, client_id: or date:[FROM TO TO])")]
    UnsupportedTerm(String),
    #[error("invalid date '{0}'")]
    InvalidDate(String),
    #[error("query is too long")]
    TooLong,
}

fn parse_date(s: &str, end_of_day: bool) -> Result<Option<DateTime<Utc>>, LogQueryError> {
    if s == "*" {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| LogQueryError::InvalidDate(s.to_owned()))?;
    let time = if end_of_day { day.and_hms_milli_opt(23, 59, 59, 999) } else { day.and_hms_opt(0, 0, 0) };
    Ok(time.map(|t| t.and_utc()))
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s)
}

pub fn parse_log_query(q: &str) -> Result<AuditFilter, LogQueryError> {
    if q.len() > crate::user_query::MAX_QUERY_LEN {
        return Err(LogQueryError::TooLong);
    }
    let mut filter = AuditFilter::default();
    let mut rest = q.to_owned();
    // The date range holds spaces; take it out before splitting the rest on whitespace.
    if let Some(start) = rest.find("date:[") {
        let end = rest[start..]
            .find(']')
            .map(|e| start + e)
            .ok_or_else(|| LogQueryError::UnsupportedTerm("date:[".into()))?;
        let range = rest[start + 6..end].to_owned();
        let parts: Vec<&str> = range.split_whitespace().collect();
        let [from, "TO", to] = parts.as_slice() else {
            return Err(LogQueryError::UnsupportedTerm(format!("date:[{range}]")));
        };
        filter.from = parse_date(from, false)?;
        filter.to = parse_date(to, true)?;
        rest.replace_range(start..=end, " ");
    }
    for token in rest.split_whitespace().filter(|t| *t != "AND") {
        let (field, value) = token.split_once(':').ok_or_else(|| LogQueryError::UnsupportedTerm(token.to_owned()))?;
        let value = unquote(value).to_owned();
        match field {
            "type" => filter.event_type = Some(value),
            "user_id" => filter.user_id = Some(value),
            "client_id" => filter.client_id = Some(value),
            _ => return Err(LogQueryError::UnsupportedTerm(token.to_owned())),
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_terms_and_ranges() -> Result<(), LogQueryError> {
        let f = parse_log_query(r#"type:sapi AND user_id:"guise|abc" date:[2026-01-01 TO *]"#)?;
        assert_eq!(f.event_type.as_deref(), Some("sapi"));
        assert_eq!(f.user_id.as_deref(), Some("guise|abc"));
        assert_eq!(f.from.map(|d| d.to_rfc3339()), Some("2026-01-01T00:00:00+00:00".to_owned()));
        assert_eq!(f.to, None);
        Ok(())
    }

    #[test]
    fn rejects_unknown_terms_and_bad_dates() {
        assert!(parse_log_query("secret:x").is_err());
        assert!(parse_log_query("date:[yesterday TO today]").is_err());
        assert!(parse_log_query("date:[2026-01-01 TO").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, failure_persistence: None, ..Default::default() })]

        /// Any `q=` is answered with a filter or an error, never a panic.
        #[test]
        fn any_query_is_answered(q in "(date:\\[|\\]| TO |[a-z_]{1,8}:|\"|\\*| |AND|.){0,40}") {
            let _ = parse_log_query(&q);
        }
    }
}
