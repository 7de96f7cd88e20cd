//! B9: group commits — what a commit costs as a group grows, against the MLS tree-math bound.
//!
//! For each size N (10, 100 and 1,000 members, one device each; 4 and 10 with `--quick`; or
//! `--b9-members`), on
//! in-memory rhizo-e2e stores, one core, with rhizo-e2e's group API (the 0xF7A1 roles
//! extension in the GroupContext, own commits merged at once):
//!
//! - **create**: the creator's `Conversation::create_group` with the N − 1 other KeyPackages
//!   (their generation is not timed), and the Welcome's size;
//! - **join**: one member (the *observer*) joins from that Welcome, so it can process commits;
//! - **add**: the creator (an admin) adds one new device (`add_members`: rhizo-e2e makes an
//!   Add-only commit, without an update path), the observer processes it — the commit's size,
//!   the time to create it and the time to process it (median of the rounds);
//! - **remove**: the same for removing one device (`remove_members`, a Remove proposal and an
//!   update path).
//!
//! **Reference, same run.** A full binary tree of N leaves has a direct path of
//! ⌈log₂ N⌉ nodes; an update path in such a tree carries one node per level: the new HPKE
//! public key and one HPKE ciphertext of the path secret. One path node's size and one HPKE
//! operation's time (the mean of one seal and one open) are measured with the group's own
//! ciphersuite (X-Wing) in the same run; the rows report commit size ÷ (⌈log₂ N⌉ × path node)
//! and time ÷ (⌈log₂ N⌉ × HPKE op). A ratio far above 1 means the commit encrypts to more than
//! one node per level: the tree has blank parents (every member added by the creator leaves
//! the parents off the creator's path blank until those members commit), so a copath node
//! resolves to all the leaves below it.
//!
//! **Filled tree** (the state groups reach once every joiner made its first self-update,
//! rhizo-engine `groups::selfupdate`): for each size, the group is built in-process one member
//! at a time — the creator adds it (an Add-only commit), it joins from the Welcome, makes its
//! self-update (a commit with a path: its direct path is filled), and the creator processes
//! that — so every member committed once, and the last member to join is the observer. Then
//! the same remove rounds: the commit's size, created by the creator, processed by the
//! observer. Rows also give the observer's self-update (size, processed by the creator) and
//! the tree's blank paths (parent nodes blank above a member; 0 when filled).
//!
//! Targets (issue 14): processing a commit at 1,000 members ≤ 25 ms, a commit ≤ 64 KiB.
//! Sizes the MLS layer refuses (its device cap, its message-size cap) fail with its error.

use std::time::Instant;

use anyhow::{Context, bail};
use openmls::prelude::{OpenMlsCrypto as _, tls_codec::Size as _};
use openmls_rust_crypto::RustCrypto;
use rhizo_core::group::{GroupProfile, GroupState};
use rhizo_core::{DeviceKey, DevicePublicKey, RootKey};
use rhizo_e2e::{Conversation, Device, E2eStore, MemberRef, Processed};
use serde::Serialize;

use crate::report::{Row, Target};
use crate::{median, ms};

/// Group sizes of a full run.
pub const SIZES: [usize; 3] = [10, 100, 1000];
/// Group sizes of a quick run.
pub const QUICK_SIZES: [usize; 2] = [4, 10];
/// The size the targets apply to.
pub const TARGET_MEMBERS: usize = 1000;
/// Target: processing one commit at [`TARGET_MEMBERS`], ms.
pub const TARGET_PROCESS_MS: f64 = 25.0;
/// Target: one commit's size, KiB.
pub const TARGET_COMMIT_KIB: f64 = 64.0;

/// The same-run reference: one tree node's cost with the group's ciphersuite.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PathNodeCost {
    /// HPKE public key (X-Wing), bytes.
    pub public_key_bytes: usize,
    /// One HPKE ciphertext of a 32-byte path secret (KEM output + AEAD), bytes.
    pub ciphertext_bytes: usize,
    /// One `UpdatePathNode` with one ciphertext, TLS-encoded, bytes.
    pub path_node_bytes: usize,
    /// One HPKE seal, ms (median).
    pub seal_ms: f64,
    /// One HPKE open, ms (median).
    pub open_ms: f64,
    /// One HPKE operation: the mean of seal and open, ms.
    pub op_ms: f64,
}

