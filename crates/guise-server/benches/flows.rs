//! Flow throughput: password logins, authorization-code flows (with and without a
//! password check), impersonation flows and IdP-initiated SAML Responses, driven over
//! HTTP against the real server (`guise_server::Application` on 127.0.0.1:0) by N
//! concurrent workers, on SQLite and on PostgreSQL; plus the raw in-process rates that
//! bound them (argon2id verification, SAML Response build + sign).
//!
//! Run with `cargo bench -p guise-server --bench flows`. Knobs (environment):
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `GUISE_BENCH_BACKENDS` | `sqlite postgres` | backends, in order |
//! | `GUISE_BENCH_FLOWS` | all | subset of `argon2 saml-sign login code code-session impersonation saml` |
//! | `GUISE_BENCH_WORKERS` | `8` | concurrent HTTP workers per flow |
//! | `GUISE_BENCH_SECONDS` | `10` | measured seconds per flow |
//! | `GUISE_BENCH_WARMUP_SECONDS` | `2` | warm-up seconds per flow (not counted) |
//! | `GUISE_BENCH_RAW_SECONDS` | `5` | measured seconds per raw (in-process) rate |
//! | `GUISE_BENCH_SERVER_WORKERS` | `0` | actix workers (0: one per core) |
//! | `GUISE_BENCH_DB_CONNECTIONS` | `16` | database pool size |
//! | `GUISE_BENCH_MAX_OTHER_CPU` | `15` | before each flow, wait until other processes use at most this % of the machine… |
//! | `GUISE_BENCH_QUIET_WAIT` | `15` | …but no longer than this many seconds |
//! | `GUISE_BENCH_POSTGRES_URL` | `postgres://postgres@127.0.0.1:5432` | PostgreSQL server to create and drop a database on |
//! | `GUISE_LOG` | `warn` | server log filter |
//!
//! Only successful flows are counted; any unexpected status is an error, reported with
//! its body, and makes the bench exit non-zero after the table is printed.

use diesel::{Connection, PgConnection, RunQueryDsl};
use guise_server::config::Config;
use guise_server::startup::Application;
use oauth2::PkceCodeChallenge;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, BoxError>;

const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "correct horse battery staple";
const USER_EMAIL: &str = "grace@example.com";
const USER_PASSWORD: &str = "cobol is forever";
const CALLBACK: &str = "http://127.0.0.1:9/callback";
const ACS: &str = "http://127.0.0.1:9/saml/acs";
const SCOPE: &str = "openid profile email";
/// Error messages kept per flow (the count is always complete).
const KEPT_ERRORS: usize = 5;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(message.into().into())
}

// ---------------------------------------------------------------------------------------
// Settings

struct Settings {
    backends: Vec<String>,
    flows: Vec<String>,
    workers: usize,
    seconds: f64,
    warmup: f64,
    raw_seconds: f64,
    server_workers: usize,
    db_connections: u32,
    max_other_cpu: f64,
    quiet_wait: f64,
    postgres_url: String,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value.trim().parse().map_err(|_| format!("{name}={value:?} is not a valid value").into())
        }
        _ => Ok(default),
    }
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

const ALL_FLOWS: &str = "argon2 saml-sign login code code-session impersonation saml";

