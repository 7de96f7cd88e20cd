use super::sse::{SseError, SseEvent, SseParser};

fn event(name: &str, data: &str) -> SseEvent {
    SseEvent {
        name: name.into(),
        data: data.into(),
    }
}

#[test]
fn events_split_anywhere_come_out_whole() {
    let text = b": ping\r\n\r\ndata: {\"a\":1}\r\n\r\nevent: error\ndata: x\ndata:y\n\ndata: z\n";
    for cut in 0..text.len() {
        let mut p = SseParser::default();
        let mut got = p.push(&text[..cut]).unwrap();
        got.extend(p.push(&text[cut..]).unwrap());
        assert_eq!(
            got,
            [event("message", "{\"a\":1}"), event("error", "x\ny")],
            "cut at {cut}"
        );
    }
}

#[test]
fn one_event_over_the_bound_is_refused_and_many_small_ones_are_not() {
    let mut p = SseParser::with_limit(64);
    let small = "data: 0123456789\n\n".repeat(100);
    assert_eq!(p.push(small.as_bytes()).unwrap().len(), 100);
    let big = format!("data: {}\n", "x".repeat(40));
    assert!(p.push(big.as_bytes()).is_ok());
    assert_eq!(p.push(big.as_bytes()), Err(SseError::TooLarge(64)));
    let mut p = SseParser::with_limit(64);
    assert_eq!(p.push(&[b'x'; 65]), Err(SseError::TooLarge(64)));
    // Keep-alive comments never add up.
    let mut p = SseParser::with_limit(64);
    for _ in 0..100 {
        assert!(p.push(b": keep-alive ping\n").unwrap().is_empty());
    }
    assert_eq!(p.push(&[0xff, b'\n']), Err(SseError::NotUtf8));
}