/// Measures [`PathNodeCost`] over `rounds` seal/open pairs.
pub fn path_node_cost(rounds: usize) -> anyhow::Result<PathNodeCost> {
    let crypto = RustCrypto::default();
    let config = || rhizo_e2e::CIPHERSUITE.hpke_config();
    let pair = crypto
        .derive_hpke_keypair(config(), &[7u8; 64])
        .map_err(|e| anyhow::anyhow!("HPKE key pair: {e:?}"))?;
    let secret = [0x5au8; 32];
    let (mut seals, mut opens) = (Vec::new(), Vec::new());
    let mut ciphertext_bytes = 0;
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let ct = crypto
            .hpke_seal(config(), &pair.public, b"path", b"", &secret)
            .map_err(|e| anyhow::anyhow!("HPKE seal: {e:?}"))?;
        seals.push(ms(start.elapsed()));
        let start = Instant::now();
        let pt = crypto
            .hpke_open(config(), &ct, &pair.private, b"path", b"")
            .map_err(|e| anyhow::anyhow!("HPKE open: {e:?}"))?;
        opens.push(ms(start.elapsed()));
        if pt != secret {
            bail!("HPKE open returned other bytes");
        }
        ciphertext_bytes = ct.tls_serialized_len();
    }
    let public_key_bytes = pair.public.len();
    // UpdatePathNode = HPKEPublicKey (varint-prefixed) + a vector of one HPKECiphertext.
    let path_node_bytes = varint_len(public_key_bytes)
        + public_key_bytes
        + varint_len(ciphertext_bytes)
        + ciphertext_bytes;
    let (seal_ms, open_ms) = (median(&seals), median(&opens));
    Ok(PathNodeCost {
        public_key_bytes,
        ciphertext_bytes,
        path_node_bytes,
        seal_ms,
        open_ms,
        op_ms: f64::midpoint(seal_ms, open_ms),
    })
}

/// The length of a TLS (RFC 9000 style, as MLS uses) variable-length integer prefix.
fn varint_len(n: usize) -> usize {
    match n {
        0..=63 => 1,
        64..=16_383 => 2,
        _ => 4,
    }
}

/// The direct path length of a left-balanced tree with `members` leaves: ⌈log₂ N⌉, at least 1.
pub fn path_len(members: usize) -> usize {
    let mut levels = 0;
    while (1usize << levels) < members.max(2) {
        levels += 1;
    }
    levels
}

/// One commit kind's figures at one size (medians over the rounds).
#[derive(Debug, Clone, Serialize)]
pub struct CommitCost {
    /// Serialized commit (MLSMessage), bytes.
    pub bytes: usize,
    /// The committer: create it, ms.
    pub create_ms: f64,
    /// Another member: process it, ms.
    pub process_ms: f64,
    /// Each round's processing time, ms.
    pub process_samples_ms: Vec<f64>,
}

/// B9 at one size.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSize {
    /// Members (one device each).
    pub members: usize,
    /// ⌈log₂ N⌉.
    pub path_len: usize,
    /// `Conversation::create` with N − 1 KeyPackages, ms.
    pub create_ms: f64,
    /// The Welcome it returned, bytes.
    pub welcome_bytes: usize,
    /// The observer's `Conversation::join`, ms.
    pub join_ms: f64,
    /// Adding one device.
    pub add: CommitCost,
    /// Removing one device.
    pub remove: CommitCost,
}

/// B9's result.
#[derive(Debug, Clone, Serialize)]
pub struct B9Result {
    /// The reference.
    pub node: PathNodeCost,
    /// One entry per size measured, in order.
    pub sizes: Vec<GroupSize>,
    /// Sizes the MLS layer refused: (members, its error).
    pub refused: Vec<(usize, String)>,
    /// The same sizes with a filled tree (every member self-updated once).
    pub filled: Vec<FilledSize>,
}

