//! Conversations: creating one (the MLS group with the contact's devices, its Welcome as the
//! first envelope), encrypting into one (with the rekey rule's self-update first), and sealing
//! signed envelopes. The membership rule lists every expected (root, device) pair, so a
//! conversation is a set of members with several devices each.

use rhizo_core::{
    DevicePublicKey, RootPublicKey, Uid,
    envelope::{ErrorCode, MessageType, NONCE_LEN, SecureMessage, SessionId},
};
use rhizo_e2e::Conversation;
use rhizo_store::{
    Reader, Tx,
    messaging::{Contact, ConversationRow, NewMessage},
};
use tracing::debug;

use crate::{Engine, EngineError, Me, inbound::Reject, rng::EngineRng};

/// The MLS membership rule for a conversation with `contact`: every member device is a listed
/// device of ours (this one and the others our device list names, issue 15) or a listed device
/// of the contact, each certified by its user's root (see [`Conversation::check_members`]).
/// Refused as [`ErrorCode::UnexpectedMember`] (final).
pub(crate) fn check_membership(
    reader: &Reader<'_>,
    conversation: &Conversation,
    me: &Me,
    contact: &Contact,
) -> Result<(), Reject> {
    let expected = expected_members(reader, me, contact).map_err(Reject::internal)?;
    conversation.check_members(&expected).map_err(|e| {
        debug!(error = %e, "conversation refused: unexpected member");
        Reject::Code(ErrorCode::UnexpectedMember)
    })
}

/// The (root, device) pairs a conversation with `contact` may contain: our listed devices
/// (this one first) under our root, and each listed device of the contact under the contact's
/// root.
pub(crate) fn expected_members(
    reader: &Reader<'_>,
    me: &Me,
    contact: &Contact,
) -> Result<Vec<(RootPublicKey, DevicePublicKey)>, EngineError> {
    let mut expected: Vec<(RootPublicKey, DevicePublicKey)> =
        crate::devices::listed_devices_of(reader, me, me.uid.as_bytes())?
            .into_iter()
            .map(|device| (me.root_public, device))
            .collect();
    if let Ok(root) = RootPublicKey::from_bytes(&contact.root_pk) {
        expected.extend(
            contact
                .devices
                .iter()
                .filter_map(|d| DevicePublicKey::from_bytes(&d.device_pk).ok())
                .map(|device| (root, device)),
        );
    }
    Ok(expected)
}

/// Creates the MLS group with the contact's devices, persists the conversation and queues the
/// Welcome as the conversation's first envelope, in a savepoint of `tx` (all of it or nothing).
pub(crate) fn create_conversation(
    tx: &mut Tx<'_>,
    engine: &Engine,
    contact: &Contact,
    key_packages: &[Vec<u8>],
    now: i64,
) -> Result<ConversationRow, EngineError> {
    let session_id: [u8; 16] = engine.random();
    tx.in_savepoint(|tx| -> Result<_, EngineError> {
        let mls = tx.mls().map_err(EngineError::Mls)?;
        let (conversation, welcome) =
            Conversation::create(&mls, &engine.mls_device, key_packages, now as u64 / 1000)
                .map_err(EngineError::Mls)?;
        // The KeyPackages came from the contact's bundles and our own other devices' (issue
        // 15): each must be a listed device of the contact or of ours, or we would invite
        // someone else ourselves (rolled back if not).
        conversation
            .check_members(&expected_members(tx, &engine.me, contact)?)
            .map_err(EngineError::Mls)?;
        let row = ConversationRow {
            session_id,
            group_id: conversation.id().to_vec(),
            contact_uid: contact.uid,
            created_at: now,
        };
        tx.insert_conversation(&row)?;
        let welcome = Outgoing {
            msg_type: MessageType::Welcome,
            kind: "welcome",
            body: None,
            payload: welcome,
        };
        queue_sealed_tx(tx, engine, contact, &session_id, welcome, now)?;
        Ok(row)
    })?
}