impl Settings {
    fn from_env() -> Result<Self> {
        let settings = Settings {
            backends: env_list("GUISE_BENCH_BACKENDS", "sqlite postgres"),
            flows: env_list("GUISE_BENCH_FLOWS", ALL_FLOWS),
            workers: env_or("GUISE_BENCH_WORKERS", 8)?,
            seconds: env_or("GUISE_BENCH_SECONDS", 10.0)?,
            warmup: env_or("GUISE_BENCH_WARMUP_SECONDS", 2.0)?,
            raw_seconds: env_or("GUISE_BENCH_RAW_SECONDS", 5.0)?,
            server_workers: env_or("GUISE_BENCH_SERVER_WORKERS", 0)?,
            db_connections: env_or("GUISE_BENCH_DB_CONNECTIONS", 16)?,
            max_other_cpu: env_or("GUISE_BENCH_MAX_OTHER_CPU", 15.0)?,
            quiet_wait: env_or("GUISE_BENCH_QUIET_WAIT", 15.0)?,
            postgres_url: env_or("GUISE_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432".to_owned())?
                .trim_end_matches('/')
                .to_owned(),
        };
        for backend in &settings.backends {
            if backend != "sqlite" && backend != "postgres" {
                return fail(format!("GUISE_BENCH_BACKENDS: unknown backend {backend:?} (sqlite, postgres)"));
            }
        }
        let known: Vec<&str> = ALL_FLOWS.split_whitespace().collect();
        for flow in &settings.flows {
            if !known.contains(&flow.as_str()) {
                return fail(format!("GUISE_BENCH_FLOWS: unknown flow {flow:?} ({ALL_FLOWS})"));
            }
        }
        let positive = |x: f64| x.is_finite() && x > 0.0 && x <= 86_400.0;
        let not_negative = |x: f64| x.is_finite() && (0.0..=86_400.0).contains(&x);
        if settings.workers == 0 || !positive(settings.seconds) || !positive(settings.raw_seconds) {
            return fail("GUISE_BENCH_WORKERS, GUISE_BENCH_SECONDS and GUISE_BENCH_RAW_SECONDS must be positive");
        }
        if !not_negative(settings.warmup) || !not_negative(settings.quiet_wait) {
            return fail("GUISE_BENCH_WARMUP_SECONDS and GUISE_BENCH_QUIET_WAIT must not be negative");
        }
        Ok(settings)
    }

    fn wants(&self, flow: &str) -> bool {
        self.flows.iter().any(|f| f == flow)
    }
}

// ---------------------------------------------------------------------------------------
// CPU accounting from /proc

/// The name of the load generator's threads (the HTTP clients), so that their CPU time
/// can be told apart from the server's (actix workers and their blocking pools).
const CLIENT_THREAD: &str = "bench-client";

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Copy, Default)]
struct CpuSample {
    /// Whole machine: busy and total ticks over all CPUs.
    machine_busy: u64,
    machine_total: u64,
    /// This process (server and load generator together).
    own: u64,
    /// The threads of this process named [`CLIENT_THREAD`]: the load generator.
    client: u64,
    /// Every process named `postgres`.
    postgres: u64,
}

/// utime + stime of a /proc/PID/stat line, and its command name.
fn proc_ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

fn cpu_sample() -> CpuSample {
    let mut sample = CpuSample::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/stat")
        && let Some(line) = stat.lines().next()
    {
        let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let total: u64 = values.iter().take(8).sum();
        let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
        sample.machine_total = total;
        sample.machine_busy = total.saturating_sub(idle);
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        sample.own = proc_ticks(&stat).map(|(_, t)| t).unwrap_or(0);
    }
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if let Ok(stat) = std::fs::read_to_string(task.path().join("stat"))
                && let Some((name, ticks)) = proc_ticks(&stat)
                && name == CLIENT_THREAD
            {
                sample.client += ticks;
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat"))
                && let Some((command, ticks)) = proc_ticks(&stat)
                && command == "postgres"
            {
                sample.postgres += ticks;
            }
        }
    }
    sample
}

#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    /// CPU seconds of this process.
    own: f64,
    /// CPU seconds of the load generator's threads (part of `own`).
    client: f64,
    /// CPU seconds of PostgreSQL processes.
    postgres: f64,
    /// Everything else, as a share of the whole machine (0–100).
    other_percent: f64,
}

fn cpu_between(before: CpuSample, after: CpuSample) -> CpuUse {
    let total = after.machine_total.saturating_sub(before.machine_total) as f64;
    let busy = after.machine_busy.saturating_sub(before.machine_busy) as f64;
    let own = after.own.saturating_sub(before.own) as f64;
    let postgres = after.postgres.saturating_sub(before.postgres) as f64;
    let other = (busy - own - postgres).max(0.0);
    CpuUse {
        own: own / TICKS_PER_SECOND,
        client: after.client.saturating_sub(before.client) as f64 / TICKS_PER_SECOND,
        postgres: postgres / TICKS_PER_SECOND,
        other_percent: if total > 0.0 { 100.0 * other / total } else { 0.0 },
    }
}

/// Wait (at most `settings.quiet_wait` seconds) until other processes use at most
/// `settings.max_other_cpu` % of the machine over one second. Returns the last reading.
async fn wait_until_quiet(settings: &Settings) -> f64 {
    let deadline = Instant::now() + Duration::from_secs_f64(settings.quiet_wait);
    loop {
        let before = cpu_sample();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let other = cpu_between(before, cpu_sample());
        // Idle PostgreSQL counts as other load here: nothing of ours is running.
        let percent = other.other_percent + 100.0 * other.postgres / total_cpus();
        if percent <= settings.max_other_cpu || Instant::now() >= deadline {
            if percent > settings.max_other_cpu {
                eprintln!("  (machine still busy: other processes at {percent:.0}% — measuring anyway)");
            }
            return percent;
        }
    }
}

