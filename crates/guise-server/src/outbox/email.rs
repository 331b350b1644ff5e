//! Email notices to the impersonated user, over SMTP (lettre): who impersonates them,
//! why, in which application, and for how long. The text comes from
//! `templates/notices/` or the configured `notice_templates` directory; its first line
//! is `Subject: …`. The connection uses STARTTLS (required), TLS from the start, or —
//! for a relay nearby — plain SMTP (`smtp_tls`).

use super::blocking;
use crate::config::Config;
use crate::state::AppState;
use guise_core::outbox::{Delivery, event};
use guise_core::store::UserStore;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::Environment;
use serde_json::Value;
use std::sync::Arc;

const STARTED: &str = "impersonation_started.txt";
const ENDED: &str = "impersonation_ended.txt";
const BUILT_IN: &[(&str, &str)] = &[
    (STARTED, include_str!("../../../../templates/notices/impersonation_started.txt")),
    (ENDED, include_str!("../../../../templates/notices/impersonation_ended.txt")),
];

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    templates: Environment<'static>,
}

impl Mailer {
    /// The mailer `config` describes, or `None` when no SMTP server is configured.
    /// Fails on a bad sender address or unreadable templates (at start, not per email).
    pub fn from_config(config: &Config) -> Result<Option<Self>, String> {
        let Some(host) = &config.smtp_host else { return Ok(None) };
        let from: Mailbox = config.smtp_from.parse().map_err(|e| format!("smtp_from is not an address: {e}"))?;
        let tls = match config.smtp_tls.as_str() {
            "none" => Tls::None,
            mode @ ("starttls" | "tls") => {
                let parameters = TlsParameters::new(host.clone())
                    .map_err(|e| format!("smtp TLS for {host} cannot be set up: {e}"))?;
                if mode == "tls" { Tls::Wrapper(parameters) } else { Tls::Required(parameters) }
            }
            other => return Err(format!("smtp_tls must be starttls, tls or none (got {other})")),
        };
        let credentials = match (&config.smtp_username, &config.smtp_password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password.clone())),
            (None, None) => None,
            _ => return Err("smtp_username and smtp_password go together: set both or neither".to_owned()),
        };
        if credentials.is_some() && matches!(tls, Tls::None) {
            return Err("smtp_tls = \"none\" would send smtp_username and smtp_password in clear: \
                        use smtp_tls = \"starttls\" or \"tls\", or no credentials for a relay nearby"
                .to_owned());
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(config.smtp_port)
            .tls(tls)
            .timeout(Some(std::time::Duration::from_millis(config.outbox_timeout_ms.max(1))));
        if let Some(credentials) = credentials {
            builder = builder.credentials(credentials);
        }
        let mut templates = Environment::new();
        for (name, built_in) in BUILT_IN {
            let source = match &config.notice_templates {
                Some(dir) => std::fs::read_to_string(dir.join(name))
                    .map_err(|e| format!("cannot read {}: {e}", dir.join(name).display()))?,
                None => (*built_in).to_owned(),
            };
            templates.add_template_owned(*name, source).map_err(|e| format!("notice template {name}: {e}"))?;
        }
        Ok(Some(Self { transport: builder.build(), from, templates }))
    }

    /// Subject and body of the notice for `payload` (a webhook envelope).
    pub fn render(&self, event_type: &str, payload: &Value) -> Result<(String, String), String> {
        let name = if event_type == event::IMPERSONATION_ENDED { ENDED } else { STARTED };
        let mut data = payload.get("data").cloned().unwrap_or(Value::Null);
        if let Some(seconds) = data.get("duration_seconds").and_then(Value::as_i64) {
            data["duration_minutes"] = Value::from((seconds + 59) / 60);
        }
        let text = self
            .templates
            .get_template(name)
            .and_then(|t| t.render(minijinja::value::Serde(&data)))
            .map_err(|e| format!("the notice does not render: {e}"))?;
        let (first, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        let subject = first.strip_prefix("Subject:").map(str::trim).unwrap_or("Your account was impersonated");
        Ok((subject.to_owned(), body.trim_start_matches('\n').to_owned()))
    }

    pub async fn deliver(&self, state: &Arc<AppState>, delivery: &Delivery) -> Result<(), String> {
        let user_id = delivery.target.clone();
        let user =
            blocking(state, move |s| s.db.user_by_id(&user_id).map_err(|_| "the user no longer exists".to_owned()))
                .await?;
        let to: Mailbox = user.email.parse().map_err(|_| "the user's email is not deliverable".to_owned())?;
        let (subject, body) = self.render(&delivery.event_type, &delivery.payload)?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("the notice cannot be built: {e}"))?;
        self.transport.send(message).await.map(drop).map_err(|e| format!("SMTP: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tls: &str) -> Config {
        Config { smtp_host: Some("smtp.example.com".into()), smtp_tls: tls.into(), ..Config::default() }
    }

    #[test]
    fn tls_modes_are_checked_at_start() {
        assert!(matches!(Mailer::from_config(&Config::default()), Ok(None)), "no smtp_host, no mailer");
        for mode in ["starttls", "tls", "none"] {
            assert!(matches!(Mailer::from_config(&config(mode)), Ok(Some(_))), "{mode}");
        }
        assert!(Mailer::from_config(&config("ssl3")).is_err());
        let bad_sender = Config { smtp_from: "not an address".into(), ..config("none") };
        assert!(Mailer::from_config(&bad_sender).is_err());
    }

    #[test]
    fn credentials_are_never_sent_in_clear() {
        let with_credentials = |tls: &str| Config {
            smtp_username: Some("notices".into()),
            smtp_password: Some("smtp-secret".into()),
            ..config(tls)
        };
        for mode in ["starttls", "tls"] {
            assert!(matches!(Mailer::from_config(&with_credentials(mode)), Ok(Some(_))), "{mode}");
        }
        let refused = Mailer::from_config(&with_credentials("none")).err().unwrap_or_default();
        assert!(refused.contains("in clear") && refused.contains("starttls"), "{refused}");
        assert!(!refused.contains("smtp-secret"), "{refused}");
        // One without the other is a mistake too, not a silent anonymous relay.
        let half = Config { smtp_username: Some("notices".into()), ..config("starttls") };
        assert!(Mailer::from_config(&half).is_err());
    }

    #[test]
    fn the_built_in_notices_render_with_a_subject_line() -> Result<(), String> {
        let mailer = Mailer::from_config(&config("none"))?.ok_or("a mailer")?;
        let payload = serde_json::json!({ "data": {
            "user": { "email": "u@example.com", "name": null },
            "impersonator": { "email": "a@example.com", "name": "Ada" },
            "client": { "client_id": "c1", "name": null },
            "reason": null,
            "started_at": "2026-01-01T00:00:00.000Z",
            "expires_at": "2026-01-01T01:00:00.000Z",
            "duration_seconds": 3600,
        }});
        let (subject, body) = mailer.render(event::IMPERSONATION_STARTED, &payload)?;
        assert_eq!(subject, "Ada is signed in to c1 as you");
        assert!(body.starts_with("Hello u@example.com,"), "{body}");
        assert!(body.contains("Reason given: none") && body.contains("(60 minutes)"), "{body}");
        Ok(())
    }
}
