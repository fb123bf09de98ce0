//! Replays every input kept under `fuzz/regressions/` (the fuzzers' seed corpus and every crash
//! they found) through the same invariants the fuzz targets check (`fuzz/checks/sns_verify.rs`).
//! Runs in a plain `cargo test`: no nightly, no cargo-fuzz. See `docs/fuzzing.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sns_verify::{Envelope, TrustPolicy};

#[path = "../../../fuzz/checks/sns_verify.rs"]
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

/// Runs `check` on every input of `target`, then fails naming every input that broke it.
fn replay(target: &str, check: impl Fn(&[u8])) -> usize {
    let inputs = regressions(target);
    let failed: Vec<String> = inputs
        .iter()
        .filter(|(_, data)| catch_unwind(AssertUnwindSafe(|| check(data))).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target}: failing inputs: {failed:#?}");
    inputs.len()
}

#[test]
fn envelope_parse_regressions_hold_the_envelope_invariants() {
    replay("envelope_parse", checks::check_envelope_bytes);
    // The corpus exercises the accepting path too, not just refusals.
    let parsed = regressions("envelope_parse")
        .iter()
        .filter(|(_, data)| Envelope::parse(data).is_ok())
        .count();
    assert!(parsed >= 3, "only {parsed} envelope inputs parse");
}

#[test]
fn string_to_sign_regressions_match_the_independent_construction() {
    let mut accepted = 0;
    replay("string_to_sign", |data| {
        let case: Value = serde_json::from_slice(data).expect("a JSON case");
        let body = case["body"].as_str().expect("body is a string");
        let expected = case["expected"].as_str();
        checks::check_string_to_sign_case(body, expected);
    });
    for (_, data) in regressions("string_to_sign") {
        let case: Value = serde_json::from_slice(&data).unwrap();
        accepted += usize::from(case["expected"].is_string());
    }
    assert!(
        accepted >= 3,
        "only {accepted} accepted string-to-sign cases"
    );
}

#[test]
fn cert_url_policy_regressions_hold_the_policy_invariants() {
    replay("cert_url_policy", checks::check_url_policy_bytes);
    let policy = TrustPolicy::amazon();
    let accepted = regressions("cert_url_policy")
        .iter()
        .filter(|(_, data)| {
            let text = String::from_utf8_lossy(data);
            policy.check_cert_url(&text).is_ok()
        })
        .count();
    assert!(accepted >= 2, "only {accepted} certificate URLs accepted");
}

#[test]
fn the_policy_invariants_reject_what_the_policy_must_not_accept() {
    // The checks themselves must be able to fail: feed them URLs the policy refuses and make
    // sure the raw-string rules would have caught them.
    for bad in [
        "https://sns.s3-us-east-1.amazonaws.com.evil.example/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem?",
        "https://sns.us-east-1.amazonaws.com:443/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.txt",
    ] {
        let host_ok = bad
            .strip_prefix("https://")
            .and_then(|rest| rest.split('/').next())
            .is_some_and(checks::is_sns_host);
        let rest_ok = !bad.contains('?') && bad.ends_with(".pem");
        assert!(!(host_ok && rest_ok), "{bad} would pass the invariants");
        assert!(TrustPolicy::amazon().check_cert_url(bad).is_err(), "{bad}");
    }
    assert!(checks::is_sns_host("sns.cn-north-1.amazonaws.com.cn"));
    assert!(!checks::is_sns_host("sns.a.b.amazonaws.com"));
}
