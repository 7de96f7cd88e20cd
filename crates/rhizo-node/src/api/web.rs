//! The web UI (`rhizo ui`, issue 18): its assets, the one-time login link and the cookie
//! sessions that link starts.
//!
//! The single-page app is built from `clients/web/src` with esbuild; the built files are checked
//! in under `clients/web/dist` and embedded here, so `cargo build` needs no Node. The app uses
//! only the public API: the same `/v1/…` routes, authenticated by the session cookie instead of
//! the bearer token, and `/v1/events` for live updates.
//!
//! Security: the login code is one-time and short-lived; the session cookie is `HttpOnly` and
//! `SameSite=Strict`; a request authenticated by the cookie must name a loopback `Host` (DNS
//! rebinding) and, if it names an `Origin`, the same one (cross-site and other local ports:
//! cookies ignore ports); the pages carry a strict Content-Security-Policy.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use rhizo_core::safety::SafetyNumber;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ApiState, error};

/// The session cookie's name.
pub const COOKIE: &str = "rhizo_ui";
/// How long a login code from `rhizo ui` may wait to be used.
pub const LOGIN_CODE_TTL: Duration = Duration::from_secs(10 * 60);
/// How long a web session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// Most login codes waiting at once (older ones are dropped first).
const MAX_CODES: usize = 8;
/// Most web sessions at once (the oldest is dropped first).
const MAX_SESSIONS: usize = 32;

/// The Content-Security-Policy of every UI page: our own scripts and styles only, and
/// connections only back to this origin.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../../../clients/web/dist/index.html");
const APP_JS: &str = include_str!("../../../../clients/web/dist/app.js");
const APP_CSS: &str = include_str!("../../../../clients/web/dist/app.css");

/// Login codes and sessions, by the SHA-256 of their secret, with their expiry.
#[derive(Debug, Default)]
pub(crate) struct WebSessions {
    inner: Mutex<Secrets>,
}

#[derive(Debug, Default)]
struct Secrets {
    codes: HashMap<[u8; 32], Instant>,
    sessions: HashMap<[u8; 32], Instant>,
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Keeps at most `max - 1` live entries of `map` (dropping expired ones, then the soonest to
/// expire), so one more fits.
fn make_room(map: &mut HashMap<[u8; 32], Instant>, max: usize, now: Instant) {
    map.retain(|_, expires| *expires > now);
    while map.len() >= max {
        let Some(oldest) = map.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) else {
            break;
        };
        map.remove(&oldest);
    }
}

fn random_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

impl WebSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Secrets> {
        // A panic while holding the lock leaves only maps of secrets behind: still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new one-time login code.
    pub(crate) fn new_code(&self, now: Instant) -> Result<String, getrandom::Error> {
        let code = random_secret()?;
        let mut s = self.lock();
        make_room(&mut s.codes, MAX_CODES, now);
        s.codes.insert(digest(&code), now + LOGIN_CODE_TTL);
        Ok(code)
    }

    /// Spends a login code: a new session secret, or `None` if the code is unknown, used or
    /// expired.
    pub(crate) fn redeem(&self, code: &str, now: Instant) -> Option<String> {
        let mut s = self.lock();
        let expires = s.codes.remove(&digest(code))?;
        if expires <= now {
            return None;
        }
        let session = random_secret().ok()?;
        make_room(&mut s.sessions, MAX_SESSIONS, now);
        s.sessions.insert(digest(&session), now + SESSION_TTL);
        Some(session)
    }

    /// Whether `session` is a live session.
    pub(crate) fn is_session(&self, session: &str, now: Instant) -> bool {
        self.lock()
            .sessions
            .get(&digest(session))
            .is_some_and(|expires| *expires > now)
    }

    /// Ends `session` (log out).
    pub(crate) fn end(&self, session: &str) {
        self.lock().sessions.remove(&digest(session));
    }
}

/// The value of our session cookie in `headers`, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Whether `host` (a `Host` header) names this machine's loopback: `127.0.0.1`, `[::1]` or
/// `localhost`, any port. Anything else may be a DNS-rebinding name pointing at us.
pub(crate) fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().map(|h| format!("[{h}]")),
        None => host.split(':').next().map(str::to_owned),
    };
    matches!(name.as_deref(), Some("127.0.0.1" | "[::1]" | "localhost"))
}

