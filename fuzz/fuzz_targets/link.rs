//! Fuzzes link-ticket parsing (`rhizo device add <ticket>` reads untrusted text) and the
//! `/rhizo/link/1` messages (network input): they must never panic, whatever the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rhizo_core::link::{LinkRequest, LinkResponse, LinkTicket};

fuzz_target!(|data: &[u8]| {
    let _ = LinkRequest::decode(data);
    let _ = LinkResponse::decode(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ticket) = text.parse::<LinkTicket>() {
            // Whatever parses prints back to the same ticket.
            assert_eq!(ticket.to_string().parse::<LinkTicket>().ok(), Some(ticket));
        }
        let _ = format!("rhz1link{text}").parse::<LinkTicket>();
    }
});
