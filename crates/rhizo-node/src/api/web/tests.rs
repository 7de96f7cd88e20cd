use axum::http::{HeaderMap, HeaderValue};

use super::*;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(*name, HeaderValue::from_static(value));
    }
    h
}

#[test]
fn a_login_code_works_once_and_starts_a_session() {
    let web = WebSessions::default();
    let now = Instant::now();
    let code = web.new_code(now).expect("code");
    let session = web.redeem(&code, now).expect("session");
    assert!(web.is_session(&session, now));
    assert!(web.redeem(&code, now).is_none(), "a code is one-time");
    assert!(!web.is_session(&code, now), "a code is no session");
    web.end(&session);
    assert!(!web.is_session(&session, now));
}

#[test]
fn codes_and_sessions_expire() {
    let web = WebSessions::default();
    let now = Instant::now();
    let late = web.new_code(now).expect("code");
    assert!(web.redeem(&late, now + LOGIN_CODE_TTL).is_none());
    let code = web.new_code(now).expect("code");
    let session = web.redeem(&code, now).expect("session");
    assert!(!web.is_session(&session, now + SESSION_TTL));
    assert!(web.redeem("not a code", now).is_none());
}

#[test]
fn codes_and_sessions_are_bounded() {
    let web = WebSessions::default();
    let now = Instant::now();
    let codes: Vec<String> = (0..MAX_CODES + 3)
        .map(|i| {
            web.new_code(now + Duration::from_millis(i as u64))
                .expect("code")
        })
        .collect();
    assert_eq!(web.lock().codes.len(), MAX_CODES);
    assert!(
        web.redeem(&codes[0], now).is_none(),
        "the oldest code was dropped"
    );
    for i in 0..MAX_SESSIONS + 3 {
        let at = now + Duration::from_millis(i as u64);
        let code = web.new_code(at).expect("code");
        web.redeem(&code, at).expect("session");
    }
    assert_eq!(web.lock().sessions.len(), MAX_SESSIONS);
}

#[test]
fn the_session_cookie_is_found_among_others() {
    let h = headers(&[("cookie", "theme=dark; rhizo_ui=abc123; other=1")]);
    assert_eq!(session_cookie(&h), Some("abc123"));
    assert_eq!(session_cookie(&headers(&[("cookie", "rhizo_uix=1")])), None);
    assert_eq!(session_cookie(&HeaderMap::new()), None);
}

#[test]
fn only_loopback_hosts_pass() {
    for ok in [
        "127.0.0.1:8080",
        "localhost:1",
        "[::1]:9000",
        "127.0.0.1",
        "localhost",
    ] {
        assert!(loopback_host(ok), "{ok}");
    }
    for bad in [
        "evil.example:8080",
        "127.0.0.1.evil.example",
        "localhost.evil:1",
        "[::2]:1",
        "",
    ] {
        assert!(!loopback_host(bad), "{bad}");
    }
}

#[test]
fn origin_must_be_the_same_and_not_cross_site() {
    let h = |extra: &[(&'static str, &'static str)]| {
        let mut all = vec![("host", "127.0.0.1:4000")];
        all.extend_from_slice(extra);
        same_origin(&headers(&all))
    };
    assert!(h(&[]));
    assert!(h(&[
        ("origin", "http://127.0.0.1:4000"),
        ("sec-fetch-site", "same-origin")
    ]));
    assert!(
        !h(&[("origin", "http://127.0.0.1:4001")]),
        "another local port"
    );
    assert!(!h(&[("origin", "http://evil.example")]));
    assert!(!h(&[("sec-fetch-site", "cross-site")]));
    assert!(!h(&[("sec-fetch-site", "same-site")]));
    assert!(!same_origin(&headers(&[("host", "rebound.example:4000")])));
    assert!(!same_origin(&HeaderMap::new()), "no Host at all");
}
