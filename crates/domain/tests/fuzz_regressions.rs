//! Replays every input kept under `fuzz/regressions/ses_record/` (the fuzzers' seed corpus and
//! every crash they found) through the same invariants the `ses_record` and `ses_record_json`
//! fuzz targets check (`fuzz/checks/domain.rs`). Runs in a plain `cargo test`: no nightly, no
//! cargo-fuzz. See `docs/fuzzing.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use domain::mapping::{MappedKind, map_message};

#[path = "../../../fuzz/checks/domain.rs"]
#[allow(dead_code)]
mod checks;

fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).unwrap();
            (path, data)
        })
        .collect()
}

#[test]
fn ses_record_regressions_hold_the_mapping_invariants() {
    let inputs = regressions("ses_record");
    let failed: Vec<String> = inputs
        .iter()
        .filter(|(_, data)| {
            catch_unwind(AssertUnwindSafe(|| checks::check_message_bytes(data))).is_err()
        })
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "failing inputs: {failed:#?}");

    // The corpus reaches events, including bounces, not just refusals.
    let mapped: Vec<_> = inputs
        .iter()
        .map(|(_, data)| map_message(&String::from_utf8_lossy(data)))
        .collect();
    assert!(
        mapped
            .iter()
            .any(|m| m.kind == MappedKind::Events && !m.events.is_empty())
    );
    assert!(
        mapped
            .iter()
            .flat_map(|m| &m.events)
            .any(|e| e.bounce_type.is_some())
    );
}

#[test]
fn the_mapping_invariants_catch_a_broken_event() {
    // The checks must be able to fail: a message whose events pass them, then a tampered key.
    let message = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/regressions/ses_record/seed-notification_bounce_1.json"),
    )
    .unwrap();
    checks::check_message(&message);
    let mut mapped = map_message(&message);
    let event = mapped
        .events
        .first_mut()
        .expect("the bounce fixture has events");
    event.event_key = "0".repeat(64);
    assert_ne!(event.event_key, domain::mapping::event_key(event));
}