fn total_cpus() -> f64 {
    std::thread::available_parallelism().map(|n| n.get() as f64).unwrap_or(1.0)
}

// ---------------------------------------------------------------------------------------
// Results

struct Row {
    backend: String,
    flow: String,
    count: usize,
    errors: usize,
    seconds: f64,
    latencies: Vec<Duration>,
    cpu: Option<CpuUse>,
    /// Other load measured just before the run (percent of the machine).
    other_before: Option<f64>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1_000.0;
    if ms < 10.0 { format!("{ms:.2} ms") } else { format!("{ms:.1} ms") }
}

fn print_table(rows: &mut [Row]) {
    println!();
    println!(
        "| Backend | Flow | Flows/s | p50 | p99 | Flows | Errors | guise CPU/flow | load-generator CPU/flow | PostgreSQL CPU/flow | Other CPU during (before) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows.iter_mut() {
        row.latencies.sort_unstable();
        let rate = row.count as f64 / row.seconds;
        let per_flow = |seconds: f64| format!("{:.2} ms", 1_000.0 * seconds / row.count.max(1) as f64);
        let (server, client, postgres, other) = match row.cpu {
            Some(cpu) => (
                per_flow(cpu.own - cpu.client),
                if row.backend == "in-process" { "—".to_owned() } else { per_flow(cpu.client) },
                if row.backend == "postgres" { per_flow(cpu.postgres) } else { "—".to_owned() },
                format!(
                    "{:.0}% ({})",
                    cpu.other_percent,
                    row.other_before.map(|p| format!("{p:.0}%")).unwrap_or_else(|| "—".to_owned())
                ),
            ),
            None => ("—".to_owned(), "—".to_owned(), "—".to_owned(), "—".to_owned()),
        };
        println!(
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.backend,
            row.flow,
            rate,
            ms(percentile(&row.latencies, 0.50)),
            ms(percentile(&row.latencies, 0.99)),
            row.count,
            row.errors,
            server,
            client,
            postgres,
            other,
        );
    }
}

// ---------------------------------------------------------------------------------------
// Raw in-process rates