/// B9 at one size, in a tree every member filled with its own self-update.
#[derive(Debug, Clone, Serialize)]
pub struct FilledSize {
    /// Members (one device each).
    pub members: usize,
    /// ⌈log₂ N⌉.
    pub path_len: usize,
    /// Building the group one member at a time (adds, joins, self-updates), s.
    pub build_secs: f64,
    /// Parent nodes still blank above a member once built (0: filled).
    pub blank_paths: usize,
    /// The last member's self-update: bytes, and the creator's processing of it, ms.
    pub self_update_bytes: usize,
    /// See `self_update_bytes`.
    pub self_update_process_ms: f64,
    /// Removing one device: size, created by the creator, processed by the observer.
    pub remove: CommitCost,
}

/// A fresh device: a new root certifies a new device key.
fn device() -> anyhow::Result<Device> {
    let root = RootKey::generate()?;
    let key = DeviceKey::generate()?;
    let cert = root.certify_device(&key.public(), now());
    Ok(Device::new(&key.to_bytes(), &cert.encode())?)
}

fn now() -> u64 {
    u64::try_from(rhizo_node::unix_now()).unwrap_or(0)
}

/// One KeyPackage of a fresh device, generated in `store` (the device never joins), and the
/// device's key (to remove it later).
fn key_package(store: &E2eStore) -> anyhow::Result<(Vec<u8>, DevicePublicKey)> {
    let device = device()?;
    let mut kps = rhizo_e2e::create_key_packages(store, &device, 1, false)?;
    let kp = kps.pop().context("no KeyPackage made")?;
    Ok((kp, device.certificate().device()))
}

/// A group of `members` devices with the creator and one observer joined.
struct Group {
    creator_store: E2eStore<'static>,
    observer_store: E2eStore<'static>,
    others: E2eStore<'static>,
    creator: Device,
    observer: Device,
    creator_conv: Conversation,
    observer_conv: Conversation,
    /// Devices that never joined, removable.
    removable: Vec<DevicePublicKey>,
}

/// Builds the group and times create and join.
fn build(members: usize) -> anyhow::Result<(Group, f64, usize, f64)> {
    let (creator_store, observer_store) =
        (E2eStore::open_in_memory()?, E2eStore::open_in_memory()?);
    let others = E2eStore::open_in_memory()?;
    let (creator, observer) = (device()?, device()?);
    let mut kps = rhizo_e2e::create_key_packages(&observer_store, &observer, 1, false)?;
    let mut removable = Vec::new();
    for _ in 2..members {
        let (kp, key) = key_package(&others)?;
        kps.push(kp);
        removable.push(key);
    }
    let state = GroupState::new(
        vec![creator.certificate().root().uid()],
        GroupProfile::named("B9")?,
    )?;
    let start = Instant::now();
    let (creator_conv, welcome) =
        Conversation::create_group(&creator_store, &creator, &state, &kps, now())
            .with_context(|| format!("create a group of {members}"))?;
    let create_ms = ms(start.elapsed());
    let welcome = welcome.context("a group with members has a Welcome")?;
    let start = Instant::now();
    let observer_conv = Conversation::join(&observer_store, &observer, &welcome, now())
        .with_context(|| {
            format!(
                "join a group of {members} from its {}-byte Welcome",
                welcome.len()
            )
        })?;
    let join_ms = ms(start.elapsed());
    let group = Group {
        creator_store,
        observer_store,
        others,
        creator,
        observer,
        creator_conv,
        observer_conv,
        removable,
    };
    Ok((group, create_ms, welcome.len(), join_ms))
}

/// Which commit [`Group::commit`] makes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Add,
    Remove,
}

