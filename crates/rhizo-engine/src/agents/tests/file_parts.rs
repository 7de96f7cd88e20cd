//! Tasks whose input and artifact are files (issue 16): each file is a file message of the
//! task's conversation; the task parts name it by hash, and each side shows its own file id
//! and state.

use rhizo_core::{
    agent::{Artifact, FilePart, NewTask, Part, TaskState, TaskUpdateInput},
    file::{FileKey, FileRef},
};

use super::*;
use crate::send::Queued;
use crate::test_support::NAMES;

/// A 20 MiB file's reference (its content is the driver's business, not the engine's).
fn file_ref(name: &str, hash: u8) -> FileRef {
    FileRef {
        name: name.into(),
        size: 20 << 20,
        mime: "application/octet-stream".into(),
        hash: [hash; 32],
        key: FileKey::from_bytes([hash + 1; 32]),
        inline: None,
    }
}

/// Side `from` sends a file message to the other; its file id there.
fn send_file(p: &mut Pair, from: usize, file: &FileRef, now: i64) -> i64 {
    let to = NAMES[1 - from];
    let queued = p
        .write(from, |e, tx| Ok(e.queue_file(tx, to, file, "", now)?))
        .unwrap();
    let Queued::Message { row, .. } = queued else {
        panic!("not queued: {queued:?}");
    };
    row.id
}

fn file_part(id: i64) -> Part {
    Part {
        file: Some(FilePart {
            id: Some(id),
            ..FilePart::default()
        }),
        ..Part::default()
    }
}

#[test]
fn a_task_carries_an_input_file_and_returns_an_artifact_file() {
    let mut p = pair();
    let input = file_ref("input.bin", 1);
    let sent = send_file(&mut p, ALICE, &input, T0 + 1);
    let new = NewTask {
        to: "bob".into(),
        text: Some("checksum this".into()),
        parts: vec![file_part(sent)],
        ..NewTask::default()
    };
    let id = p.delegate(&new, T0 + 1);
    p.run(T0 + 1);

    // Bob sees the input part as his own copy of the file message: its id, offered.
    let (task, _) = p
        .write(BOB, |e, tx| e.claim_next_task(tx, T0 + 2))
        .unwrap()
        .expect("a queued task");
    let got = task.history[0].parts[1].file.clone().expect("a file part");
    assert_eq!(got.name, "input.bin");
    assert_eq!(got.size, 20 << 20);
    assert_eq!(got.hash, hex::encode([1u8; 32]));
    assert_eq!(got.state.as_deref(), Some("offered"));
    let bob_input = got.id.expect("bob's id of the input file");
    let row = p.stores[BOB].read().file(bob_input).unwrap().unwrap();
    assert_eq!(row.key, [2; 32], "the key came with the file message");

    // The artifact: a file bob sent back, named by its id.
    let output = file_ref("output.bin", 5);
    let out_id = send_file(&mut p, BOB, &output, T0 + 3);
    let done = TaskUpdateInput {
        state: TaskState::Completed,
        text: None,
        message: None,
        artifacts: vec![Artifact {
            artifact_id: "result".into(),
            name: None,
            description: None,
            parts: vec![file_part(out_id)],
        }],
        reason: None,
    };
    p.write(BOB, |e, tx| e.update_task(tx, id, &done, T0 + 3))
        .unwrap();
    p.run(T0 + 3);
    let task = p.task(ALICE, id);
    assert_eq!(task.status.state, TaskState::Completed);
    let art = task.artifacts[0].parts[0]
        .file
        .clone()
        .expect("a file part");
    assert_eq!((art.name.as_str(), art.size), ("output.bin", 20 << 20));
    let alice_out = art.id.expect("alice's id of the artifact file");
    assert_eq!(art.state.as_deref(), Some("offered"));
    assert_eq!(
        p.stores[ALICE]
            .read()
            .file(alice_out)
            .unwrap()
            .unwrap()
            .hash,
        [5; 32]
    );
    // The client's own request shows its file as sent (done).
    let own = task.history[0].parts[1].file.clone().unwrap();
    assert_eq!((own.id, own.state.as_deref()), (Some(sent), Some("done")));
}

#[test]
fn a_file_part_naming_no_file_of_the_conversation_is_refused() {
    let mut p = pair();
    let new = NewTask {
        to: "bob".into(),
        parts: vec![file_part(9_999)],
        ..NewTask::default()
    };
    let err = p
        .write(ALICE, |e, tx| {
            e.delegate(
                tx,
                &new,
                rhizo_core::agent::TaskId::random().unwrap(),
                T0 + 1,
            )
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("send the file to the peer first"),
        "{err}"
    );
    // Nothing was stored or queued.
    assert!(p.send(ALICE, T0 + 1).is_empty());
}
