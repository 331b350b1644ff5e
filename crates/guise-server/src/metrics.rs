//! `/metrics` in the Prometheus text exposition format (version 0.0.4): request counts
//! and latency histograms per route, tokens issued per grant type, impersonations,
//! login failures and lockouts (counted from committed audit events), the database
//! pool, and the audit group commit's batch sizes and lock hold times. Off unless
//! `metrics_token` is set; then only `Authorization: Bearer <metrics_token>` reads it.

use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::audit::event_type;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Upper bounds of the request latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Requests {
    /// (route pattern, method, status) → count.
    counts: BTreeMap<(String, String, u16), u64>,
    /// (route pattern, method) → latency.
    latency: BTreeMap<(String, String), Histogram>,
}

/// Request metrics of one server.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<Requests>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    fn observe(&self, route: String, method: String, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests.counts.entry((route.clone(), method.clone(), status)).or_default() += 1;
        let histogram = requests.latency.entry((route, method)).or_default();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| seconds <= b) {
            histogram.buckets[i] += 1;
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }
}

/// Middleware: count every request by its route pattern (not its path: ids would make
/// the label set unbounded), method and status, and time it.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let response = next.call(req).await?;
    if let Some(state) = state
        && state.config.metrics_token.as_deref().is_some_and(|t| !t.is_empty())
    {
        let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
        // A fixed set: a client-invented method must not add label values.
        let method = match response.request().method().as_str() {
            m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
            _ => "OTHER",
        }
        .to_owned();
        state.metrics.observe(route, method, response.status().as_u16(), started.elapsed());
    }
    Ok(response)
}

/// `GET /metrics`.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(token) = state.config.metrics_token.as_deref().filter(|t| !t.is_empty()) else {
        return HttpResponse::NotFound().json(serde_json::json!({
            "statusCode": 404, "error": "Not Found", "message": "Not Found", "errorCode": "not_found",
        }));
    };
    let presented = crate::auth::bearer_token(&req).unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
        return HttpResponse::Unauthorized()
            .insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\""))
            .json(serde_json::json!({
                "statusCode": 401, "error": "Unauthorized", "message": "A valid metrics bearer token is required",
                "errorCode": "invalid_token",
            }));
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(render(&state))
}

/// Escape a label value (backslash, double quote, newline).
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn render(state: &AppState) -> String {
    let mut out = String::new();
    render_requests(&state.metrics, &mut out);
    render_events(&state.db.audit_event_counts(), &mut out);
    render_pool(state, &mut out);
    render_batches(state, &mut out);
    out
}

fn render_requests(metrics: &Metrics, out: &mut String) {
    let requests = metrics.requests.lock().unwrap_or_else(|p| p.into_inner());
    let _ =
        writeln!(out, "# HELP guise_http_requests_total HTTP requests answered, by route pattern, method and status.");
    let _ = writeln!(out, "# TYPE guise_http_requests_total counter");
    for ((route, method, status), n) in &requests.counts {
        let _ = writeln!(
            out,
            "guise_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
            label(route),
            label(method)
        );
    }
    let _ = writeln!(out, "# HELP guise_http_request_duration_seconds Time to answer, by route pattern and method.");
    let _ = writeln!(out, "# TYPE guise_http_request_duration_seconds histogram");
    for ((route, method), h) in &requests.latency {
        let labels = format!("route=\"{}\",method=\"{}\"", label(route), label(method));
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
            cumulative += n;
            let _ = writeln!(out, "guise_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "guise_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "guise_http_request_duration_seconds_sum{{{labels}}} {}", h.sum);
        let _ = writeln!(out, "guise_http_request_duration_seconds_count{{{labels}}} {}", h.count);
    }
}

