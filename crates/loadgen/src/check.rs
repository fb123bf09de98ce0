//! After the run: does the database hold exactly what the server acknowledged?

use std::collections::HashSet;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use serde::Serialize;

use crate::mix::Signed;
use crate::stats::Tally;

/// Row counts of the event store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, QueryableByName)]
pub struct Counts {
    #[diesel(sql_type = BigInt)]
    pub events: i64,
    #[diesel(sql_type = BigInt)]
    pub distinct_keys: i64,
    #[diesel(sql_type = BigInt)]
    pub messages: i64,
}

/// Counts over the whole store.
///
/// # Errors
/// Database errors.
pub fn counts(conn: &mut PgConnection) -> QueryResult<Counts> {
    diesel::sql_query(
        "SELECT (SELECT COUNT(*) FROM email_events) AS events, \
                (SELECT COUNT(DISTINCT event_key) FROM email_events) AS distinct_keys, \
                (SELECT COUNT(*) FROM sns_messages) AS messages",
    )
    .get_result(conn)
}

#[derive(QueryableByName)]
struct Acked {
    #[diesel(sql_type = BigInt)]
    events: i64,
    #[diesel(sql_type = BigInt)]
    messages: i64,
}

/// Rows stored under the given SNS message ids: (events, archived messages).
///
/// # Errors
/// Database errors.
pub fn rows_for(conn: &mut PgConnection, ids: &[String]) -> QueryResult<(i64, i64)> {
    let row: Acked = diesel::sql_query(
        "SELECT (SELECT COUNT(*) FROM email_events WHERE sns_message_id = ANY($1)) AS events, \
                (SELECT COUNT(*) FROM sns_messages WHERE sns_message_id = ANY($1)) AS messages",
    )
    .bind::<Array<Text>, _>(ids)
    .get_result(conn)?;
    Ok((row.events, row.messages))
}

/// What the run says the database must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Expected {
    /// Distinct messages answered 2xx at least once.
    pub acked_messages: u64,
    /// Their events.
    pub acked_events: u64,
    /// Sum of `processed` over 2xx answers.
    pub processed: u64,
    /// Events of messages that were never answered 2xx but got a failure (a timeout may still
    /// have committed them).
    pub unacked_events: u64,
}

impl Expected {
    /// From the run's tally; also returns the acked SNS message ids for [`rows_for`].
    #[must_use]
    pub fn from_tally(tally: &Tally, messages: &[Signed]) -> (Self, Vec<String>) {
        let acked: HashSet<u32> = tally.acked.iter().copied().collect();
        let failed: HashSet<u32> = tally
            .failed
            .iter()
            .copied()
            .filter(|i| !acked.contains(i))
            .collect();
        let events = |set: &HashSet<u32>| -> u64 {
            set.iter()
                .filter_map(|i| messages.get(*i as usize))
                .map(|m| u64::from(m.events))
                .sum()
        };
        let ids = acked
            .iter()
            .filter_map(|i| messages.get(*i as usize))
            .map(|m| m.sns_message_id.clone())
            .collect();
        (
            Self {
                acked_messages: acked.len() as u64,
                acked_events: events(&acked),
                processed: tally.processed,
                unacked_events: events(&failed),
            },
            ids,
        )
    }
}

/// What the database held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Observed {
    pub before: Counts,
    pub after: Counts,
    /// Event rows under acknowledged SNS message ids.
    pub acked_events: i64,
    /// Archived `sns_messages` rows with acknowledged ids.
    pub acked_messages: i64,
}

