#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::ports::{MessageOutcome, RejectReason};
use domain::{Dependency, ForbiddenReason, IngestOutcome, SnsMessageType};

use super::*;

fn outcome(processed: usize, duplicates: usize, redelivery: bool) -> IngestOutcome {
    IngestOutcome {
        message_type: SnsMessageType::Notification,
        message_id: "m".into(),
        topic_arn: "t".into(),
        outcome: MessageOutcome::Processed,
        ses_type: None,
        event_type: None,
        processed,
        duplicates,
        errors: 0,
        subscription_confirmed: false,
        redelivery,
    }
}

#[test]
fn only_what_was_committed_or_was_already_stored_is_deleted() {
    let stored = Handled::from_result(&Ok(outcome(2, 1, false)));
    assert_eq!(
        stored,
        Handled::Stored {
            processed: 2,
            duplicates: 1
        }
    );
    assert!(stored.deletes());

    let duplicate = Handled::from_result(&Ok(outcome(0, 2, true)));
    assert_eq!(duplicate, Handled::Duplicate);
    assert!(duplicate.deletes());

    let store_down = Handled::from_result(&Err(IngestError::Unavailable {
        dependency: Dependency::Store,
        detail: "connection refused".into(),
    }));
    assert_eq!(
        store_down,
        Handled::Retry {
            code: "store_unavailable"
        }
    );
    assert!(!store_down.deletes());

    let certificate = Handled::from_result(&Err(IngestError::Unavailable {
        dependency: Dependency::Certificate,
        detail: "timed out".into(),
    }));
    assert_eq!(
        certificate,
        Handled::Retry {
            code: "certificate_unavailable"
        }
    );
    assert!(!certificate.deletes());

    let forged = Handled::from_result(&Err(IngestError::Forbidden {
        reason: ForbiddenReason::Verification(RejectReason::BadSignature),
        detail: "no".into(),
    }));
    assert_eq!(
        forged,
        Handled::Refused {
            code: "bad_signature"
        }
    );
    assert!(!forged.deletes());

    let not_sns = Handled::from_result(&Err(IngestError::Malformed("not JSON".into())));
    assert_eq!(
        not_sns,
        Handled::Refused {
            code: "malformed_message"
        }
    );
    assert!(!not_sns.deletes());

    let raw = Handled::from_result(&Err(IngestError::RawDelivery("raw".into())));
    assert_eq!(
        raw,
        Handled::Refused {
            code: "raw_message_delivery"
        }
    );
}

#[test]
fn queue_urls_give_account_name_region_and_arn_partition() {
    let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/ses-events";
    assert_eq!(
        account_and_name(url),
        Some(("123456789012".into(), "ses-events".into()))
    );
    assert_eq!(region_of_url(url).as_deref(), Some("eu-west-1"));
    assert_eq!(
        region_of_url("https://us-east-2.queue.amazonaws.com/1/q").as_deref(),
        Some("us-east-2")
    );
    assert_eq!(region_of_url("http://127.0.0.1:5000/123456789012/q"), None);
    assert_eq!(
        account_and_name("http://127.0.0.1:5000/123456789012/q"),
        Some(("123456789012".into(), "q".into()))
    );
    assert_eq!(
        account_and_name("https://sqs.eu-west-1.amazonaws.com/ses-events"),
        None
    );
    assert_eq!(
        account_and_name("https://sqs.eu-west-1.amazonaws.com/1/q/extra"),
        None
    );
    assert_eq!(account_and_name("not a url"), None);
    assert_eq!(partition("eu-west-1"), "aws");
    assert_eq!(partition("cn-north-1"), "aws-cn");
    assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
}

#[test]
fn a_raw_records_id_is_stable_per_sqs_message_and_queue() {
    let id = raw_message_id("ses-raw", "0b6f7c1e-5d3a-4f55-9d0c-9c1f0f4f8a11");
    assert_eq!(id, "sqs:ses-raw:0b6f7c1e-5d3a-4f55-9d0c-9c1f0f4f8a11");
    assert_ne!(
        id,
        raw_message_id("other", "0b6f7c1e-5d3a-4f55-9d0c-9c1f0f4f8a11")
    );
}

#[test]
fn the_drain_summary_counts_each_kind_and_code() {
    let mut summary = DrainSummary::default();
    for handled in [
        Handled::Stored {
            processed: 2,
            duplicates: 0,
        },
        Handled::Stored {
            processed: 1,
            duplicates: 1,
        },
        Handled::Duplicate,
        Handled::Refused {
            code: "bad_signature",
        },
        Handled::Refused {
            code: "bad_signature",
        },
        Handled::Refused {
            code: "topic_not_allowed",
        },
        Handled::Retry {
            code: "store_unavailable",
        },
    ] {
        summary.count(handled);
    }
    assert_eq!(summary.stored, 2);
    assert_eq!(summary.events, 3);
    assert_eq!(summary.duplicates, 1);
    assert_eq!(
        summary.refused,
        vec![("bad_signature", 2), ("topic_not_allowed", 1)]
    );
    assert_eq!(summary.left_for_retry, vec![("store_unavailable", 1)]);
    assert_eq!(summary.left(), 4);
}

#[test]
fn health_is_unknown_until_a_receive_answers() {
    let health = QueueHealth::default();
    assert_eq!(health.reachable(), None);
    health.set_unreachable("dns error");
    assert_eq!(health.reachable(), Some(false));
    assert_eq!(health.last_error().as_deref(), Some("dns error"));
    health.set_reachable();
    assert_eq!(health.reachable(), Some(true));
    assert_eq!(health.last_error(), None);
}