/// The conversation for a first message to `contact`: the open one (another send may have made
/// it meanwhile), else a new one with the devices whose KeyPackages the driver fetched; with
/// our profile record for the first message to carry when it is new (empty otherwise).
/// Messages parked for a new conversation with the contact move into it first, in order.
pub(crate) fn first_conversation(
    tx: &mut Tx<'_>,
    engine: &Engine,
    contact: &Contact,
    key_packages: &[Vec<u8>],
    now: i64,
) -> Result<(ConversationRow, Vec<u8>), EngineError> {
    if let Some(row) = tx.open_conversation_with(&contact.uid)? {
        crate::reestablish::unpark_into(tx, engine, contact, &row, Vec::new(), now)?;
        return Ok((row, Vec::new()));
    }
    let row = create_conversation(tx, engine, contact, key_packages, now)?;
    let profile = crate::profiles::own_profile_record(tx, &engine.me)?.unwrap_or_default();
    // Messages waiting for a new conversation with the contact go first (the first of them
    // carries the profile).
    let (moved, _) =
        crate::reestablish::unpark_into(tx, engine, contact, &row, profile.clone(), now)?;
    Ok((row, if moved > 0 { Vec::new() } else { profile }))
}

/// Encrypts `content` in the conversation and queues the envelope, inside `tx`; the
/// conversation is staged in the cache (the caller settles it when `tx` ends).
#[allow(clippy::too_many_arguments)]
pub(crate) fn queue_application_tx(
    tx: &mut Tx<'_>,
    engine: &Engine,
    contact: &Contact,
    session: &ConversationRow,
    content: &[u8],
    kind: &str,
    body: Option<&str>,
    now: i64,
) -> Result<i64, EngineError> {
    // Messages held for a fresh epoch go first once it is there (crate::restored).
    crate::restored::release_held(tx, engine.into(), &session.session_id, now)?;
    let Some(ciphertext) = encrypt_application(tx, engine, contact, session, content, now)? else {
        let seq = tx.take_next_seq(&session.session_id)?;
        let new = NewMessage {
            session_id: session.session_id,
            sender_device: *engine.me.device.public().as_bytes(),
            seq,
            kind,
            body,
            sent_at: now,
        };
        return Ok(tx.insert_held(&new, content)?);
    };
    let message = Outgoing {
        msg_type: MessageType::Application,
        kind,
        body,
        payload: ciphertext,
    };
    queue_sealed_tx(tx, engine, contact, &session.session_id, message, now)
}

/// Encrypts `content` in the conversation, inside `tx` (after queueing the rekey rule's
/// self-update, when one is due); the MLS ciphertext, or `None` when the message must be held
/// for a fresh epoch after a restore ([`crate::restored`]: the self-update is queued, the
/// caller holds `content`). The conversation is staged in the cache (the caller settles it
/// when `tx` ends).
pub(crate) fn encrypt_application(
    tx: &mut Tx<'_>,
    engine: &Engine,
    contact: &Contact,
    session: &ConversationRow,
    content: &[u8],
    now: i64,
) -> Result<Option<Vec<u8>>, EngineError> {
    let mls = tx.mls().map_err(EngineError::Mls)?;
    let mut conversation = engine
        .conversations
        .load(&mls, &session.group_id)
        .map_err(EngineError::Mls)?
        .ok_or(EngineError::Internal("conversation state missing"))?;
    let unix = u64::try_from(now / 1000).unwrap_or(0);
    let sealer = engine.into();
    if crate::restored::hold_for_fresh_epoch(tx, sealer, contact, session, &mut conversation, now)?
    {
        engine.conversations.stage(conversation);
        return Ok(None);
    }
    // Seed 000's rekey rule: a self-update commit after N sent messages or T time. It goes
    // out before this message and is confirmed when the peer's receipt says it applied it
    // (this message is still sealed in the current epoch: protocol.md §13).
    if conversation.rekey_due(&engine.rekey, unix) && !conversation.has_pending_commit() {
        let commit = conversation
            .self_update(&mls, &engine.mls_device, unix)
            .map_err(EngineError::Mls)?;
        let commit = Outgoing::commit(commit);
        queue_sealed_tx(tx, engine, contact, &session.session_id, commit, now)?;
    }
    let ciphertext = conversation
        .encrypt(&mls, &engine.mls_device, content, unix)
        .map_err(EngineError::Mls)?;
    engine.conversations.stage(conversation);
    Ok(Some(ciphertext))
}

