//! Taking the terminal over and giving it back: raw mode, the alternate screen and bracketed
//! paste on entry; all undone on exit, on panic (a panic hook) and when the guard drops.

use std::{
    io::{self, Stdout, Write, stdout},
    panic::PanicHookInfo,
};

use crossterm::{
    cursor::Show,
    event::{DisableBracketedPaste, EnableBracketedPaste},
    execute,
    terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
};
use ratatui::{Terminal, backend::CrosstermBackend};

/// A panic hook, as `std::panic::set_hook` takes and `take_hook` gives it.
pub(crate) type PanicHook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

/// The terminal while the TUI owns it; dropping it restores the terminal.
#[derive(Debug)]
pub(crate) struct TerminalGuard {
    /// The ratatui terminal.
    pub(crate) terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen, and installs the panic hook.
    pub(crate) fn enter() -> anyhow::Result<Self> {
        install_panic_hook();
        enable_raw_mode()?;
        if let Err(e) = execute!(stdout(), EnterAlternateScreen, EnableBracketedPaste) {
            restore();
            return Err(e.into());
        }
        match Terminal::new(CrosstermBackend::new(stdout())) {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                restore();
                Err(e.into())
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves raw mode and the alternate screen and shows the cursor (errors ignored: this runs
/// on the way out, also from the panic hook).
pub(crate) fn restore() {
    let _ = disable_raw_mode();
    let _ = write_restore(&mut stdout());
}

/// Writes (and flushes) the sequences that give the screen back: bracketed paste off
/// (`ESC[?2004l`), the alternate screen left (`ESC[?1049l`), the cursor shown (`ESC[?25h`).
pub(crate) fn write_restore(out: &mut impl Write) -> io::Result<()> {
    execute!(out, DisableBracketedPaste, LeaveAlternateScreen, Show)
}

/// A panic hook that first leaves raw mode and writes the restoring sequences to `out()` — so
/// the panic's message is readable — then runs `previous`.
pub(crate) fn restoring_hook<W: Write>(
    previous: PanicHook,
    out: impl Fn() -> W + Sync + Send + 'static,
) -> PanicHook {
    Box::new(move |info| {
        let _ = disable_raw_mode();
        let _ = write_restore(&mut out());
        previous(info);
    })
}

/// Puts [`restoring_hook`] on stdout in front of the hook that was there before.
pub(crate) fn install_panic_hook() {
    std::panic::set_hook(restoring_hook(std::panic::take_hook(), stdout));
}
