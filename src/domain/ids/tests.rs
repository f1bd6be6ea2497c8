//! Tests of [`super`].

use super::*;
use crate::domain::clock::{ManualClock, SystemClock};
use std::collections::HashSet;

const T0: u64 = EPOCH_MS + 1_000_000_000;

fn manual(ms: u64, max_backward_ms: u64) -> (Arc<ManualClock>, SnowflakeGenerator) {
    let clock = Arc::new(ManualClock::new(ms));
    let generator =
        SnowflakeGenerator::new(7, clock.clone(), Duration::from_millis(max_backward_ms));
    (clock, generator)
}

#[test]
fn an_id_carries_its_time_worker_and_sequence() {
    let (_clock, generator) = manual(T0, 10);
    let first = generator.next_id_blocking().unwrap();
    let second = generator.next_id_blocking().unwrap();
    assert_eq!(first.unix_ms(), T0);
    assert_eq!(first.worker(), 7);
    assert_eq!(first.sequence(), 0);
    assert_eq!(second.sequence(), 1);
    assert!(second > first);
}

#[test]
fn ids_are_ordered_by_time() {
    let (clock, generator) = manual(T0, 10);
    let early = generator.next_id_blocking().unwrap();
    clock.advance_ms(1);
    let late = generator.next_id_blocking().unwrap();
    assert!(late > early);
    assert_eq!(
        late.sequence(),
        0,
        "a new millisecond restarts the sequence"
    );
    assert!(Snowflake::first_of_ms(T0 + 1) <= late);
    assert!(Snowflake::first_of_ms(T0 + 1) > early);
}

#[test]
fn a_million_ids_from_eight_threads_are_all_distinct() {
    let generator = Arc::new(SnowflakeGenerator::new(
        3,
        Arc::new(SystemClock),
        Duration::from_millis(50),
    ));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let generator = generator.clone();
            std::thread::spawn(move || {
                (0..125_000)
                    .map(|_| generator.next_id_blocking().unwrap().get())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen = HashSet::with_capacity(1_000_000);
    for thread in threads {
        for id in thread.join().unwrap() {
            assert!(seen.insert(id), "duplicate id {id}");
        }
    }
    assert_eq!(seen.len(), 1_000_000);
    assert_eq!(generator.stats().issued.load(Ordering::Relaxed), 1_000_000);
}

#[test]
fn a_small_backward_step_waits_and_then_issues_a_later_id() {
    let (clock, generator) = manual(T0, 50);
    let before = generator.next_id_blocking().unwrap();
    clock.rewind_ms(5);
    // A helper thread puts the clock right again while the generator waits.
    let fixer = {
        let clock = clock.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            clock.set_ms(T0 + 1);
        })
    };
    let after = generator.next_id_blocking().unwrap();
    fixer.join().unwrap();
    assert!(after > before);
    assert_eq!(generator.stats().clock_waits.load(Ordering::Relaxed), 1);
    assert_eq!(generator.stats().clock_failures.load(Ordering::Relaxed), 0);
}

#[test]
fn a_small_backward_step_that_never_recovers_fails_after_the_limit() {
    let (clock, generator) = manual(T0, 20);
    generator.next_id_blocking().unwrap();
    clock.rewind_ms(5);
    let err = generator.next_id_blocking().unwrap_err();
    assert!(matches!(err, IdError::ClockMovedBackwards { .. }), "{err}");
}

#[test]
fn a_large_backward_step_fails_at_once_and_is_counted() {
    let (clock, generator) = manual(T0, 10);
    generator.next_id_blocking().unwrap();
    clock.rewind_ms(1_000);
    let started = Instant::now();
    let err = generator.next_id_blocking().unwrap_err();
    assert_eq!(
        err,
        IdError::ClockMovedBackwards {
            behind_ms: 1_000,
            limit_ms: 10
        }
    );
    assert!(
        started.elapsed() < Duration::from_millis(10),
        "must not wait"
    );
    assert_eq!(generator.stats().clock_failures.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn the_async_path_waits_out_a_small_step_too() {
    let (clock, generator) = manual(T0, 50);
    generator.next_id().await.unwrap();
    clock.rewind_ms(3);
    let c = clock.clone();
    let fixer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        c.set_ms(T0 + 2);
    });
    let id = generator.next_id().await.unwrap();
    fixer.await.unwrap();
    assert!(id.unix_ms() > T0);
}

#[test]
fn an_exhausted_sequence_waits_for_the_next_millisecond() {
    let (clock, generator) = manual(T0, 10);
    for expected in 0..=MAX_SEQUENCE {
        assert_eq!(generator.next_id_blocking().unwrap().sequence(), expected);
    }
    let ticker = {
        let clock = clock.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            clock.advance_ms(1);
        })
    };
    let next = generator.next_id_blocking().unwrap();
    ticker.join().unwrap();
    assert_eq!(next.unix_ms(), T0 + 1);
    assert_eq!(next.sequence(), 0);
    assert_eq!(
        generator.stats().sequence_exhausted.load(Ordering::Relaxed),
        1
    );
}

#[test]
fn an_exhausted_sequence_on_a_stopped_clock_fails_instead_of_spinning_forever() {
    let (_clock, generator) = manual(T0, 10);
    for _ in 0..=MAX_SEQUENCE {
        generator.next_id_blocking().unwrap();
    }
    assert!(matches!(
        generator.next_id_blocking(),
        Err(IdError::ClockStalled(_))
    ));
}

#[test]
fn a_clock_before_the_epoch_is_refused() {
    let (_clock, generator) = manual(EPOCH_MS - 1, 10);
    assert_eq!(
        generator.next_id_blocking(),
        Err(IdError::ClockOutOfRange {
            unix_ms: EPOCH_MS - 1
        })
    );
}

#[test]
fn raw_values_above_63_bits_are_not_ids() {
    assert!(Snowflake::from_u64(u64::MAX).is_none());
    assert!(Snowflake::from_i64(-1).is_none());
    assert_eq!(
        Snowflake::from_u64(i64::MAX as u64).unwrap().as_i64(),
        i64::MAX
    );
}
