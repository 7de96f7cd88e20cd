//! Fuzzes contact-ticket parsing (`rhizo add <ticket>` reads untrusted text):
//! it must never panic, whatever the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rhizo_core::ticket::ContactTicket;

fuzz_target!(|text: &str| {
    if let Ok(ticket) = text.parse::<ContactTicket>() {
        // Whatever parses prints back to the same ticket.
        assert_eq!(
            ticket.to_string().parse::<ContactTicket>().ok(),
            Some(ticket)
        );
    }
    // Most random text lacks the prefix; try it with the prefix too.
    let _ = format!("rhz1contact{text}").parse::<ContactTicket>();
});
