//! `rhizo ui`: a one-time login link for the web UI the running node serves under `/ui/`;
//! with `--open`, also handed to the user's browser.
//!
//! The browser: the commands of `$BROWSER` when it is set (the usual convention: commands
//! separated by `:`, `%s` standing for the link, else the link comes last; words split on
//! spaces, no shell), tried in order; else the desktop's opener, `xdg-open` (`open` on macOS).
//! When `$BROWSER` is set nothing else is tried. The link is printed first in any case, so a
//! browser that cannot be opened only costs a copy and paste: that prints why, and the command
//! still succeeds.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use rhizo_node::api::web::LoginLinkResponse;

use crate::{api_client::ApiClient, cli::UiArgs};

/// How long a browser command has to fail; one still running then (a browser that stays in
/// the foreground) counts as opened, and is left running.
const BROWSER_START: Duration = Duration::from_secs(3);
/// How often the command is checked meanwhile.
const BROWSER_POLL: Duration = Duration::from_millis(25);

pub(crate) async fn run(config: &rhizo_node::Config, args: &UiArgs) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    let link: LoginLinkResponse = api
        .post("/v1/ui/login-link", &serde_json::json!({}))
        .await?;
    let url = format!("{}{}", api.base(), link.path);
    println!("{url}");
    println!();
    println!(
        "Open this link in a browser on this machine within {} minutes; it works once, and \
         the browser then keeps a session cookie. Keep it secret until then.",
        link.expires_in_secs / 60
    );
    if args.open {
        let browser = std::env::var("BROWSER").ok();
        let opened = tokio::task::spawn_blocking(move || open(browser.as_deref(), &url))
            .await
            .context("the browser task")?;
        match opened {
            Ok(program) => println!("Opened it with {program}."),
            // The reason names the command, never the link (it holds the login code).
            Err(e) => eprintln!("Could not open a browser: {e:#}. Open the link above yourself."),
        }
    }
    Ok(())
}

/// Hands `url` to the first browser command that takes it; its program's name.
fn open(browser: Option<&str>, url: &str) -> anyhow::Result<String> {
    let commands = browser_commands(browser);
    if commands.is_empty() {
        bail!("$BROWSER names no command");
    }
    let mut failures = Vec::new();
    for words in commands {
        let Some((program, rest)) = words.split_first() else {
            continue;
        };
        match launch(program, rest, url) {
            Ok(()) => return Ok(program.clone()),
            Err(e) => failures.push(format!("`{program}` {e:#}")),
        }
    }
    bail!("{}", failures.join("; "))
}

/// The commands to try, each as its words: `$BROWSER`'s when it is set, else the desktop's
/// opener.
fn browser_commands(browser: Option<&str>) -> Vec<Vec<String>> {
    match browser {
        Some(list) => list
            .split(':')
            .map(|command| command.split_whitespace().map(String::from).collect())
            .filter(|words: &Vec<String>| !words.is_empty())
            .collect(),
        None if cfg!(target_os = "macos") => vec![vec!["open".into()]],
        None => vec![vec!["xdg-open".into()]],
    }
}

/// Runs `program` with `args` (`%s` replaced by `url`, else `url` last), its stdout discarded
/// (ours is the link's); an error if it cannot start or fails within [`BROWSER_START`].
fn launch(program: &str, args: &[String], url: &str) -> anyhow::Result<()> {
    let mut argv: Vec<String> = args.iter().map(|a| a.replace("%s", url)).collect();
    if !args.iter().any(|a| a.contains("%s")) {
        argv.push(url.to_string());
    }
    let mut child = Command::new(program)
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot be started")?;
    let deadline = Instant::now() + BROWSER_START;
    loop {
        if let Some(status) = child.try_wait().context("cannot be waited for")? {
            if status.success() {
                return Ok(());
            }
            bail!("failed ({status})");
        }
        if Instant::now() >= deadline {
            return Ok(());
        }
        std::thread::sleep(BROWSER_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::browser_commands;

    fn words(list: &[&[&str]]) -> Vec<Vec<String>> {
        list.iter()
            .map(|c| c.iter().map(|w| (*w).to_string()).collect())
            .collect()
    }

    #[test]
    fn browser_lists_split_on_colons_then_spaces() {
        assert_eq!(
            browser_commands(Some("firefox --new-tab %s:lynx")),
            words(&[&["firefox", "--new-tab", "%s"], &["lynx"]])
        );
        assert_eq!(browser_commands(Some(" : ")), words(&[]));
        let default = browser_commands(None);
        assert_eq!(default.len(), 1);
    }

    #[test]
    fn a_missing_or_failing_browser_is_an_error_that_does_not_show_the_link() {
        let url = "http://127.0.0.1:1/ui/login?code=secret";
        let e = super::open(Some("/nonexistent/rhizo-browser"), url).unwrap_err();
        let text = format!("{e:#}");
        assert!(text.contains("/nonexistent/rhizo-browser"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        let e = super::open(Some("false"), url).unwrap_err();
        assert!(format!("{e:#}").contains("failed"), "{e:#}");
        assert!(super::open(Some(""), url).is_err());
        assert!(super::open(Some("true"), url).is_ok());
    }
}