/// argon2id verifications on `threads` threads for `seconds`.
fn raw_argon2(threads: usize, seconds: f64) -> Result<Row> {
    let phc = guise_store::password::hash_password(USER_PASSWORD).map_err(|e| e.to_string())?;
    if !guise_store::password::verify_password(USER_PASSWORD, &phc) {
        return fail("verify_password rejected the password it just hashed");
    }
    let phc = Arc::new(phc);
    let before = cpu_sample();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let phc = Arc::clone(&phc);
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut errors = 0;
                while Instant::now() < end {
                    let t = Instant::now();
                    if guise_store::password::verify_password(USER_PASSWORD, &phc) {
                        latencies.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for handle in handles {
        let (l, e) = handle.join().map_err(|_| "an argon2 thread panicked")?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Row {
        backend: "in-process".into(),
        flow: format!("argon2id verify_password, {threads} thread{}", if threads == 1 { "" } else { "s" }),
        count: latencies.len(),
        errors,
        seconds: elapsed,
        latencies,
        cpu: Some(cpu_between(before, cpu_sample())),
        other_before: None,
    })
}

/// The user fields the default SAML attribute mappings name.
fn bench_user_field(field: &str) -> Option<String> {
    match field {
        "user_id" => Some("guise|0123456789abcdef01234567".into()),
        "email" | "upn" => Some(USER_EMAIL.into()),
        "name" => Some("Grace Hopper".into()),
        "nickname" => Some("grace".into()),
        _ => None,
    }
}

/// Build and sign IdP-initiated Responses (as `GET /samlp/{client}` does) for `seconds`.
fn raw_saml_sign(seconds: f64) -> Result<Row> {
    let now = chrono::Utc::now();
    let key = guise_oidc::keys::generate_rs256(now).map_err(|e| e.to_string())?;
    let certificate = guise_saml::cert::self_signed_pem(&key.private_key_pem, "127.0.0.1", 1)?;
    let signer = guise_saml::dsig::SamlSigner::from_pem(&key.private_key_pem, &certificate)?;
    let addons = json!({ "samlp": {} });
    let settings = addons
        .as_object()
        .map(guise_saml::settings::from_addons)
        .transpose()
        .map_err(|e| e.to_string())?
        .flatten()
        .ok_or("default SAML settings")?;
    let attributes: Vec<(String, Vec<String>)> = settings
        .mappings
        .iter()
        .filter_map(|(field, attribute)| bench_user_field(field).map(|v| (attribute.clone(), vec![v])))
        .collect();
    let issuer = "http://127.0.0.1:8080/";
    let audience = "urn:bench-client";
    let session_index = guise_core::ids::new_token_id();
    let user_id = bench_user_field("user_id").unwrap_or_default();
    let before = cpu_sample();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut latencies = Vec::new();
    let mut errors = 0;
    while Instant::now() < end {
        let t = Instant::now();
        let now = chrono::Utc::now();
        let xml = guise_saml::response::success(
            &signer,
            &guise_saml::response::Assertion {
                issuer,
                destination: ACS,
                recipient: ACS,
                audience,
                in_response_to: None,
                name_id: &user_id,
                name_id_format: &settings.name_id_format,
                session_index: &session_index,
                authn_instant: now,
                attributes: attributes.clone(),
                now,
                lifetime: chrono::Duration::seconds(settings.lifetime_seconds),
                sign_response: settings.sign_response,
            },
        );
        if xml.is_ok_and(|xml| xml.contains("<ds:SignatureValue>")) {
            latencies.push(t.elapsed());
        } else {
            errors += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Row {
        backend: "in-process".into(),
        flow: "SAML Response build + sign, 1 thread".into(),
        count: latencies.len(),
        errors,
        seconds: elapsed,
        latencies,
        cpu: Some(cpu_between(before, cpu_sample())),
        other_before: None,
    })
}

// ---------------------------------------------------------------------------------------
// Databases

/// A fresh PostgreSQL database, dropped (with its connections) when this is dropped.
struct PgDatabase {
    server: String,
    name: String,
}

impl PgDatabase {
    fn create(server: &str) -> Result<Self> {
        let name = format!("guise_bench_{}", guise_core::ids::new_key_id().to_lowercase());
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return fail(format!("unexpected database name {name}"));
        }
        let mut conn = PgConnection::establish(&format!("{server}/postgres"))
            .map_err(|e| format!("PostgreSQL must answer at {server} (GUISE_BENCH_POSTGRES_URL): {e}"))?;
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn)?;
        Ok(PgDatabase { server: server.to_owned(), name })
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        match PgConnection::establish(&format!("{}/postgres", self.server)) {
            Ok(mut conn) => {
                if let Err(e) =
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut conn)
                {
                    eprintln!("could not drop database {}: {e}", self.name);
                }
            }
            Err(e) => eprintln!("could not drop database {}: {e}", self.name),
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

/// What a browser sees of a response.
struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

async fn page(request: reqwest::RequestBuilder) -> Result<Page> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let location = response.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
    Ok(Page { status, location, body: response.text().await? })
}

fn expect(page: &Page, status: u16, what: &str) -> Result<()> {
    if page.status == status {
        Ok(())
    } else {
        let body: String = page.body.chars().take(400).collect();
        fail(format!(
            "{what}: expected {status}, got {} (location {:?}): {body}",
            page.status,
            page.location.as_deref().unwrap_or("-")
        ))
    }
}

/// A browser: its own cookie jar, redirects not followed.
fn browser() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build()?)
}

/// The value of a hidden form field.
fn hidden(html: &str, name: &str) -> Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).ok_or_else(|| format!("no hidden field {name}"))? + marker.len();
    let end = html[start..].find('"').ok_or_else(|| format!("unterminated hidden field {name}"))? + start;
    Ok(html[start..end].to_owned())
}

/// The query parameter `name` of the location, which must start with `prefix`.
fn callback_param(page: &Page, prefix: &str, name: &str) -> Result<String> {
    let location = page.location.as_deref().ok_or("redirect without a location")?;
    if !location.starts_with(prefix) {
        return fail(format!("redirected to {location}, expected {prefix}"));
    }
    let url = url::Url::parse(location)?;
    match url.query_pairs().find(|(k, _)| k == name) {
        Some((_, v)) => Ok(v.into_owned()),
        None => fail(format!("no {name} in {location}")),
    }
}