/// Whether a browser request may use the session cookie: a loopback `Host`, an `Origin` (if
/// any) equal to `http://<Host>`, and no cross-site `Sec-Fetch-Site`.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    if !loopback_host(host) {
        return false;
    }
    if let Some(origin) = headers.get(header::ORIGIN)
        && origin.to_str().ok() != Some(format!("http://{host}").as_str())
    {
        return false;
    }
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|site| matches!(site, "same-origin" | "none"))
}

/// Whether `request` carries a live session cookie and comes from the UI's own origin.
pub(crate) fn cookie_matches(request: &Request, sessions: &WebSessions) -> bool {
    same_origin(request.headers())
        && session_cookie(request.headers()).is_some_and(|s| sessions.is_session(s, Instant::now()))
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

fn misdirected() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "BAD_ORIGIN",
        "the web UI answers only on 127.0.0.1, [::1] or localhost, from its own pages",
    )
}

/// `GET /ui/`: the app's page.
pub(super) async fn index(headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return misdirected();
    }
    page("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /ui/app.js`.
pub(super) async fn app_js(headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return misdirected();
    }
    page("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /ui/app.css`.
pub(super) async fn app_css(headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return misdirected();
    }
    page("text/css; charset=utf-8", APP_CSS)
}

/// `?code=` of `GET /ui/login`.
#[derive(Debug, Clone, Deserialize)]
pub struct LoginQuery {
    /// The one-time code from `rhizo ui`.
    pub code: String,
}

/// `GET /ui/login?code=…`: spends the one-time code, sets the session cookie and sends the
/// browser to `/ui/` (so the code leaves the address bar).
pub(super) async fn login(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    if !same_origin(&headers) {
        return misdirected();
    }
    let Some(session) = state.inner.web.redeem(&q.code, Instant::now()) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "BAD_LOGIN_CODE",
            "this login link is unknown, used or expired: run `rhizo ui` for a new one",
        );
    };
    let cookie = format!(
        "{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/")]).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `POST /v1/ui/logout`: ends the session of the calling cookie.
pub(super) async fn logout(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(session) = session_cookie(&headers) {
        state.inner.web.end(session);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let expired = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /v1/ui/login-link` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginLinkResponse {
    /// The path to open on this API's address (`/ui/login?code=…`): one use, 10 minutes.
    pub path: String,
    /// Seconds until the code expires.
    pub expires_in_secs: u64,
}

/// `POST /v1/ui/login-link`: a one-time login code for the web UI (what `rhizo ui` prints).
pub(super) async fn login_link(State(state): State<ApiState>) -> Response {
    match state.inner.web.new_code(Instant::now()) {
        Ok(code) => Json(LoginLinkResponse {
            path: format!("/ui/login?code={code}"),
            expires_in_secs: LOGIN_CODE_TTL.as_secs(),
        })
        .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            format!("randomness: {e}"),
        ),
    }
}

/// `GET /v1/contacts/{name}/safety` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SafetyResponse {
    /// The contact's local name.
    pub name: String,
    /// 12 groups of 5 digits, the same on both sides.
    pub safety_number: String,
    /// The 60 digits as a QR code drawn with Unicode half blocks.
    pub qr: String,
}

/// `GET /v1/contacts/{name}/safety`: a contact's safety number and its QR code, for the web UI's
/// verify screen (the CLI and the TUI print the number from `GET /v1/contacts`).
pub(super) async fn contact_safety(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Response {
    let contacts = match state.inner.messaging.contacts().await {
        Ok(list) => list,
        Err(e) => return super::errors::messaging_error(e),
    };
    let Some(contact) = contacts.into_iter().find(|c| c.name == name) else {
        return error(
            StatusCode::NOT_FOUND,
            "UNKNOWN_CONTACT",
            format!("no contact '{name}'"),
        );
    };
    let qr = contact
        .safety_number
        .parse::<SafetyNumber>()
        .map(|n| n.to_qr_string())
        .unwrap_or_else(|_| contact.safety_number.clone());
    Json(SafetyResponse {
        name: contact.name,
        safety_number: contact.safety_number,
        qr,
    })
    .into_response()
}

#[cfg(test)]
mod tests;
