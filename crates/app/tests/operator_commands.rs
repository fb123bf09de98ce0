//! The token and suppression-list commands as operators run them: the real binary against an
//! SQLite file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// A fresh SQLite database, migrated, in a temporary directory.
struct Db {
    _dir: tempfile::TempDir,
    url: String,
}

impl Db {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("events.db").display());
        let db = Self { _dir: dir, url };
        let (ok, _, err) = db.run(&["migrate"]);
        assert!(ok, "{err}");
        db
    }

    /// Runs `ses-webhook ARGS` on this database: success, stdout, stderr.
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let config = tempfile::tempdir().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_ses-webhook"))
            .args(args)
            .arg("--config-dir")
            .arg(config.path())
            .env_remove("RUST_LOG")
            .env("SES_WEBHOOK__DATABASE__URL", &self.url)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    }
}

#[test]
fn a_token_is_shown_once_listed_without_its_secret_and_revoked() {
    let db = Db::new();

    let (ok, out, err) = db.run(&["api-token", "create", "--name", "crm", "--scope", "write"]);
    assert!(ok, "{err}");
    let token = out.lines().next().unwrap().to_owned();
    assert!(token.starts_with("sesw_") && token.len() == 48, "{out}");

    let (ok, list, _) = db.run(&["api-token", "list"]);
    assert!(ok);
    let row = list.lines().find(|l| l.starts_with("crm\t")).unwrap();
    let cells: Vec<&str> = row.split('\t').collect();
    assert_eq!(&cells[..2], ["crm", "write"]);
    assert_eq!(cells[3..], ["-", "-"], "never used, not revoked: {row}");
    assert!(!list.contains(&token[5..]), "the list shows no token");

    let (ok, _, err) = db.run(&["api-token", "create", "--name", "crm"]);
    assert!(!ok);
    assert!(err.contains("exists already"), "{err}");
    let (ok, _, err) = db.run(&["api-token", "create", "--name", "has space"]);
    assert!(!ok, "{err}");

    let (ok, _, err) = db.run(&["api-token", "revoke", "crm"]);
    assert!(ok, "{err}");
    let (ok, _, err) = db.run(&["api-token", "revoke", "crm"]);
    assert!(!ok);
    assert!(err.contains("no active token"), "{err}");
    let (_, list, _) = db.run(&["api-token", "list"]);
    let row = list.lines().find(|l| l.starts_with("crm\t")).unwrap();
    assert_ne!(row.split('\t').nth(4), Some("-"), "revoked: {row}");
    // Once revoked, the name may be used again.
    let (ok, _, err) = db.run(&["api-token", "create", "--name", "crm"]);
    assert!(ok, "{err}");
}

#[test]
fn the_aws_list_is_imported_once_and_rebuild_twice_changes_nothing() {
    let db = Db::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("suppressed.json");
    std::fs::write(
        &file,
        r#"{"SuppressedDestinationSummaries": [
            {"EmailAddress": "a@example.com", "Reason": "BOUNCE", "LastUpdateTime": "2024-03-01T12:00:00+00:00"},
            {"EmailAddress": "B@Example.com", "Reason": "COMPLAINT", "LastUpdateTime": "2024-03-02T12:00:00+00:00"},
            {"EmailAddress": "nonsense", "Reason": "BOUNCE"}
        ]}"#,
    )
    .unwrap();
    let path = file.to_str().unwrap();

    let (ok, out, err) = db.run(&["suppressions", "import", path]);
    assert!(ok, "{err}");
    assert!(
        out.contains("added: 2; already suppressed (or repeated in the file): 0; invalid: 1"),
        "{out}"
    );
    assert!(out.contains("\"nonsense\""), "{out}");
    let (ok, out, _) = db.run(&["suppressions", "import", path]);
    assert!(ok);
    assert!(
        out.contains("added: 0; already suppressed (or repeated in the file): 2; invalid: 1"),
        "{out}"
    );

    let (ok, out, err) = db.run(&["suppressions", "rebuild"]);
    assert!(ok, "{err}");
    assert!(out.contains("entries written: 0"), "{out}");

    let (ok, _, err) = db.run(&["suppressions", "import", "/nowhere/file.json"]);
    assert!(!ok);
    assert!(err.contains("/nowhere/file.json"), "{err}");
}

#[test]
fn erase_keeps_the_suppression_entry_unless_asked_and_names_no_address() {
    let db = Db::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("suppressed.json");
    std::fs::write(
        &file,
        r#"{"SuppressedDestinationSummaries": [
            {"EmailAddress": "Gone@Example.com", "Reason": "BOUNCE"}
        ]}"#,
    )
    .unwrap();
    let (ok, _, err) = db.run(&["suppressions", "import", file.to_str().unwrap()]);
    assert!(ok, "{err}");

    // Kept by default: nothing else is stored of it, so nothing is recorded.
    let (ok, out, err) = db.run(&["erase", "gone@example.com"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("database: SQLite file ") && out.contains("events.db"),
        "{out}"
    );
    assert!(out.contains("events deleted: 0\n"), "{out}");
    assert!(out.contains("suppression entry: kept"), "{out}");
    assert!(
        out.contains("nothing left to erase; nothing recorded"),
        "{out}"
    );

    let (ok, out, err) = db.run(&["erase", "GONE@example.com", "--remove-suppression"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("suppression entry: removed, with 1 history line(s)"),
        "{out}"
    );
    assert!(out.contains("recorded in the erasures table at "), "{out}");

    let (ok, out, _) = db.run(&["erase", "gone@example.com", "--remove-suppression"]);
    assert!(ok);
    assert!(out.contains("suppression entry: none"), "{out}");
    assert!(out.contains("erased before at "), "{out}");
    for printed in [&out, &err] {
        assert!(!printed.to_ascii_lowercase().contains("gone@"), "{printed}");
    }

    let (ok, _, err) = db.run(&["erase", "not-an-address"]);
    assert!(!ok);
    assert!(err.contains("invalid email address"), "{err}");
}