/// One check and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// Every check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub passed: bool,
    pub expected: Expected,
    pub observed: Observed,
    pub verdicts: Vec<Verdict>,
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Compares what was acknowledged with what is stored.
#[must_use]
pub fn evaluate(expected: &Expected, observed: &Observed) -> CheckReport {
    let mut verdicts = Vec::new();
    let mut check = |name, passed, detail: String| {
        verdicts.push(Verdict {
            name,
            passed,
            detail,
        });
    };

    let want = signed(expected.acked_events);
    check(
        "none missing",
        observed.acked_events == want,
        format!(
            "{} event rows for the {} acknowledged messages, which carry {want} events",
            observed.acked_events, expected.acked_messages
        ),
    );
    let want = signed(expected.acked_messages);
    check(
        "messages archived",
        observed.acked_messages == want,
        format!(
            "{} of {want} acknowledged messages archived in sns_messages",
            observed.acked_messages
        ),
    );
    let after = observed.after;
    check(
        "none doubled",
        after.events == after.distinct_keys,
        format!(
            "{} event rows, {} distinct event keys",
            after.events, after.distinct_keys
        ),
    );
    let new_rows = after.events - observed.before.events;
    let processed = signed(expected.processed);
    let slack = signed(expected.unacked_events);
    let (passed, detail) = if new_rows == processed {
        (
            true,
            format!("{new_rows} new rows = {processed} acknowledged as processed"),
        )
    } else if new_rows > processed && new_rows - processed <= slack {
        (
            true,
            format!(
                "{new_rows} new rows = {processed} acknowledged as processed + {} from requests \
                 that got no 2xx (committed before a timeout or error; SNS would retry them)",
                new_rows - processed
            ),
        )
    } else {
        (
            false,
            format!(
                "{new_rows} new rows but {processed} acknowledged as processed \
                 (at most {slack} more could come from unacknowledged requests)"
            ),
        )
    };
    check("rows equal acknowledged", passed, detail);

    CheckReport {
        passed: verdicts.iter().all(|v| v.passed),
        expected: expected.clone(),
        observed: *observed,
        verdicts,
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "database   {}",
            if self.passed {
                "OK"
            } else {
                "FAILED: acknowledged and stored differ"
            }
        )?;
        for v in &self.verdicts {
            writeln!(
                f,
                "  [{}] {}: {}",
                if v.passed { "ok" } else { "FAIL" },
                v.name,
                v.detail
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::mix::Kind;
    use crate::stats::Outcome;

    fn message(id: &str, events: u32) -> Signed {
        Signed {
            sns_message_id: id.into(),
            kind: Kind::Delivery,
            events,
            body: String::new(),
        }
    }

    fn counts(events: i64) -> Counts {
        Counts {
            events,
            distinct_keys: events,
            messages: 0,
        }
    }

    #[test]
    fn expectations_count_distinct_acknowledged_messages() {
        let messages = [message("a", 2), message("b", 3), message("c", 1)];
        let mut tally = Tally::new();
        let ms = Duration::from_millis(1);
        tally.record(0, 2, ms, Outcome::ok(2, 0));
        tally.record(0, 2, ms, Outcome::ok(0, 2)); // a duplicate send
        tally.record(1, 3, ms, Outcome::Refused(503));
        tally.record(2, 1, ms, Outcome::Transport("timeout"));
        tally.record(2, 1, ms, Outcome::ok(1, 0)); // retried successfully

        let (expected, mut ids) = Expected::from_tally(&tally, &messages);
        ids.sort();

        assert_eq!(ids, vec!["a".to_owned(), "c".to_owned()]);
        assert_eq!(
            expected,
            Expected {
                acked_messages: 2,
                acked_events: 3,
                processed: 3,
                unacked_events: 3,
            }
        );
    }

    fn expected() -> Expected {
        Expected {
            acked_messages: 10,
            acked_events: 25,
            processed: 25,
            unacked_events: 0,
        }
    }

    fn observed() -> Observed {
        Observed {
            before: counts(100),
            after: counts(125),
            acked_events: 25,
            acked_messages: 10,
        }
    }

    #[test]
    fn a_faithful_store_passes() {
        let report = evaluate(&expected(), &observed());
        assert!(report.passed, "{report}");
        assert_eq!(report.verdicts.len(), 4);
    }

    #[test]
    fn a_missing_event_fails() {
        let mut o = observed();
        o.acked_events = 24;
        o.after = counts(124);
        let report = evaluate(&expected(), &o);
        assert!(!report.passed);
        assert!(
            report.to_string().contains("[FAIL] none missing"),
            "{report}"
        );
    }

    #[test]
    fn a_doubled_event_fails() {
        let mut o = observed();
        o.after.distinct_keys = 124;
        let report = evaluate(&expected(), &o);
        assert!(!report.passed);
        assert!(
            report.to_string().contains("[FAIL] none doubled"),
            "{report}"
        );
    }

    #[test]
    fn an_unarchived_message_fails() {
        let mut o = observed();
        o.acked_messages = 9;
        assert!(!evaluate(&expected(), &o).passed);
    }

    #[test]
    fn rows_beyond_the_acknowledged_need_unacknowledged_requests() {
        let mut o = observed();
        o.after = counts(127);
        assert!(
            !evaluate(&expected(), &o).passed,
            "2 rows nobody accounts for"
        );

        let mut e = expected();
        e.unacked_events = 2;
        let report = evaluate(&e, &o);
        assert!(report.passed, "{report}");
        assert!(report.to_string().contains("+ 2 from requests"), "{report}");

        o.after = counts(124);
        assert!(
            !evaluate(&e, &o).passed,
            "fewer rows than acknowledged is never fine"
        );
    }
}
