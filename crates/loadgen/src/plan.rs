//! The order of requests: every message once, with a fraction re-sent as SNS retries would be
//! (the same body, so the same SNS `MessageId`), soon after the original so that some retries
//! race it.

use crate::rng::SplitMix64;

/// Request order, as indices into the message list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub order: Vec<u32>,
    /// How many entries of `order` repeat an earlier message.
    pub duplicates: usize,
}

/// Builds the request order for `unique` messages: at most `max_requests` requests, each a
/// re-send of one of the last `window` messages with probability `duplicate_fraction`, else the
/// next new message. Ends when the new messages run out or the cap is reached.
#[must_use]
pub fn plan(
    seed: u64,
    unique: usize,
    max_requests: usize,
    duplicate_fraction: f64,
    window: usize,
) -> Plan {
    let mut rng = SplitMix64::new(seed ^ 0xD0_0B1E);
    let unique = unique.min(u32::MAX as usize);
    let window = window.max(1);
    let mut order = Vec::with_capacity(max_requests.min(unique.saturating_mul(2)));
    let mut next = 0_usize;
    let mut duplicates = 0;
    while order.len() < max_requests {
        if next > 0 && rng.chance(duplicate_fraction) {
            let span = window.min(next) as u64;
            let back = usize::try_from(rng.below(span)).unwrap_or(0);
            order.push(u32::try_from(next - 1 - back).unwrap_or(0));
            duplicates += 1;
        } else if next < unique {
            order.push(u32::try_from(next).unwrap_or(u32::MAX));
            next += 1;
        } else {
            break;
        }
    }
    Plan { order, duplicates }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn without_duplicates_every_message_goes_once_in_order() {
        let p = plan(1, 100, 1_000, 0.0, 8);
        assert_eq!(p.order, (0..100).collect::<Vec<u32>>());
        assert_eq!(p.duplicates, 0);
    }

    #[test]
    fn the_cap_bounds_the_plan() {
        let p = plan(1, 100, 10, 0.0, 8);
        assert_eq!(p.order.len(), 10);
        assert_eq!(plan(1, 0, 10, 0.5, 8).order.len(), 0);
    }

    #[test]
    fn duplicates_repeat_recent_messages_at_about_the_fraction() {
        let p = plan(5, 10_000, 1_000_000, 0.2, 16);
        let unique: HashSet<u32> = p.order.iter().copied().collect();
        assert_eq!(unique.len(), 10_000, "every message is sent");
        assert_eq!(p.order.len(), 10_000 + p.duplicates);
        let share = p.duplicates as f64 / p.order.len() as f64;
        assert!((share - 0.2).abs() < 0.02, "{share}");
        let mut highest = 0;
        for (i, &m) in p.order.iter().enumerate() {
            if m > highest || i == 0 {
                highest = highest.max(m);
            } else {
                assert!(highest - m < 16, "{m} re-sent too late after {highest}");
            }
        }
        assert_eq!(p, plan(5, 10_000, 1_000_000, 0.2, 16), "deterministic");
    }
}
