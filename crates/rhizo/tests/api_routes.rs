//! The local API's seed-004 aliases answer exactly like their `/v1/` routes, on a real node.

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
