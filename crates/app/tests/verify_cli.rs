//! `ses-webhook verify` as an operator runs it: the real binary on saved message files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use sns_verify::SignatureVersion;
use sns_verify::testing::TestSigner;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";

fn write(dir: &Path, name: &str, value: &serde_json::Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn verify_prints_one_line_per_file_and_fails_if_any_fails() {
    let signer = TestSigner::shared();
    let certs = tempfile::tempdir().unwrap();
    signer.write_pinned(certs.path()).unwrap();
    let messages = tempfile::tempdir().unwrap();
    let good_v1 = write(
        messages.path(),
        "good-v1.json",
        &signer.notification(TOPIC, "m-1", "hello", Some("subject"), SignatureVersion::V1),
    );
    let good_v2 = write(
        messages.path(),
        "good-v2.json",
        &signer.subscription_confirmation(
            TOPIC,
            "m-2",
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=t",
            "t",
            SignatureVersion::V2,
        ),
    );
    let mut tampered = signer.notification(TOPIC, "m-3", "hello", None, SignatureVersion::V2);
    tampered["Message"] = "goodbye".into();
    let bad = write(messages.path(), "tampered.json", &tampered);

    let output = Command::new(env!("CARGO_BIN_EXE_ses-webhook"))
        .args(["verify", "--offline", "--cert-dir"])
        .arg(certs.path())
        .args([&good_v1, &good_v2, &bad])
        .output()
        .unwrap();

    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0], format!("{good_v1}: ok (Notification, v1)"));
    assert_eq!(
        lines[1],
        format!("{good_v2}: ok (SubscriptionConfirmation, v2)")
    );
    assert!(
        lines[2].starts_with(&format!("{bad}: FAIL: ")),
        "{}",
        lines[2]
    );
    assert!(!output.status.success());
}

#[test]
fn verify_succeeds_when_every_file_verifies() {
    let signer = TestSigner::shared();
    let certs = tempfile::tempdir().unwrap();
    signer.write_pinned(certs.path()).unwrap();
    let messages = tempfile::tempdir().unwrap();
    let good = write(
        messages.path(),
        "good.json",
        &signer.notification(TOPIC, "m-1", "hello", None, SignatureVersion::V2),
    );

    let status = Command::new(env!("CARGO_BIN_EXE_ses-webhook"))
        .args(["verify", "--offline", "--cert-dir"])
        .arg(certs.path())
        .arg(&good)
        .output()
        .unwrap()
        .status;

    assert!(status.success());
}

#[test]
fn offline_without_a_certificate_directory_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_ses-webhook"))
        .args(["verify", "--offline", "missing.json"])
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--cert-dir"));
}

#[test]
fn a_missing_pinned_certificate_offline_fails_without_network() {
    let signer = TestSigner::shared();
    let empty = tempfile::tempdir().unwrap();
    let messages = tempfile::tempdir().unwrap();
    let file = write(
        messages.path(),
        "m.json",
        &signer.notification(TOPIC, "m-1", "hello", None, SignatureVersion::V2),
    );

    let output = Command::new(env!("CARGO_BIN_EXE_ses-webhook"))
        .args(["verify", "--offline", "--cert-dir"])
        .arg(empty.path())
        .arg(&file)
        .output()
        .unwrap();

    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with(&format!("{file}: FAIL: ")), "{stdout}");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn the_readme_example_verifies_with_its_certificate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");

    let output = Command::new(env!("CARGO_BIN_EXE_ses-webhook"))
        .current_dir(&root)
        .args([
            "verify",
            "--offline",
            "--cert-dir",
            "docs/examples/certs",
            "docs/examples/notification.json",
        ])
        .output()
        .unwrap();

    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "docs/examples/notification.json: ok (Notification, v2)\n"
    );
    assert!(output.status.success());
}

/// Runs `verify` on one freshly signed message with `default.toml` in the configuration
/// directory (`{certs}` in it stands for a directory holding the signing certificate) and the
/// extra `flags` (`{certs}` likewise); asserts that the message verifies.
fn verify_one_with_settings(default_toml: &str, flags: &[&str]) {
    let signer = TestSigner::shared();
    let certs = tempfile::tempdir().unwrap();
    signer.write_pinned(certs.path()).unwrap();
    let certs_dir = certs.path().display().to_string();
    let config = tempfile::tempdir().unwrap();
    std::fs::write(
        config.path().join("default.toml"),
        default_toml.replace("{certs}", &certs_dir),
    )
    .unwrap();
    let messages = tempfile::tempdir().unwrap();
    let message = write(
        messages.path(),
        "m.json",
        &signer.notification(TOPIC, "m-1", "hello", None, SignatureVersion::V2),
    );

    let output = Command::new(env!("CARGO_BIN_EXE_ses-webhook"))
        .arg("verify")
        .arg("--config-dir")
        .arg(config.path())
        .args(flags.iter().map(|flag| flag.replace("{certs}", &certs_dir)))
        .arg(&message)
        .output()
        .unwrap();

    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout.trim(),
        format!("{message}: ok (Notification, v2)"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success());
}

#[test]
fn verify_reads_the_certificate_directory_and_offline_mode_from_the_settings() {
    verify_one_with_settings(
        "[sns]\ncert_dir = \"{certs}\"\nfetch_certificates = false\n",
        &[],
    );
}

#[test]
fn reprocess_explains_the_format_since_wants() {
    let output = Command::new(env!("CARGO_BIN_EXE_ses-webhook"))
        .args(["reprocess", "--since", "yesterday"])
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("RFC 3339"), "{stderr}");
    assert!(stderr.contains("2026-11-01T00:00:00Z"), "{stderr}");
}

#[test]
fn verify_flags_win_over_settings_that_would_be_invalid_here() {
    // On their own these settings are refused: no download and no pinned directory here.
    verify_one_with_settings(
        "[sns]\nfetch_certificates = false\ncert_dir = \"/not/on/this/machine\"\n",
        &["--cert-dir", "{certs}"],
    );
}