/// Everything the workers need about one running server.
struct Target {
    base: String,
    /// No cookies: management calls and the relying party's token requests.
    http: reqwest::Client,
    token: String,
    admin_user_id: String,
    user_id: String,
    web_client: (String, String),
    impersonation_client: (String, String),
    saml_client: String,
}

impl Target {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn management(&self, path: &str, body: &Value) -> Result<Value> {
        let response = self.http.post(self.url(path)).bearer_auth(&self.token).json(body).send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        if status != 201 {
            return fail(format!("POST {path}: expected 201, got {status}: {text}"));
        }
        Ok(serde_json::from_str(&text)?)
    }
}

fn field(value: &Value, key: &str) -> Result<String> {
    value[key].as_str().map(str::to_owned).ok_or_else(|| format!("no {key} in {value}").into())
}

/// A client-credentials token for the management client.
async fn management_token(http: &reqwest::Client, base: &str, client_id: &str, secret: &str) -> Result<String> {
    let form = [("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret)];
    let response = http.post(format!("{base}/oauth/token")).form(&form).send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    if status != 200 {
        return fail(format!("management token: {status}: {text}"));
    }
    field(&serde_json::from_str(&text)?, "access_token")
}

async fn web_client(target: &Target, name: &str, extra: Value) -> Result<(String, String)> {
    let mut body = json!({
        "name": name,
        "app_type": "regular_web",
        "callbacks": [CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
    });
    if let Some(extra) = extra.as_object() {
        for (k, v) in extra {
            body[k] = v.clone();
        }
    }
    let client = target.management("/api/v2/clients", &body).await?;
    Ok((field(&client, "client_id")?, field(&client, "client_secret")?))
}

/// The authorization request of a relying party using PKCE; returns the URL, state and verifier.
fn authorize_url(target: &Target) -> Result<(String, String, String)> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = guise_core::ids::new_token_id();
    let mut url = url::Url::parse(&target.url("/authorize"))?;
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", target.web_client.0.as_str()),
        ("redirect_uri", CALLBACK),
        ("scope", SCOPE),
        ("state", state.as_str()),
        ("nonce", guise_core::ids::new_token_id().as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]);
    Ok((url.to_string(), state, verifier.secret().to_owned()))
}

/// Load the login page at `login_path`, submit the password; returns the POST's response.
async fn submit_login(target: &Target, browser: &reqwest::Client, login_path: &str) -> Result<Page> {
    let login = page(browser.get(target.url(login_path))).await?;
    expect(&login, 200, "GET /login")?;
    let tx = hidden(&login.body, "tx")?;
    let csrf = hidden(&login.body, "csrf")?;
    let form = [("tx", tx.as_str()), ("csrf", csrf.as_str()), ("email", USER_EMAIL), ("password", USER_PASSWORD)];
    page(browser.post(target.url("/login")).form(&form)).await
}

/// A password login in a fresh browser: authorize → 302 /login → login page → POST
/// /login → 302 to the callback. Returns the browser (now with a session), the code and
/// the PKCE verifier.
async fn password_login(target: &Target) -> Result<(reqwest::Client, String, String)> {
    let browser = browser()?;
    let (url, state, verifier) = authorize_url(target)?;
    let start = page(browser.get(url)).await?;
    expect(&start, 302, "GET /authorize (no session)")?;
    let login_path = start.location.clone().unwrap_or_default();
    if !login_path.starts_with("/login?tx=") {
        return fail(format!("authorize redirected to {login_path}, expected /login?tx="));
    }
    let done = submit_login(target, &browser, &login_path).await?;
    expect(&done, 302, "POST /login")?;
    if callback_param(&done, CALLBACK, "state")? != state {
        return fail("the callback carries another state");
    }
    let code = callback_param(&done, CALLBACK, "code")?;
    Ok((browser, code, verifier))
}

/// Authorize with an existing session: 302 straight to the callback with a code.
async fn authorize_with_session(target: &Target, browser: &reqwest::Client) -> Result<(String, String)> {
    let (url, state, verifier) = authorize_url(target)?;
    let done = page(browser.get(url)).await?;
    expect(&done, 302, "GET /authorize (with a session)")?;
    if callback_param(&done, CALLBACK, "state")? != state {
        return fail("the callback carries another state");
    }
    Ok((callback_param(&done, CALLBACK, "code")?, verifier))
}

/// The code exchange at /oauth/token (client_secret_basic); expects access and ID tokens.
async fn exchange(target: &Target, client: &(String, String), code: &str, verifier: Option<&str>) -> Result<()> {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CALLBACK)];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    let response = target.http.post(target.url("/oauth/token")).basic_auth(&client.0, Some(&client.1)).form(&form);
    let reply = page(response).await?;
    expect(&reply, 200, "POST /oauth/token (authorization_code)")?;
    let tokens: Value = serde_json::from_str(&reply.body)?;
    if tokens["access_token"].as_str().is_none() || tokens["id_token"].as_str().is_none() {
        return fail(format!("code exchange without access or ID token: {}", reply.body));
    }
    Ok(())
}

