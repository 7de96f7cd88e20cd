use futures::io::Cursor;

use super::*;

#[tokio::test]
async fn stream_messages_round_trip() {
    let mut buffer = Cursor::new(Vec::new());
    write_message(&mut buffer, &StreamMessage::Data(b"frame".to_vec()))
        .await
        .unwrap();
    write_message(&mut buffer, &StreamMessage::Data(Vec::new()))
        .await
        .unwrap();
    write_message(&mut buffer, &StreamMessage::Close(4409))
        .await
        .unwrap();
    let mut reader = Cursor::new(buffer.into_inner());
    assert_eq!(
        read_message(&mut reader).await.unwrap(),
        StreamMessage::Data(b"frame".to_vec())
    );
    assert_eq!(
        read_message(&mut reader).await.unwrap(),
        StreamMessage::Data(Vec::new())
    );
    assert_eq!(
        read_message(&mut reader).await.unwrap(),
        StreamMessage::Close(4409)
    );
    assert!(read_message(&mut reader).await.is_err());
}

#[tokio::test]
async fn oversized_and_truncated_messages_are_refused() {
    let too_big = u32::try_from(MAX_WS_MESSAGE_BYTES + 1)
        .unwrap()
        .to_be_bytes();
    assert!(
        read_message(&mut Cursor::new(too_big.to_vec()))
            .await
            .is_err()
    );
    let mut truncated = 10u32.to_be_bytes().to_vec();
    truncated.extend_from_slice(b"abc");
    assert!(read_message(&mut Cursor::new(truncated)).await.is_err());
}

#[tokio::test]
async fn the_reader_queue_ends_at_a_close() {
    let mut buffer = Cursor::new(Vec::new());
    write_message(&mut buffer, &StreamMessage::Data(vec![1]))
        .await
        .unwrap();
    write_message(&mut buffer, &StreamMessage::Close(1000))
        .await
        .unwrap();
    write_message(&mut buffer, &StreamMessage::Data(vec![2]))
        .await
        .unwrap();
    let mut rx = spawn_reader(Cursor::new(buffer.into_inner()));
    assert_eq!(rx.recv().await, Some(StreamMessage::Data(vec![1])));
    assert_eq!(rx.recv().await, Some(StreamMessage::Close(1000)));
    assert_eq!(rx.recv().await, None);
}

#[test]
fn per_home_slots_are_capped_and_given_back() {
    let per_home = Arc::new(Mutex::new(HashMap::new()));
    let (home, other) = (PeerId::random(), PeerId::random());
    let slots: Vec<HomeSlot> = (0..MAX_CLIENTS_PER_HOME)
        .map(|_| take_home_slot(&per_home, home).unwrap())
        .collect();
    assert!(take_home_slot(&per_home, home).is_none());
    let other_slot = take_home_slot(&per_home, other).unwrap();
    drop(slots);
    assert!(take_home_slot(&per_home, home).is_some());
    drop(other_slot);
    assert!(per_home.lock().unwrap().is_empty());
}
