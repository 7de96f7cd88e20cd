//! `rhizo tui`: a full-screen terminal UI over the running node's local API only.
//!
//! ```text
//!  keys, paste, resize ─┐                      ┌─▶ net::serve_commands ─▶ /v1/… (tasks)
//!  SIGTERM, SIGHUP ─────┼─▶ UI loop (App) ─Command (bounded)─┘                 │
//!  1 s tick ────────────┘      ▲    │                                          │
//!                              │    └─▶ view::draw (ratatui)                   │
//!                              └──────── Update (bounded) ◀── net::forward_events ◀── /v1/events
//! ```
//!
//! The loop never waits for the network: API calls and the event stream run in tasks; the loop
//! hands them commands with `try_send` and reads their answers in a `select!`.
//!
//! # Layout
//! - `app`: the state and what keys, answers and events do to it (no I/O).
//! - `commands`: the input line's `/` commands and the help text.
//! - `model`: conversations, lines, marks, status and overlays, from the API's views.
//! - `net`: the tasks that call the API and read `/v1/events`.
//! - `overlays`: help, ticket QR, requests, safety number, devices, agents and tasks.
//! - `terminal`: raw mode and the alternate screen, restored on exit, panic and signals.
//! - `view`: drawing the main screen.

mod app;
mod commands;
mod model;
mod net;
mod overlays;
mod terminal;
mod view;

#[cfg(test)]
mod tests;

use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use rhizo_node::Config;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::api_client::ApiClient;

/// Commands waiting for the network side.
const COMMAND_QUEUE: usize = 32;
/// Answers and events waiting for the UI.
const UPDATE_QUEUE: usize = 256;
/// The clock of periodic refreshes.
const TICK: Duration = Duration::from_secs(1);

/// `rhizo tui`.
pub(crate) async fn run(config: &Config) -> anyhow::Result<()> {
    // Find the node before taking the terminal over: "not running" prints normally.
    let api = ApiClient::connect(config)?;
    if !api.is_up().await {
        anyhow::bail!("the rhizo node does not answer: start it with `rhizo run`");
    }
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (update_tx, updates) = mpsc::channel(UPDATE_QUEUE);
    let worker = tokio::spawn(net::serve_commands(
        api.clone(),
        command_rx,
        update_tx.clone(),
    ));
    let events = tokio::spawn(net::forward_events(api, update_tx));
    let mut guard = terminal::TerminalGuard::enter()?;
    let result = ui_loop(&mut guard, commands, updates).await;
    drop(guard);
    worker.abort();
    events.abort();
    result
}

/// Draws, then waits for a key, an answer, a tick or a signal; until the user leaves.
async fn ui_loop(
    guard: &mut terminal::TerminalGuard,
    commands: mpsc::Sender<net::Command>,
    mut updates: mpsc::Receiver<net::Update>,
) -> anyhow::Result<()> {
    let mut app = app::App::new();
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    loop {
        for command in app.take_commands() {
            if let Err(mpsc::error::TrySendError::Full(command)) = commands.try_send(command) {
                app.requeue(command);
            }
        }
        if let Some(typing) = app.take_typing() {
            // Dropped when the queue is full: the next keystroke sends another.
            let _ = commands.try_send(typing);
        }
        guard.terminal.draw(|frame| view::draw(frame, &app))?;
        if app.quit {
            return Ok(());
        }
        tokio::select! {
            key = keys.next() => match key {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => app.on_key(key),
                Some(Ok(Event::Paste(text))) => app.on_paste(&text),
                // Resize: the next draw fits the new size.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            update = updates.recv() => match update {
                Some(update) => app.on_update(update),
                None => return Ok(()),
            },
            _ = tick.tick() => app.on_tick(),
            _ = term.recv() => return Ok(()),
            _ = hangup.recv() => return Ok(()),
        }
    }
}