impl Group {
    /// The creator makes one commit of `kind` (applied at once); the observer processes it.
    /// Returns (bytes, create ms, process ms).
    fn commit(&mut self, kind: Kind) -> anyhow::Result<(usize, f64, f64)> {
        let (store, device) = (&self.creator_store, &self.creator);
        let (commit, create_ms) = match kind {
            Kind::Add => {
                let (kp, key) = key_package(&self.others)?;
                let start = Instant::now();
                let out = self.creator_conv.add_members(store, device, &[kp], now())?;
                self.removable.push(key);
                (out.commit, ms(start.elapsed()))
            }
            Kind::Remove => {
                let key = self.removable.pop().context("nobody left to remove")?;
                let start = Instant::now();
                let target = [MemberRef::Device(key)];
                let out = self
                    .creator_conv
                    .remove_members(store, device, &target, now())?;
                (out.commit, ms(start.elapsed()))
            }
        };
        let start = Instant::now();
        let out =
            self.observer_conv
                .process(&self.observer_store, &self.observer, &commit, now())?;
        let process_ms = ms(start.elapsed());
        if !matches!(out.first(), Some(Processed::CommitApplied { .. })) {
            bail!("the observer did not apply the {kind:?} commit: {out:?}");
        }
        Ok((commit.len(), create_ms, process_ms))
    }

    /// `rounds` commits of `kind`; the medians.
    fn commits(&mut self, kind: Kind, rounds: usize) -> anyhow::Result<CommitCost> {
        let (mut bytes, mut create, mut process) = (vec![], vec![], vec![]);
        for _ in 0..rounds.max(1) {
            let (b, c, p) = self.commit(kind)?;
            bytes.push(b as f64);
            create.push(c);
            process.push(p);
        }
        Ok(CommitCost {
            bytes: median(&bytes) as usize,
            create_ms: median(&create),
            process_ms: median(&process),
            process_samples_ms: process,
        })
    }
}

/// B9 at one size.
pub fn run_size(members: usize, rounds: usize) -> anyhow::Result<GroupSize> {
    let (mut group, create_ms, welcome_bytes, join_ms) = build(members)?;
    let add = group
        .commits(Kind::Add, rounds)
        .with_context(|| format!("add commits at {members} members"))?;
    let remove = group
        .commits(Kind::Remove, rounds)
        .with_context(|| format!("remove commits at {members} members"))?;
    Ok(GroupSize {
        members,
        path_len: path_len(members),
        create_ms,
        welcome_bytes,
        join_ms,
        add,
        remove,
    })
}

/// Runs B9: the reference, then every size of `sizes` ([`SIZES`], [`QUICK_SIZES`]); a size
/// that fails is listed in [`B9Result::refused`] with its error and the next size still runs.
pub fn run_b9(quick: bool, sizes: &[usize]) -> anyhow::Result<B9Result> {
    let node = path_node_cost(if quick { 20 } else { 200 })?;
    let rounds = if quick { 2 } else { 5 };
    let (mut out, mut refused, mut filled) = (Vec::new(), Vec::new(), Vec::new());
    for &members in sizes {
        crate::progress(&format!("B9: group of {members}"));
        match run_size(members, rounds) {
            Ok(size) => out.push(size),
            Err(e) => refused.push((members, format!("{e:#}"))),
        }
        crate::progress(&format!("B9: group of {members}, filled tree"));
        match run_filled(members, rounds) {
            Ok(size) => filled.push(size),
            Err(e) => refused.push((members, format!("filled tree: {e:#}"))),
        }
    }
    Ok(B9Result {
        node,
        sizes: out,
        refused,
        filled,
    })
}

