//! Docs that must match the code, checked without starting a node:
//!
//! - the route table of `docs/local-api.md` against [`rhizo_node::api::ROUTES`] (method, path,
//!   auth, alias, summary), and its error table against the `(StatusCode, "CODE")` pairs
//!   rhizo-node's API returns;
//! - the `# Layout` list of every workspace crate's top-level `//!` doc against the modules its
//!   `lib.rs` (or, for a binary-only crate, `main.rs`) declares;
//! - every constant `docs/policy.md` names against the crate it says defines it.
//!
//! Each failure says exactly what differs and which file to fix.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use rhizo_node::api::{ROUTES, Route};

/// The header row that marks the route table in `docs/local-api.md`.
const ROUTE_TABLE_HEADER: &str = "| method | path | auth | alias of | summary |";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// One route as the docs' table writes it.
fn doc_row(r: &Route) -> String {
    let alias = r
        .alias_of
        .map_or_else(|| "—".to_string(), |of| format!("`{of}`"));
    format!(
        "| {} | `{}` | {} | {} | {} |",
        r.method.as_str(),
        r.path,
        r.auth.as_str(),
        alias,
        r.summary
    )
}

fn cells(row: &str) -> Vec<String> {
    row.trim()
        .trim_start_matches('|')
        .trim_end_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

/// The route table's rows, keyed by (method, path), normalised to [`doc_row`]'s spacing.
fn doc_routes(markdown: &str) -> Result<BTreeMap<(String, String), String>, String> {
    let mut lines = markdown
        .lines()
        .skip_while(|l| l.trim() != ROUTE_TABLE_HEADER);
    if lines.next().is_none() {
        return Err(format!(
            "docs/local-api.md has no route table: add one with the header `{ROUTE_TABLE_HEADER}`"
        ));
    }
    let mut rows = BTreeMap::new();
    for line in lines
        .skip(1)
        .take_while(|l| l.trim_start().starts_with('|'))
    {
        let c = cells(line);
        if c.len() != 5 {
            return Err(format!(
                "route table row has {} cells, not 5: {line}",
                c.len()
            ));
        }
        let key = (c[0].clone(), c[1].trim_matches('`').to_string());
        let normalised = format!("| {} |", c.join(" | "));
        if rows.insert(key.clone(), normalised).is_some() {
            return Err(format!("route table lists {} {} twice", key.0, key.1));
        }
    }
    Ok(rows)
}

#[test]
fn local_api_doc_lists_every_route_as_the_code_does() {
    let path = workspace_root().join("docs/local-api.md");
    let docs = doc_routes(&read(&path)).unwrap_or_else(|e| panic!("{e}"));
    let code: BTreeMap<(String, String), String> = ROUTES
        .iter()
        .map(|r| {
            (
                (r.method.as_str().to_string(), r.path.to_string()),
                doc_row(r),
            )
        })
        .collect();
    let mut problems = Vec::new();
    for (key, row) in &code {
        match docs.get(key) {
            None => problems.push(format!("missing in the docs:  {row}")),
            Some(d) if d != row => problems.push(format!("docs say:  {d}\n  code says: {row}")),
            Some(_) => {}
        }
    }
    for (key, row) in &docs {
        if !code.contains_key(key) {
            problems.push(format!("not in the code (rhizo_node::api::ROUTES): {row}"));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/local-api.md's route table disagrees with rhizo_node::api::ROUTES \
         (crates/rhizo-node/src/api/routes.rs):\n  {}",
        problems.join("\n  ")
    );
}

/// The modules a crate root declares at top level (`mod x;`, `pub mod x { … }`, …), without
/// `#[cfg(test)]` ones.
fn declared_modules(source: &str) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    let mut test_only = false;
    for line in source.lines() {
        if line.starts_with("#[") {
            test_only |= line.contains("cfg(test)");
            continue;
        }
        let rest = line.strip_prefix("pub ").or_else(|| {
            line.strip_prefix("pub(")
                .and_then(|l| l.split_once(") ").map(|(_, r)| r))
        });
        if let Some(name) = rest.unwrap_or(line).strip_prefix("mod ") {
            let name: String = name
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !test_only && !name.is_empty() {
                modules.insert(name);
            }
        }
        test_only = false;
    }
    modules
}

/// The module names a `# Layout` section lists as bullets starting with "[`name`]" or "`name`".
/// `None` when the crate doc has no `# Layout` section.
fn listed_modules(source: &str) -> Option<BTreeSet<String>> {
    let doc = source
        .lines()
        .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
        .filter_map(|l| l.strip_prefix("//!"))
        .map(str::trim);
    let mut in_layout = false;
    let mut found = false;
    let mut in_code = false;
    let mut listed = BTreeSet::new();
    for line in doc {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code && line.starts_with("# ") {
            in_layout = line == "# Layout";
            found |= in_layout;
            continue;
        }
        let Some(bullet) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) else {
            continue;
        };
        if in_layout
            && !in_code
            && let Some(name) = bullet_name(bullet)
        {
            listed.insert(name);
        }
    }
    found.then_some(listed)
}

