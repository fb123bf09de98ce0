//! `ses-webhook-loadgen generate --files`: every file is a request body as SNS sends it, which
//! the verifier accepts as it is (so `curl --data-binary @FILE` and `ses-webhook verify` do).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;

use sns_verify::{CertificateStore, TrustPolicy, Verifier};

#[tokio::test]
async fn generated_files_verify_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("messages");
    let certs = dir.path().join("certs");

    let status = Command::new(env!("CARGO_BIN_EXE_ses-webhook-loadgen"))
        .args(["generate", "--count", "12", "--seed", "7", "--files"])
        .arg(&files)
        .arg("--cert-dir")
        .arg(&certs)
        .status()
        .unwrap();

    assert!(status.success());
    let source = CertificateStore::builder()
        .pinned_dir(Some(certs))
        .fetch(false)
        .build();
    let verifier = Verifier::new(TrustPolicy::amazon(), Arc::clone(&source));
    let mut names: Vec<_> = std::fs::read_dir(&files)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    names.sort();
    assert_eq!(names.len(), 12);
    assert!(
        names[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("00001-"),
        "{names:?}"
    );
    for path in names {
        let body = std::fs::read(&path).unwrap();
        let verified = verifier.verify(&body).await;
        assert!(verified.is_ok(), "{}: {verified:?}", path.display());
    }
}