/// An envelope to queue in a conversation.
pub(crate) struct Outgoing<'a> {
    /// Its type.
    pub(crate) msg_type: MessageType,
    /// The outbox row's kind (`welcome`, `commit`, `text`, `profile`, `receipt`, …).
    pub(crate) kind: &'a str,
    /// The text shown in the history, for texts.
    pub(crate) body: Option<&'a str>,
    /// The envelope's payload (MLS bytes or a signed receipt).
    pub(crate) payload: Vec<u8>,
}

impl Outgoing<'_> {
    /// An MLS commit (outbox kind `commit`).
    pub(crate) fn commit(payload: Vec<u8>) -> Self {
        Outgoing {
            msg_type: MessageType::Commit,
            kind: "commit",
            body: None,
            payload,
        }
    }
}

/// Inside a transaction: takes the conversation's next sequence number, seals `out` to the
/// contact and queues it in the outbox; its row id.
pub(crate) fn queue_sealed_tx(
    tx: &mut Tx<'_>,
    engine: &Engine,
    contact: &Contact,
    session_id: &[u8; 16],
    out: Outgoing<'_>,
    now: i64,
) -> Result<i64, EngineError> {
    let (me, rng) = (&engine.me, &engine.rng);
    let seq = tx.take_next_seq(session_id)?;
    let envelope = seal(
        me,
        rng,
        contact,
        session_id,
        seq,
        out.msg_type,
        out.payload,
        now,
    )?;
    Ok(tx.insert_outgoing(
        &NewMessage {
            session_id: *session_id,
            sender_device: *me.device.public().as_bytes(),
            seq,
            kind: out.kind,
            body: out.body,
            sent_at: now,
        },
        &envelope,
        now,
    )?)
}

/// Builds and signs an envelope to a contact (its nonce from `rng`, the engine's generator).
#[allow(clippy::too_many_arguments)]
pub(crate) fn seal(
    me: &Me,
    rng: &EngineRng,
    contact: &Contact,
    session_id: &[u8; 16],
    seq: u64,
    msg_type: MessageType,
    payload: Vec<u8>,
    now: i64,
) -> Result<Vec<u8>, EngineError> {
    let recipient = Uid::from_bytes(&contact.uid);
    seal_to(me, rng, recipient, session_id, seq, msg_type, payload, now)
}

/// Builds and signs an envelope whose `recipient_id` is `recipient` (a UID, or a group
/// address), its nonce from `rng`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn seal_to(
    me: &Me,
    rng: &EngineRng,
    recipient: Uid,
    session_id: &[u8; 16],
    seq: u64,
    msg_type: MessageType,
    payload: Vec<u8>,
    now: i64,
) -> Result<Vec<u8>, EngineError> {
    let mut envelope = SecureMessage {
        msg_type,
        sender_id: me.uid,
        sender_device: me.device.public(),
        recipient_id: recipient,
        session_id: SessionId::from_bytes(*session_id),
        sequence_num: seq,
        timestamp: u64::try_from(now).unwrap_or(0),
        nonce: rng.bytes::<NONCE_LEN>(),
        payload: payload.into(),
        signature: [0; 64],
    };
    envelope.sign(&me.device).map_err(EngineError::from)?;
    Ok(envelope.encode())
}