/// Mint an impersonation URL, follow it in a fresh browser, exchange the code.
async fn impersonation(target: &Target) -> Result<()> {
    let body = json!({
        "protocol": "oauth2",
        "impersonator_id": target.admin_user_id,
        "client_id": target.impersonation_client.0,
        "reason": "BENCH-1",
        "additionalParameters": {
            "response_type": "code",
            "state": "from-the-admin",
            "scope": SCOPE,
            "nonce": "admin-nonce",
            "callback_url": CALLBACK,
        },
    });
    let user: String = url::form_urlencoded::byte_serialize(target.user_id.as_bytes()).collect();
    let minted = page(
        target.http.post(target.url(&format!("/users/{user}/impersonate"))).bearer_auth(&target.token).json(&body),
    )
    .await?;
    expect(&minted, 200, "POST /users/{id}/impersonate")?;
    let url = minted.body.trim();
    // Auth0's shape: /users/{impersonator_id}/impersonate?…&bewit=…
    if !url.starts_with(&target.url("/users/")) || !url.contains("/impersonate?") || !url.contains("bewit=") {
        return fail(format!("minted URL looks wrong: {url}"));
    }
    let redeemed = page(browser()?.get(url)).await?;
    expect(&redeemed, 302, "GET bewit URL")?;
    if callback_param(&redeemed, CALLBACK, "state")? != "from-the-admin" {
        return fail("the impersonation callback carries another state");
    }
    let code = callback_param(&redeemed, CALLBACK, "code")?;
    exchange(target, &target.impersonation_client, &code, None).await
}

/// Follow redirects inside guise (relative locations).
async fn follow(target: &Target, browser: &reqwest::Client, mut current: Page) -> Result<Page> {
    for _ in 0..5 {
        match (&current.status, &current.location) {
            (302 | 303, Some(location)) if location.starts_with('/') => {
                current = page(browser.get(target.url(location))).await?;
            }
            _ => break,
        }
    }
    Ok(current)
}

fn expect_saml_response(page: &Page, what: &str) -> Result<()> {
    expect(page, 200, what)?;
    if !page.body.contains("name=\"SAMLResponse\"") {
        return fail(format!("{what}: no SAMLResponse in the page"));
    }
    Ok(())
}

/// A browser logged in through IdP-initiated SAML SSO.
async fn saml_session(target: &Target) -> Result<reqwest::Client> {
    let browser = browser()?;
    let sso = target.url(&format!("/samlp/{}", target.saml_client));
    let start = page(browser.get(&sso)).await?;
    expect(&start, 302, "GET /samlp/{client} (no session)")?;
    let login_path = start.location.clone().unwrap_or_default();
    let done = submit_login(target, &browser, &login_path).await?;
    let done = follow(target, &browser, done).await?;
    expect_saml_response(&done, "SAML login")?;
    Ok(browser)
}

// ---------------------------------------------------------------------------------------
// Running flows

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Login,
    Code,
    CodeSession,
    Impersonation,
    Saml,
}

impl Flow {
    fn key(self) -> &'static str {
        match self {
            Flow::Login => "login",
            Flow::Code => "code",
            Flow::CodeSession => "code-session",
            Flow::Impersonation => "impersonation",
            Flow::Saml => "saml",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Flow::Login => "password login (new browser)",
            Flow::Code => "code flow with login + PKCE exchange",
            Flow::CodeSession => "code flow with a session + PKCE exchange",
            Flow::Impersonation => "impersonation: mint, bewit URL, exchange",
            Flow::Saml => "IdP-initiated SAML Response (session)",
        }
    }
}