/// A member that joins, makes its self-update and is done (its store is dropped), or stays
/// as the observer.
fn join_and_update(
    creator: &mut (E2eStore<'static>, Device, Conversation),
) -> anyhow::Result<(E2eStore<'static>, Device, Conversation)> {
    let (creator_store, creator_device, creator_conv) = creator;
    let store = E2eStore::open_in_memory()?;
    let device = device()?;
    let mut kps = rhizo_e2e::create_key_packages(&store, &device, 1, false)?;
    let kp = kps.pop().context("no KeyPackage made")?;
    let added = creator_conv.add_members(creator_store, creator_device, &[kp], now())?;
    let welcome = added.welcome.context("an add has a Welcome")?;
    let mut conv = Conversation::join(&store, &device, &welcome, now())?;
    let commit = conv.self_update(&store, &device, now())?;
    let out = creator_conv.process(creator_store, creator_device, &commit, now())?;
    if !matches!(out.first(), Some(Processed::CommitApplied { .. })) {
        bail!("the creator did not apply a self-update: {out:?}");
    }
    Ok((store, device, conv))
}

/// B9 at one size in a filled tree (see the module docs).
pub fn run_filled(members: usize, rounds: usize) -> anyhow::Result<FilledSize> {
    let start = Instant::now();
    let creator_device = device()?;
    let creator_store = E2eStore::open_in_memory()?;
    let state = GroupState::new(
        vec![creator_device.certificate().root().uid()],
        GroupProfile::named("B9")?,
    )?;
    let (conv, _) =
        Conversation::create_group(&creator_store, &creator_device, &state, &[], now())?;
    let mut creator = (creator_store, creator_device, conv);
    let mut removable = Vec::new();
    for joined in 1..members.saturating_sub(1) {
        let (_, device, _) = join_and_update(&mut creator)
            .with_context(|| format!("member {joined} of {members}"))?;
        removable.push(device.certificate().device());
        if joined % 100 == 0 {
            crate::progress(&format!("B9: filled tree, {joined} of {members} joined"));
        }
    }
    let (observer_store, observer, observer_conv) =
        join_and_update(&mut creator).context("the observer")?;
    let build_secs = start.elapsed().as_secs_f64();
    // The observer's self-update once more, timed at the creator.
    let (creator_store, creator_device, creator_conv) = creator;
    let mut group = Group {
        creator_store,
        observer_store,
        others: E2eStore::open_in_memory()?,
        creator: creator_device,
        observer,
        creator_conv,
        observer_conv,
        removable,
    };
    let blank_paths = group.observer_conv.blank_paths();
    let update = group
        .observer_conv
        .self_update(&group.observer_store, &group.observer, now())?;
    let start = Instant::now();
    let out = group
        .creator_conv
        .process(&group.creator_store, &group.creator, &update, now())?;
    let self_update_process_ms = ms(start.elapsed());
    if !matches!(out.first(), Some(Processed::CommitApplied { .. })) {
        bail!("the creator did not apply the observer's self-update: {out:?}");
    }
    let remove = group
        .commits(Kind::Remove, rounds)
        .with_context(|| format!("remove commits at {members} members, filled tree"))?;
    Ok(FilledSize {
        members,
        path_len: path_len(members),
        build_secs,
        blank_paths,
        self_update_bytes: update.len(),
        self_update_process_ms,
        remove,
    })
}

impl B9Result {
    /// The table rows.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = vec![
            Row::new("B9", "one path node (X-Wing key + ciphertext)", self.node.path_node_bytes as f64, "B")
                .note("reference: one UpdatePathNode with one HPKE ciphertext of the group's ciphersuite, measured in this run"),
            Row::new("B9", "one HPKE op (mean of seal, open)", self.node.op_ms, "ms"),
        ];
        for size in &self.sizes {
            rows.extend(self.size_rows(size));
        }
        for size in &self.filled {
            rows.extend(self.filled_rows(size));
        }
        rows
    }

    fn filled_rows(&self, s: &FilledSize) -> Vec<Row> {
        let n = s.members;
        let bound_bytes = (s.path_len * self.node.path_node_bytes) as f64;
        let bound_ms = s.path_len as f64 * self.node.op_ms;
        let bytes_ref = format!("{} × path node", s.path_len);
        let ms_ref = format!("{} × HPKE op", s.path_len);
        let label = |what: &str| format!("N={n} filled tree: {what}");
        let mut size = Row::new(
            "B9",
            label("remove commit size"),
            s.remove.bytes as f64 / 1024.0,
            "KiB",
        )
        .reference(bytes_ref.clone(), bound_bytes / 1024.0);
        let mut process = Row::new(
            "B9",
            label("remove commit processed"),
            s.remove.process_ms,
            "ms",
        )
        .reference(ms_ref.clone(), bound_ms);
        let mut update = Row::new(
            "B9",
            label("self-update processed"),
            s.self_update_process_ms,
            "ms",
        )
        .reference(ms_ref.clone(), bound_ms);
        if n == TARGET_MEMBERS {
            size = size.target(Target::value_at_most(TARGET_COMMIT_KIB));
            process = process.target(Target::value_at_most(TARGET_PROCESS_MS));
            update = update.target(Target::value_at_most(TARGET_PROCESS_MS));
        }
        vec![
            Row::new(
                "B9",
                label("built (every member joined and self-updated)"),
                s.build_secs,
                "s",
            ),
            Row::new("B9", label("blank paths"), s.blank_paths as f64, "nodes")
                .note("parent nodes blank above a member after every member's self-update"),
            size,
            process,
            Row::new(
                "B9",
                label("remove commit created"),
                s.remove.create_ms,
                "ms",
            )
            .reference(ms_ref, bound_ms),
            Row::new(
                "B9",
                label("self-update size"),
                s.self_update_bytes as f64 / 1024.0,
                "KiB",
            )
            .reference(bytes_ref, bound_bytes / 1024.0),
            update,
        ]
    }

    fn size_rows(&self, s: &GroupSize) -> Vec<Row> {
        let n = s.members;
        let bound_bytes = (s.path_len * self.node.path_node_bytes) as f64;
        let bound_ms = s.path_len as f64 * self.node.op_ms;
        let bytes_ref = format!("{} × path node", s.path_len);
        let ms_ref = format!("{} × HPKE op", s.path_len);
        let at_target = n == TARGET_MEMBERS;
        let mut rows = vec![
            Row::new("B9", format!("N={n} create"), s.create_ms, "ms"),
            Row::new(
                "B9",
                format!("N={n} Welcome"),
                s.welcome_bytes as f64 / 1024.0,
                "KiB",
            ),
        ];
        for (label, cost) in [("add", &s.add), ("remove", &s.remove)] {
            let mut size = Row::new(
                "B9",
                format!("N={n} {label} commit size"),
                cost.bytes as f64 / 1024.0,
                "KiB",
            )
            .reference(bytes_ref.clone(), bound_bytes / 1024.0);
            let mut process = Row::new(
                "B9",
                format!("N={n} {label} commit processed"),
                cost.process_ms,
                "ms",
            )
            .reference(ms_ref.clone(), bound_ms);
            if at_target {
                size = size.target(Target::value_at_most(TARGET_COMMIT_KIB));
                process = process.target(Target::value_at_most(TARGET_PROCESS_MS));
            }
            rows.push(size);
            rows.push(process);
            rows.push(
                Row::new(
                    "B9",
                    format!("N={n} {label} commit created"),
                    cost.create_ms,
                    "ms",
                )
                .reference(ms_ref.clone(), bound_ms),
            );
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_len_is_the_tree_depth() {
        assert_eq!(path_len(1), 1);
        assert_eq!(path_len(2), 1);
        assert_eq!(path_len(10), 4);
        assert_eq!(path_len(100), 7);
        assert_eq!(path_len(1000), 10);
        assert_eq!(path_len(1024), 10);
        assert_eq!(path_len(1025), 11);
    }

    #[test]
    fn a_filled_tree_has_no_blank_paths_and_small_removes() {
        let filled = run_filled(8, 1).expect("B9 filled at 8 members");
        assert_eq!(filled.blank_paths, 0);
        let blank = run_size(8, 1).expect("B9 at 8 members");
        assert!(
            filled.remove.bytes < blank.remove.bytes,
            "filled {} vs blank {}",
            filled.remove.bytes,
            blank.remove.bytes
        );
    }

    #[test]
    fn a_small_group_measures_every_figure() {
        let size = run_size(3, 1).expect("B9 at 3 members");
        assert!(size.add.bytes > 0 && size.remove.bytes > 0);
        assert!(size.welcome_bytes > size.add.bytes);
        let node = path_node_cost(2).expect("reference");
        assert!(node.path_node_bytes > node.public_key_bytes + node.ciphertext_bytes);
    }
}