fn render_events(counts: &[(String, u64)], out: &mut String) {
    let count = |t: &str| counts.iter().find(|(k, _)| k == t).map_or(0, |(_, n)| *n);
    let _ = writeln!(out, "# HELP guise_tokens_issued_total Token responses issued, by grant type.");
    let _ = writeln!(out, "# TYPE guise_tokens_issued_total counter");
    for (grant, t) in [
        ("authorization_code", event_type::CODE_EXCHANGE),
        ("refresh_token", event_type::REFRESH_EXCHANGE),
        ("client_credentials", event_type::CLIENT_CREDENTIALS_EXCHANGE),
        ("urn:ietf:params:oauth:grant-type:token-exchange", event_type::TOKEN_EXCHANGE),
    ] {
        let _ = writeln!(out, "guise_tokens_issued_total{{grant_type=\"{grant}\"}} {}", count(t));
    }
    let _ = writeln!(out, "# HELP guise_impersonations_total Impersonation URLs minted, redeemed and refused.");
    let _ = writeln!(out, "# TYPE guise_impersonations_total counter");
    for (outcome, t) in [
        ("minted", event_type::IMPERSONATION_MINTED),
        ("redeemed", event_type::IMPERSONATION_REDEEMED),
        ("refused", event_type::IMPERSONATION_REFUSED),
    ] {
        let _ = writeln!(out, "guise_impersonations_total{{outcome=\"{outcome}\"}} {}", count(t));
    }
    let _ = writeln!(
        out,
        "# HELP guise_login_failures_total Failed password logins (wrong password, unknown or blocked user, locked out)."
    );
    let _ = writeln!(out, "# TYPE guise_login_failures_total counter");
    let _ = writeln!(
        out,
        "guise_login_failures_total {}",
        count(event_type::FAILED_LOGIN) + count(event_type::BLOCKED_USER_LOGIN)
    );
    let _ = writeln!(out, "# HELP guise_login_lockouts_total Lockouts started, per account or per source address.");
    let _ = writeln!(out, "# TYPE guise_login_lockouts_total counter");
    let _ = writeln!(out, "guise_login_lockouts_total{{scope=\"account\"}} {}", count(event_type::ACCOUNT_LOCKED));
    let _ = writeln!(out, "guise_login_lockouts_total{{scope=\"address\"}} {}", count(event_type::ADDRESS_LOCKED));
    let _ = writeln!(out, "# HELP guise_audit_events_total Audit events this process committed, by event type.");
    let _ = writeln!(out, "# TYPE guise_audit_events_total counter");
    for (t, n) in counts {
        let _ = writeln!(out, "guise_audit_events_total{{type=\"{}\"}} {n}", label(t));
    }
}

fn render_pool(state: &AppState, out: &mut String) {
    let pool = state.db.pool_usage();
    let _ = writeln!(out, "# HELP guise_db_pool_connections Pooled database connections, by state.");
    let _ = writeln!(out, "# TYPE guise_db_pool_connections gauge");
    let _ = writeln!(out, "guise_db_pool_connections{{state=\"in_use\"}} {}", pool.in_use);
    let _ = writeln!(out, "guise_db_pool_connections{{state=\"idle\"}} {}", pool.open.saturating_sub(pool.in_use));
    let _ = writeln!(out, "# HELP guise_db_pool_max_connections The pool's size limit (db_max_connections).");
    let _ = writeln!(out, "# TYPE guise_db_pool_max_connections gauge");
    let _ = writeln!(out, "guise_db_pool_max_connections {}", pool.max);
    let _ = writeln!(out, "# HELP guise_db_pool_waiting Callers waiting for a pooled connection now.");
    let _ = writeln!(out, "# TYPE guise_db_pool_waiting gauge");
    let _ = writeln!(out, "guise_db_pool_waiting {}", pool.waiting.max(0));
}

fn render_batches(state: &AppState, out: &mut String) {
    let stats = state.db.audit_batch_stats();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let _ = writeln!(out, "# HELP guise_audit_batch_size Audit events per group-committed transaction.");
    let _ = writeln!(out, "# TYPE guise_audit_batch_size histogram");
    let mut cumulative = 0;
    for (bound, bucket) in guise_store::BATCH_SIZE_BUCKETS.iter().zip(&stats.size_buckets) {
        cumulative += load(bucket);
        let _ = writeln!(out, "guise_audit_batch_size_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let batches = load(&stats.batches);
    let _ = writeln!(out, "guise_audit_batch_size_bucket{{le=\"+Inf\"}} {batches}");
    let _ = writeln!(out, "guise_audit_batch_size_sum {}", load(&stats.events));
    let _ = writeln!(out, "guise_audit_batch_size_count {batches}");
    let _ = writeln!(
        out,
        "# HELP guise_audit_lock_held_seconds_total Time the audit head lock was held by batches, lock to commit."
    );
    let _ = writeln!(out, "# TYPE guise_audit_lock_held_seconds_total counter");
    let _ = writeln!(out, "guise_audit_lock_held_seconds_total {}", load(&stats.lock_held_micros) as f64 / 1e6);
    let _ = writeln!(out, "# HELP guise_audit_lock_held_seconds_max The longest a batch held the audit head lock.");
    let _ = writeln!(out, "# TYPE guise_audit_lock_held_seconds_max gauge");
    let _ = writeln!(out, "guise_audit_lock_held_seconds_max {}", load(&stats.lock_held_max_micros) as f64 / 1e6);
}