/// A worker's own state between flows.
enum WorkerState {
    None,
    Session(reqwest::Client),
}

async fn setup_worker(flow: Flow, target: &Target) -> Result<WorkerState> {
    Ok(match flow {
        Flow::CodeSession => WorkerState::Session(password_login(target).await?.0),
        Flow::Saml => WorkerState::Session(saml_session(target).await?),
        _ => WorkerState::None,
    })
}

async fn run_once(flow: Flow, target: &Target, state: &WorkerState) -> Result<()> {
    match (flow, state) {
        (Flow::Login, _) => password_login(target).await.map(|_| ()),
        (Flow::Code, _) => {
            let (_, code, verifier) = password_login(target).await?;
            exchange(target, &target.web_client, &code, Some(&verifier)).await
        }
        (Flow::CodeSession, WorkerState::Session(browser)) => {
            let (code, verifier) = authorize_with_session(target, browser).await?;
            exchange(target, &target.web_client, &code, Some(&verifier)).await
        }
        (Flow::Impersonation, _) => impersonation(target).await,
        (Flow::Saml, WorkerState::Session(browser)) => {
            let sso = target.url(&format!("/samlp/{}?RelayState=bench", target.saml_client));
            expect_saml_response(&page(browser.get(sso)).await?, "GET /samlp/{client} (with a session)")
        }
        _ => fail("worker without its session"),
    }
}

#[derive(Default)]
struct WorkerStats {
    latencies: Vec<Duration>,
    errors: usize,
    messages: Vec<String>,
}

async fn worker(flow: Flow, target: Arc<Target>, counted_from: Instant, until: Instant) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let state = match setup_worker(flow, &target).await {
        Ok(state) => state,
        Err(e) => {
            stats.errors += 1;
            stats.messages.push(format!("worker setup: {e}"));
            return stats;
        }
    };
    while Instant::now() < until {
        let started = Instant::now();
        let outcome = run_once(flow, &target, &state).await;
        let finished = Instant::now();
        let counted = finished >= counted_from && finished <= until;
        match outcome {
            Ok(()) if counted => stats.latencies.push(finished - started),
            Ok(()) => {}
            Err(e) => {
                stats.errors += 1;
                if stats.messages.len() < KEPT_ERRORS {
                    stats.messages.push(e.to_string());
                }
            }
        }
    }
    stats
}

async fn measure(flow: Flow, backend: &str, target: &Arc<Target>, settings: &Settings) -> (Row, Vec<String>) {
    let other_before = wait_until_quiet(settings).await;
    eprintln!("  {backend}: {} …", flow.key());
    let start = Instant::now();
    let counted_from = start + Duration::from_secs_f64(settings.warmup);
    let until = counted_from + Duration::from_secs_f64(settings.seconds);
    let handles: Vec<_> =
        (0..settings.workers).map(|_| tokio::spawn(worker(flow, Arc::clone(target), counted_from, until))).collect();
    tokio::time::sleep_until(counted_from.into()).await;
    let before = cpu_sample();
    tokio::time::sleep_until(until.into()).await;
    let cpu = cpu_between(before, cpu_sample());
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut messages = Vec::new();
    for handle in handles {
        match handle.await {
            Ok(stats) => {
                latencies.extend(stats.latencies);
                errors += stats.errors;
                messages.extend(stats.messages.into_iter().map(|m| format!("{backend} {}: {m}", flow.key())));
            }
            Err(e) => {
                errors += 1;
                messages.push(format!("{backend} {}: worker panicked: {e}", flow.key()));
            }
        }
    }
    messages.truncate(KEPT_ERRORS);
    for message in &messages {
        eprintln!("    ERROR {message}");
    }
    let row = Row {
        backend: backend.to_owned(),
        flow: flow.label().to_owned(),
        count: latencies.len(),
        errors,
        seconds: settings.seconds,
        latencies,
        cpu: Some(cpu),
        other_before: Some(other_before),
    };
    (row, messages)
}