fn bullet_name(bullet: &str) -> Option<String> {
    let rest = bullet
        .strip_prefix("[`")
        .or_else(|| bullet.strip_prefix('`'))?;
    let name = rest.split('`').next()?;
    let is_module = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    is_module.then(|| name.to_string())
}

/// `crates/*/src/lib.rs`, or `src/main.rs` for a crate without a library.
fn crate_roots() -> Vec<PathBuf> {
    let crates = workspace_root().join("crates");
    let mut roots: Vec<PathBuf> = fs::read_dir(&crates)
        .unwrap_or_else(|e| panic!("reading {}: {e}", crates.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("src"))
        .filter_map(|src| {
            [src.join("lib.rs"), src.join("main.rs")]
                .into_iter()
                .find(|p| p.is_file())
        })
        .collect();
    roots.sort();
    roots
}

fn module_list_problem(root: &Path) -> Option<String> {
    let source = read(root);
    let declared = declared_modules(&source);
    let shown = root
        .strip_prefix(workspace_root())
        .unwrap_or(root)
        .display()
        .to_string();
    let Some(listed) = listed_modules(&source) else {
        return (!declared.is_empty()).then(|| {
            format!(
                "{shown}: declares modules {declared:?} but its //! doc has no `# Layout` section \
                 listing them (as \"- [`name`]: …\" lines)"
            )
        });
    };
    let mut differences = Vec::new();
    let undocumented: Vec<_> = declared.difference(&listed).collect();
    if !undocumented.is_empty() {
        differences.push(format!("declared but not listed {undocumented:?}"));
    }
    let stale: Vec<_> = listed.difference(&declared).collect();
    if !stale.is_empty() {
        differences.push(format!("listed but not declared {stale:?}"));
    }
    (!differences.is_empty()).then(|| {
        format!(
            "{shown}: the //! `# Layout` list disagrees with the `mod` declarations: {}",
            differences.join("; ")
        )
    })
}

#[test]
fn every_crate_doc_lists_its_modules() {
    let roots = crate_roots();
    assert!(roots.len() >= 5, "found only {roots:?}");
    let problems: Vec<String> = roots
        .iter()
        .filter_map(|r| module_list_problem(r))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checkers_see_what_they_should() {
    let source = "//! Crate.\n//!\n//! # Layout\n//! - [`a`]: x.\n//! * `b` — y.\n\
                  //! - [`Type`] is not a module.\n//!\n//! # Example\n//! - [`c`]: elsewhere.\n\
                  //! ```\n//! # fn main() {}\n//! ```\n\npub mod a;\nmod b;\n\
                  pub(crate) mod d {\n    mod inner;\n}\n#[cfg(test)]\nmod tests;\n";
    assert_eq!(
        declared_modules(source),
        BTreeSet::from(["a".into(), "b".into(), "d".into()])
    );
    assert_eq!(
        listed_modules(source),
        Some(BTreeSet::from(["a".into(), "b".into()]))
    );
    assert_eq!(listed_modules("//! No layout.\nmod x;\n"), None);

    let table = format!(
        "text\n\n{ROUTE_TABLE_HEADER}\n|---|---|---|---|---|\n\
         | GET | `/v1/x` | token | — | an x |\n|POST|`/x`|no|`/v1/x`|alias|\n\nafter\n"
    );
    let rows = doc_routes(&table).unwrap_or_default();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows.get(&("POST".into(), "/x".into())).map(String::as_str),
        Some("| POST | `/x` | no | `/v1/x` | alias |")
    );
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// (constant, crates) for every `UPPER_CASE` name in the constant column of policy.md's tables
/// (the column before the last, which names the crates).
fn policy_constants(markdown: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    for line in markdown.lines().filter(|l| l.starts_with('|')) {
        let c = cells(line);
        let [.., constants, crates] = c.as_slice() else {
            continue;
        };
        let crates: Vec<String> = crates
            .split(',')
            .filter_map(|c| c.split_whitespace().next())
            .filter(|c| c.starts_with("rhizo"))
            .map(str::to_string)
            .collect();
        for name in constants.split('`').skip(1).step_by(2) {
            let is_constant = name.starts_with(|c: char| c.is_ascii_uppercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if is_constant && !crates.is_empty() {
                found.push((name.to_string(), crates.clone()));
            }
        }
    }
    found
}

#[test]
fn policy_doc_names_constants_that_exist() {
    let root = workspace_root();
    let constants = policy_constants(&read(&root.join("docs/policy.md")));
    assert!(constants.len() >= 50, "only {} constants", constants.len());
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, crates) in constants {
        let defined = crates.iter().any(|krate| {
            let text = sources.entry(krate.clone()).or_insert_with(|| {
                rust_files(&root.join("crates").join(krate).join("src"))
                    .iter()
                    .map(|p| read(p))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            text.contains(&format!("const {name}:"))
        });
        if !defined {
            missing.push(format!("`{name}` (said to be in {})", crates.join(", ")));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/policy.md names constants that are not defined where it says: fix the name or the \
         crate column:\n  {}",
        missing.join("\n  ")
    );
}

/// The HTTP status of a `StatusCode::NAME` the local API uses.
fn status_number(name: &str) -> Option<u16> {
    Some(match name {
        "BAD_REQUEST" => 400,
        "UNAUTHORIZED" => 401,
        "FORBIDDEN" => 403,
        "NOT_FOUND" => 404,
        "REQUEST_TIMEOUT" => 408,
        "CONFLICT" => 409,
        "PAYLOAD_TOO_LARGE" => 413,
        "RANGE_NOT_SATISFIABLE" => 416,
        "UNPROCESSABLE_ENTITY" => 422,
        "TOO_MANY_REQUESTS" => 429,
        "INTERNAL_SERVER_ERROR" => 500,
        "SERVICE_UNAVAILABLE" => 503,
        "GATEWAY_TIMEOUT" => 504,
        "INSUFFICIENT_STORAGE" => 507,
        _ => return None,
    })
}

/// Every `StatusCode::NAME, "CODE"` pair in `source` (how rhizo-node writes an API error).
fn status_code_pairs(source: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    const PREFIX: &str = "StatusCode::";
    for (at, _) in source.match_indices(PREFIX) {
        let rest = &source[at + PREFIX.len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        let after = rest[name.len()..].trim_start();
        let Some(after) = after.strip_prefix(',') else {
            continue;
        };
        let Some(code) = after.trim_start().strip_prefix('"') else {
            continue;
        };
        let code: String = code.chars().take_while(|c| *c != '"').collect();
        pairs.push((name, code));
    }
    pairs
}

#[test]
fn local_api_doc_lists_every_error_code_the_node_returns() {
    let root = workspace_root();
    let mut code: BTreeSet<(u16, String)> = BTreeSet::new();
    let mut unknown = Vec::new();
    for file in rust_files(&root.join("crates/rhizo-node/src")) {
        if file.components().any(|c| c.as_os_str() == "tests") || file.ends_with("tests.rs") {
            continue;
        }
        for (name, c) in status_code_pairs(&read(&file)) {
            match status_number(&name) {
                Some(n) => {
                    code.insert((n, c));
                }
                None => unknown.push(format!("StatusCode::{name} in {}", file.display())),
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "add these to status_number: {unknown:?}"
    );
    assert!(code.len() >= 10, "found only {code:?}");

    let doc = read(&root.join("docs/local-api.md"));
    let header = "| status | code | when |";
    let mut docs: BTreeSet<(u16, String)> = BTreeSet::new();
    let rows = doc
        .lines()
        .skip_while(|l| l.trim() != header)
        .skip(2)
        .take_while(|l| l.starts_with('|'));
    for row in rows {
        let c = cells(row);
        if let (Some(status), Some(name)) = (c.first(), c.get(1)) {
            let status = status.parse().unwrap_or(0);
            docs.insert((status, name.trim_matches('`').to_string()));
        }
    }
    let undocumented: Vec<_> = code.difference(&docs).collect();
    let stale: Vec<_> = docs.difference(&code).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "docs/local-api.md's error table (header `{header}`) disagrees with the (status, code) \
         pairs rhizo-node's API returns:\n  returned but not documented: {undocumented:?}\n  \
         documented but never returned: {stale:?}"
    );
}
