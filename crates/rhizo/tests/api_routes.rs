//! The local API's seed-004 aliases answer exactly like their `/v1/` routes, on a real node;
//! and `rhizo ui --open` hands the web UI's login link to the browser `$BROWSER` names.

use std::path::Path;

use rhizo_node::api::{Auth, Method, ROUTES, Route};
use rhizo_test_utils::TestNode;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");

/// What an answer says once the values that change from one request to the next (counters,
/// uptime, round-trip times) are blanked: status, content type and the body's shape and strings.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

fn blank_numbers(v: Value) -> Value {
    match v {
        Value::Number(_) => Value::from(0),
        Value::Array(a) => a.into_iter().map(blank_numbers).collect(),
        Value::Object(o) => o.into_iter().map(|(k, v)| (k, blank_numbers(v))).collect(),
        other => other,
    }
}

fn normalise(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(json) => blank_numbers(json).to_string(),
        // OpenMetrics text: keep each sample's name and labels, drop its value.
        Err(_) => text
            .lines()
            .map(|l| l.rsplit_once(' ').map_or(l, |(name, _)| name))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn call(
    http: &reqwest::blocking::Client,
    base: &str,
    route: &Route,
    path: &str,
    token: Option<&str>,
) -> Answer {
    let url = format!("{base}{path}");
    let mut request = match route.method {
        Method::Get => http.get(url),
        Method::Post => http
            .post(url)
            .json(&serde_json::json!({"to": "nobody-known", "text": "hi"})),
        Method::Delete => http.delete(url),
        Method::Patch => http.patch(url).json(&serde_json::json!({"name": "x"})),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .unwrap_or_else(|e| panic!("{} {path}: {e}", route.method.as_str()));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = normalise(&response.text().unwrap_or_default());
    Answer {
        status,
        content_type,
        body,
    }
}

#[test]
fn every_alias_answers_like_its_v1_route() {
    let mut node = TestNode::init(Path::new(BIN), "aliases").unwrap();
    node.start(&[]).unwrap();
    let real = node.api_token().unwrap();
    let base = format!("http://{}", node.api_addr().unwrap());
    let http = reqwest::blocking::Client::new();

    let aliases: Vec<&Route> = ROUTES.iter().filter(|r| r.alias_of.is_some()).collect();
    assert!(aliases.len() >= 5, "{aliases:?}");
    for alias in aliases {
        let v1 = alias.alias_of.unwrap_or_default();
        for token in [None, Some("not-the-token"), Some(real.as_str())] {
            let old = call(&http, &base, alias, alias.path, token);
            let new = call(&http, &base, alias, v1, token);
            assert_eq!(
                old,
                new,
                "{} {} and {v1} answer differently (token: {})\n{}",
                alias.method.as_str(),
                alias.path,
                token.is_some(),
                node.logs_tail(4000)
            );
            let refused = alias.auth == Auth::Token && token != Some(real.as_str());
            assert_eq!(new.status == 401, refused, "{v1}: {new:?}");
        }
    }
    node.stop().unwrap();
}

/// `rhizo ui --open` on a real node, with a fake browser (`$BROWSER`: a shell script that
/// writes its argument to a file): the browser gets the loopback login link the command
/// prints, and that link logs in. A browser that cannot be started leaves the link printed, says
/// so, and the command still succeeds.
#[test]
fn ui_open_hands_the_login_link_to_the_browser() {
    let mut node = TestNode::init(Path::new(BIN), "ui-open").unwrap();
    node.start(&[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opened = dir.path().join("opened.txt");
    let script = dir.path().join("browser.sh");
    std::fs::write(
        &script,
        format!("printf '%s' \"$1\" > '{}'\n", opened.display()),
    )
    .unwrap();
    // Run by `sh` (not executed itself: no "text file busy" from a file just written).
    node.set_env("BROWSER", &format!("sh {}", script.display()));
    let out = node.cli(&["ui", "--open"]).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}{stderr}");
    let link = stdout.lines().next().unwrap_or_default().to_string();
    let base = format!("http://{}", node.api_addr().unwrap());
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert!(
        link.starts_with(&format!("{base}/ui/login?code=")),
        "{link}"
    );
    assert!(stdout.contains("Opened it with sh."), "{stdout}{stderr}");
    // The browser got exactly that link (the command waits for a browser that exits).
    let got = rhizo_test_utils::wait_for(std::time::Duration::from_secs(10), "the browser", || {
        std::fs::read_to_string(&opened)
            .ok()
            .filter(|s| !s.is_empty())
    })
    .unwrap();
    assert_eq!(got, link);
    // It is a working login link: a session cookie, once.
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(&got).send().unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(cookie.contains("HttpOnly"), "{cookie}");

    // No browser to be had: the link is printed all the same, with why it was not opened.
    node.set_env("BROWSER", "/nonexistent/rhizo-test-browser");
    let out = node.cli(&["ui", "--open"]).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("{base}/ui/login?code=")),
        "{stdout}"
    );
    assert!(
        stderr.contains("Could not open a browser")
            && stderr.contains("/nonexistent/rhizo-test-browser")
            && stderr.contains("Open the link above yourself"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("code="),
        "the reason does not repeat the link: {stderr}"
    );
    // Without --open nothing is opened.
    std::fs::remove_file(&opened).unwrap();
    node.set_env("BROWSER", &format!("sh {}", script.display()));
    let out = node.cli(&["ui"]).unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Opened it"));
    assert!(!opened.exists(), "opened without --open");
    node.stop().unwrap();
}
