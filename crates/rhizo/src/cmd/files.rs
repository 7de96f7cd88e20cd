//! `rhizo send CONTACT --file PATH`, `rhizo files [--json]` and `rhizo files get ID [--out]`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rhizo_node::{
    Config,
    api::{SaveFileRequest, SendFileRequest, SentFile},
    events::ApiEvent,
    files::FileView,
};

use crate::api_client::{ApiClient, StreamItem};
use crate::cli::{FilesArgs, FilesCommand};

/// How long the routes that move a whole file through the content store may take
/// (encrypting on send, decrypting on save: about a second per 100 MiB, more on a busy disk).
pub(crate) const FILE_API_TIMEOUT: Duration = Duration::from_secs(3600);
/// How often `files get` asks for progress.
const POLL: Duration = Duration::from_millis(200);
/// How long `files get` waits without any progress before it gives up (the fetch goes on in
/// the node; run the command again later).
const STALL: Duration = Duration::from_secs(120);

/// `1.5 MiB`-style sizes.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// `rhizo send CONTACT --file PATH [--caption TEXT]`.
pub(crate) async fn send(
    api: &ApiClient,
    to: &str,
    path: &Path,
    caption: Option<&String>,
    json: bool,
) -> anyhow::Result<()> {
    let path =
        std::fs::canonicalize(path).with_context(|| format!("{}: no such file", path.display()))?;
    let size = std::fs::metadata(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let request = SendFileRequest {
        to: to.to_string(),
        group: false,
        path: path.display().to_string(),
        caption: caption.cloned(),
        mime: None,
        progress: None,
    };
    let sent: SentFile = if json {
        api.post("/v1/files", &request).await?
    } else {
        send_with_bar(api, request, size, &name).await?
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&sent)?);
    } else {
        println!(
            "file {} ({}, {}) sent to {to} as message {}: {}; {to}'s node fetches it from this \
             one (keep it running)",
            sent.file.name,
            human_size(sent.file.size),
            sent.file.mime,
            sent.message.id,
            sent.message.state,
        );
    }
    Ok(())
}

/// `POST /v1/files` with a progress bar fed by the node's `file_import` events (the encryption
/// into the content store, the part of sending this command waits for).
async fn send_with_bar(
    api: &ApiClient,
    mut request: SendFileRequest,
    size: u64,
    name: &str,
) -> anyhow::Result<SentFile> {
    let id = format!("send-{}-{}", std::process::id(), rand_tag());
    request.progress = Some(id.clone());
    let bar = bar(size, &format!("encrypting {name}"));
    // Subscribed before the request, so no event is missed; without events, no bar moves.
    let mut events = api.events("").await.ok();
    let post = api.post::<SentFile>("/v1/files", &request);
    tokio::pin!(post);
    let sent = loop {
        let next = async {
            match events.as_mut() {
                Some(e) => e.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            sent = &mut post => break sent?,
            item = next => match item {
                Ok(Some(StreamItem::Event(event))) => {
                    if let ApiEvent::FileImport { progress, done_bytes, .. } = *event
                        && progress == id
                    {
                        bar.set_position(done_bytes);
                    }
                }
                Ok(Some(StreamItem::Lagged)) => {}
                Ok(None) | Err(_) => events = None,
            },
        }
    };
    bar.set_position(size);
    bar.finish_and_clear();
    Ok(sent)
}

/// A few random hex digits (a progress id need not be secret, only distinct).
fn rand_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{nanos:08x}")
}

/// `rhizo files [--json]` and `rhizo files get ID [--out PATH]`.
pub(crate) async fn run(config: &Config, args: &FilesArgs) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?.waiting(FILE_API_TIMEOUT)?;
    match &args.command {
        None => list(&api, args.json).await,
        Some(FilesCommand::Get { id, out }) => get(&api, *id, out.clone(), args.json).await,
    }
}

async fn list(api: &ApiClient, json: bool) -> anyhow::Result<()> {
    let files: Vec<FileView> = api.get("/v1/files").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&files)?);
        return Ok(());
    }
    if files.is_empty() {
        println!("No files yet. Send one with `rhizo send CONTACT --file PATH`.");
    }
    for f in &files {
        let percent = f.done_bytes.min(f.total_bytes) * 100 / f.total_bytes.max(1);
        let state = if f.state == "downloading" {
            format!("downloading {percent} %")
        } else {
            f.state.clone()
        };
        // The conversation: a group's id or a contact's UID, shortened.
        let with = match (&f.group, &f.contact) {
            (Some(g), _) => format!("group {}", &g[..g.len().min(8)]),
            (None, Some(c)) => format!("contact {}", &c[..c.len().min(8)]),
            (None, None) => String::new(),
        };
        println!(
            "{:>6} {:<3} {:<16} {:<24} {:>10} {:<24} {state}{}",
            f.id,
            f.direction,
            with,
            f.name,
            human_size(f.size),
            f.mime,
            f.path
                .as_deref()
                .map(|p| format!("  {p}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

async fn get(api: &ApiClient, id: i64, out: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let mut view: FileView = api.post(&format!("/v1/files/{id}/fetch"), &()).await?;
    let progress = (!json && view.state != "done").then(|| bar(view.total_bytes, &view.name));
    let mut last = (view.done_bytes, tokio::time::Instant::now());
    while view.state != "done" {
        if view.state == "failed" {
            anyhow::bail!(
                "file {id} failed: {}",
                view.error.as_deref().unwrap_or("unknown reason")
            );
        }
        if let Some(b) = &progress {
            b.set_position(view.done_bytes);
        }
        if view.done_bytes != last.0 {
            last = (view.done_bytes, tokio::time::Instant::now());
        } else if last.1.elapsed() > STALL {
            anyhow::bail!(
                "file {id}: no progress for {} s (is the sender's node running?); the node keeps \
                 trying, run `rhizo files get {id}` again later",
                STALL.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
        view = api.get(&format!("/v1/files/{id}/info")).await?;
    }
    if let Some(b) = progress {
        b.set_position(view.total_bytes);
        b.finish_and_clear();
    }
    let out = match out {
        Some(p) => p,
        None => std::env::current_dir()?.join(&view.name),
    };
    let out = if out.is_absolute() {
        out
    } else {
        std::env::current_dir()?.join(out)
    };
    let saved: FileView = api
        .post(
            &format!("/v1/files/{id}/save"),
            &SaveFileRequest {
                path: out.display().to_string(),
            },
        )
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&saved)?);
    } else {
        println!(
            "saved {} ({}) to {}",
            saved.name,
            human_size(saved.size),
            out.display()
        );
    }
    Ok(())
}
