//! [`Event`]: what the engine tells the driver to show the local API.

use rhizo_store::messaging::MessageState;

/// Something the user should see.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A message arrived.
    MessageReceived {
        /// Message row id.
        id: i64,
        /// Contact name.
        contact: String,
        /// The text.
        text: String,
        /// Sender's timestamp (unix ms).
        sent_at: i64,
    },
    /// An outgoing message changed state.
    MessageState {
        /// Message row id.
        id: i64,
        /// Contact name.
        contact: String,
        /// The new state.
        state: MessageState,
    },
    /// Someone who is not a contact sent a message: it is held as a message request.
    MessageRequest {
        /// The sender's UID.
        uid: String,
    },
}
