//! The breaker's state machine on a simulated clock.

use rhizo_core::{RootKey, Uid, agent::BreakerState};

use super::*;

fn uid(n: u32) -> Uid {
    let mut seed = [7u8; 32];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    RootKey::from_bytes(&seed).public().uid()
}

/// Fails `uid` `n` times at `now`.
fn fail(b: &mut Breakers, uid: &Uid, n: u32, now: i64) {
    for _ in 0..n {
        b.on_failure(uid, now);
    }
}

#[test]
fn four_failures_keep_it_closed_the_fifth_opens_it_for_the_base_backoff() {
    let (mut b, a) = (Breakers::new(), uid(1));
    assert_eq!(b.state(&a, 0), BreakerState::Closed);
    fail(&mut b, &a, BREAKER_FAILURES - 1, 1_000);
    assert_eq!(b.check(&a, 1_000), Ok(()));
    assert_eq!(b.state(&a, 1_000), BreakerState::Closed);
    b.on_failure(&a, 2_000);
    let retry_at = 2_000 + BREAKER_BASE_BACKOFF_MS;
    assert_eq!(b.state(&a, 2_000), BreakerState::Open);
    assert_eq!(b.check(&a, 2_001), Err(Open { retry_at }));
    assert_eq!(b.check(&a, retry_at - 1), Err(Open { retry_at }));
    assert_eq!(b.retry_at(&a, 2_001), Some(retry_at));
    // Other agents are not affected.
    assert_eq!(b.check(&uid(2), 2_001), Ok(()));
}

#[test]
fn a_success_resets_the_count_of_consecutive_failures() {
    let (mut b, a) = (Breakers::new(), uid(1));
    fail(&mut b, &a, BREAKER_FAILURES - 1, 0);
    b.on_success(&a);
    assert!(b.is_empty());
    fail(&mut b, &a, BREAKER_FAILURES - 1, 0);
    assert_eq!(b.state(&a, 0), BreakerState::Closed);
}

#[test]
fn after_the_backoff_one_trial_goes_through_and_its_success_closes_it() {
    let (mut b, a) = (Breakers::new(), uid(1));
    fail(&mut b, &a, BREAKER_FAILURES, 0);
    let t = BREAKER_BASE_BACKOFF_MS;
    assert_eq!(b.state(&a, t), BreakerState::HalfOpen);
    assert_eq!(b.check(&a, t), Ok(()), "the trial call");
    assert_eq!(b.state(&a, t), BreakerState::HalfOpen);
    // A second call while the trial is out fails fast.
    assert_eq!(
        b.check(&a, t + 1),
        Err(Open {
            retry_at: t + BREAKER_BASE_BACKOFF_MS
        })
    );
    b.on_success(&a);
    assert_eq!(b.state(&a, t + 1), BreakerState::Closed);
    assert_eq!(b.check(&a, t + 1), Ok(()));
    // Closed again with a fresh count: four failures do not open it.
    fail(&mut b, &a, BREAKER_FAILURES - 1, t + 2);
    assert_eq!(b.check(&a, t + 2), Ok(()));
}

#[test]
fn a_failed_trial_reopens_with_the_backoff_doubled_up_to_ten_minutes() {
    let (mut b, a) = (Breakers::new(), uid(1));
    fail(&mut b, &a, BREAKER_FAILURES, 0);
    let mut now = 0;
    let mut backoff = BREAKER_BASE_BACKOFF_MS;
    let mut seen = Vec::new();
    for _ in 0..8 {
        now += backoff;
        assert_eq!(b.check(&a, now), Ok(()), "the trial at {now}");
        b.on_failure(&a, now);
        backoff = (backoff * 2).min(BREAKER_MAX_BACKOFF_MS);
        assert_eq!(b.state(&a, now), BreakerState::Open);
        assert_eq!(
            b.check(&a, now + backoff - 1),
            Err(Open {
                retry_at: now + backoff
            })
        );
        seen.push(backoff / 1000);
    }
    assert_eq!(seen, [60, 120, 240, 480, 600, 600, 600, 600]);
}

#[test]
fn a_trial_without_an_answer_lets_another_through_after_a_backoff() {
    let (mut b, a) = (Breakers::new(), uid(1));
    fail(&mut b, &a, BREAKER_FAILURES, 0);
    let t = BREAKER_BASE_BACKOFF_MS;
    assert_eq!(b.check(&a, t), Ok(()));
    assert!(b.check(&a, 2 * t - 1).is_err());
    assert_eq!(b.check(&a, 2 * t), Ok(()), "the lost trial is replaced");
}

#[test]
fn failures_while_open_change_nothing() {
    let (mut b, a) = (Breakers::new(), uid(1));
    fail(&mut b, &a, BREAKER_FAILURES, 0);
    fail(&mut b, &a, 10, 1_000);
    assert_eq!(
        b.check(&a, 1_000),
        Err(Open {
            retry_at: BREAKER_BASE_BACKOFF_MS
        })
    );
    assert_eq!(b.check(&a, BREAKER_BASE_BACKOFF_MS), Ok(()));
}

#[test]
fn the_map_is_bounded_and_evicts_closed_breakers_first() {
    let mut b = Breakers::new();
    let open = uid(0);
    fail(&mut b, &open, BREAKER_FAILURES, 0);
    for n in 1..=(MAX_BREAKERS as u32 + 10) {
        b.on_failure(&uid(n), 0);
        assert!(b.len() <= MAX_BREAKERS);
    }
    assert_eq!(b.len(), MAX_BREAKERS);
    // The open breaker survived the eviction of closed ones.
    assert_eq!(b.state(&open, 1), BreakerState::Open);
    // The oldest closed ones went first.
    assert!(!b.map.contains_key(&uid(1)));
    assert!(b.map.contains_key(&uid(MAX_BREAKERS as u32 + 10)));
}