/// Start a server on a fresh database, initialise the tenant, create the user and
/// clients, run every requested flow.
async fn run_backend(backend: &str, settings: &Settings) -> Result<(Vec<Row>, Vec<String>)> {
    let dir = tempfile::tempdir()?;
    let pg = match backend {
        "postgres" => Some(PgDatabase::create(&settings.postgres_url)?),
        _ => None,
    };
    let database_url = match &pg {
        Some(pg) => pg.url(),
        None => format!("sqlite://{}", dir.path().join("guise.db").display()),
    };
    let config = Config {
        database_url: Some(database_url),
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        workers: settings.server_workers,
        db_max_connections: settings.db_connections,
        ..Config::default()
    };
    let app = Application::build(config).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let server = tokio::spawn(app.run_until_stopped());

    let outcome = tokio::task::spawn_blocking(move || {
        guise_server::tenant::init_tenant(&state, ADMIN_EMAIL, ADMIN_PASSWORD).map_err(|e| format!("init: {e:?}"))
    })
    .await??;
    let secret = outcome.management_client.client_secret.ok_or("a new management client has a secret")?;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let token = management_token(&http, &base, &outcome.management_client.client_id, &secret).await?;
    let mut target = Target {
        base,
        http,
        token,
        admin_user_id: outcome.admin.user_id,
        user_id: String::new(),
        web_client: (String::new(), String::new()),
        impersonation_client: (String::new(), String::new()),
        saml_client: String::new(),
    };
    let user = target
        .management(
            "/api/v2/users",
            &json!({ "email": USER_EMAIL, "password": USER_PASSWORD, "name": "Grace Hopper", "email_verified": true }),
        )
        .await?;
    target.user_id = field(&user, "user_id")?;
    target.web_client = web_client(&target, "Bench web app", json!({})).await?;
    target.impersonation_client =
        web_client(&target, "Bench impersonation app", json!({ "allow_impersonation": true })).await?;
    let saml = target
        .management(
            "/api/v2/clients",
            &json!({
                "name": "Bench SAML SP",
                "app_type": "regular_web",
                "callbacks": [ACS],
                "grant_types": ["authorization_code"],
                "addons": { "samlp": {} },
            }),
        )
        .await?;
    target.saml_client = field(&saml, "client_id")?;
    let target = Arc::new(target);

    let mut rows = Vec::new();
    let mut messages = Vec::new();
    for flow in [Flow::Login, Flow::Code, Flow::CodeSession, Flow::Impersonation, Flow::Saml] {
        if settings.wants(flow.key()) {
            let (row, errors) = measure(flow, backend, &target, settings).await;
            rows.push(row);
            messages.extend(errors);
        }
    }
    server.abort();
    let _ = server.await;
    drop(pg);
    Ok((rows, messages))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{} CPUs, {cpu}", total_cpus())
}

fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    let filter = std::env::var("GUISE_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(filter)?)
        .with_writer(std::io::stderr)
        .try_init();
    eprintln!(
        "guise flows bench: {}; backends {:?}; {} workers, {} s warm-up + {} s per flow",
        machine(),
        settings.backends,
        settings.workers,
        settings.warmup,
        settings.seconds
    );

    let mut rows = Vec::new();
    let mut messages = Vec::new();
    let quiet_runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if settings.wants("argon2") {
        for threads in [1, 2] {
            let other = quiet_runtime.block_on(wait_until_quiet(&settings));
            eprintln!("  argon2id verify, {threads} thread(s) …");
            let mut row = raw_argon2(threads, settings.raw_seconds)?;
            row.other_before = Some(other);
            rows.push(row);
        }
    }
    if settings.wants("saml-sign") {
        let other = quiet_runtime.block_on(wait_until_quiet(&settings));
        eprintln!("  SAML build + sign …");
        let mut row = raw_saml_sign(settings.raw_seconds)?;
        row.other_before = Some(other);
        rows.push(row);
    }
    drop(quiet_runtime);

    for backend in &settings.backends {
        // One runtime per backend: dropping it stops that server and its background tasks.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(CLIENT_THREAD)
            .enable_all()
            .build()?;
        let (backend_rows, backend_messages) = runtime.block_on(run_backend(backend, &settings))?;
        runtime.shutdown_timeout(Duration::from_secs(5));
        rows.extend(backend_rows);
        messages.extend(backend_messages);
    }

    print_table(&mut rows);
    let errors: usize = rows.iter().map(|r| r.errors).sum();
    if errors > 0 {
        eprintln!("\n{errors} flow(s) failed; first errors:");
        for message in &messages {
            eprintln!("  {message}");
        }
        return fail(format!("{errors} flow(s) failed"));
    }
    Ok(())
}
