//! Files and attachments (issue 16): the content store, serving `/rhizo/file/1`, and fetching.
//!
//! # Layout
//! - [`content`]: the content store under the data dir.
pub mod content;
