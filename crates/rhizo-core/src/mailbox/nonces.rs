//! [`NonceBook`]: the replica's single-use challenge nonces.

use std::collections::{HashMap, VecDeque};

use super::{CHALLENGE_TTL_MS, MailboxError};
use crate::Uid;

/// The single-use challenge nonces a replica issued: at most `capacity` (the oldest is
/// evicted), each for one recipient UID and valid [`CHALLENGE_TTL_MS`].
#[derive(Debug)]
pub struct NonceBook {
    capacity: usize,
    issued: HashMap<[u8; 32], (Uid, u64)>,
    order: VecDeque<[u8; 32]>,
}

impl NonceBook {
    /// An empty book holding at most `capacity` nonces.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            issued: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Issues `random` as a nonce for `recipient`; returns it and its expiry (unix ms).
    pub fn issue(&mut self, recipient: Uid, random: [u8; 32], now_ms: u64) -> ([u8; 32], u64) {
        let expires_at = now_ms.saturating_add(CHALLENGE_TTL_MS);
        // Expired ones first, then the oldest, make room.
        while let Some(front) = self.order.front() {
            let stale = self.issued.get(front).is_none_or(|(_, e)| *e <= now_ms);
            if stale || self.issued.len() >= self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.issued.remove(&old);
                }
            } else {
                break;
            }
        }
        if self
            .issued
            .insert(random, (recipient, expires_at))
            .is_none()
        {
            self.order.push_back(random);
        }
        (random, expires_at)
    }

    /// Consumes `nonce` for `recipient`: it is removed whatever the outcome, so it works at most
    /// once.
    pub fn take(
        &mut self,
        recipient: &Uid,
        nonce: &[u8; 32],
        now_ms: u64,
    ) -> Result<(), MailboxError> {
        let Some((uid, expires_at)) = self.issued.remove(nonce) else {
            return Err(MailboxError::UnknownNonce);
        };
        self.order.retain(|n| n != nonce);
        if uid != *recipient {
            return Err(MailboxError::UnknownNonce);
        }
        if expires_at <= now_ms {
            return Err(MailboxError::ExpiredNonce);
        }
        Ok(())
    }

    /// Outstanding nonces.
    pub fn len(&self) -> usize {
        self.issued.len()
    }

    /// Whether none is outstanding.
    pub fn is_empty(&self) -> bool {
        self.issued.is_empty()
    }
}
