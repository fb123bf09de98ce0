//! The docs stay true to the code: every file the code map of `docs/architecture.md` names
//! exists and defines the symbol it names.

use std::path::Path;

#[test]
fn every_place_in_the_code_map_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let map = doc
        .split_once("## Code map")
        .expect("docs/architecture.md has a code map")
        .1;

    let mut rows = 0;
    let mut missing = Vec::new();
    for line in map
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("`"))
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, behaviour, file, symbol, _] = cells.as_slice() else {
            panic!("a code map row has three columns: {line}");
        };
        let file = file.trim_matches('`');
        let symbol = symbol.trim_matches('`');
        rows += 1;
        match std::fs::read_to_string(root.join(file)) {
            Err(error) => missing.push(format!("{behaviour}: {file}: {error}")),
            Ok(text) => {
                if let Err(problem) = defines(&text, symbol) {
                    missing.push(format!("{behaviour}: {file}: {problem}"));
                }
            }
        }
    }

    assert!(rows >= 30, "the code map lists {rows} places");
    assert!(
        missing.is_empty(),
        "the code map is out of date:\n{}",
        missing.join("\n")
    );
}

/// Whether `text` (a Rust file) defines `symbol`: `name` (written `fn name`, `pub async fn name`
/// or bare) as a function, type, trait or constant; `Type::name` as `name` in a file that also
/// defines or implements `Type`.
fn defines(text: &str, symbol: &str) -> Result<(), String> {
    let symbol = symbol
        .split_whitespace()
        .last()
        .ok_or_else(|| "empty symbol".to_owned())?;
    let (owner, name) = match symbol.rsplit_once("::") {
        Some((owner, name)) => (Some(owner), name),
        None => (None, symbol),
    };
    let items = [
        "fn", "struct", "enum", "trait", "type", "const", "static", "mod",
    ];
    let is_item = |name: &str| {
        items.iter().any(|item| {
            text.match_indices(&format!("{item} {name}"))
                .any(|(at, found)| {
                    let next = text[at + found.len()..].chars().next();
                    !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
        })
    };
    if !is_item(name) {
        return Err(format!("no definition of `{name}`"));
    }
    if let Some(owner) = owner {
        let implemented = text.contains(&format!("impl {owner} "))
            || text.contains(&format!("for {owner} "))
            || is_item(owner);
        if !implemented {
            return Err(format!("no `{owner}` for `{name}` to belong to"));
        }
    }
    Ok(())
}

#[test]
fn a_symbol_must_be_defined_not_merely_mentioned() {
    let text = "pub struct Store;\nimpl Store {\n    pub fn connect() {}\n}\nfn helper() { validate(); }\n";

    assert_eq!(defines(text, "Store::connect"), Ok(()));
    assert_eq!(defines(text, "pub fn helper"), Ok(()));
    assert!(
        defines(text, "validate").is_err(),
        "only called, never defined"
    );
    assert!(defines(text, "connec").is_err(), "a prefix is not the name");
    assert!(defines(text, "Writer::connect").is_err(), "no Writer here");
}

fn read(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap()
}

/// The header of the README's error tables (the webhook's, and the API's).
const ERROR_TABLE: &str = "| status | `error` | meaning |";

/// Every README error table (each one under [`ERROR_TABLE`]), as code → statuses, and how
/// many tables there are.
fn readme_error_codes() -> (
    std::collections::BTreeMap<String, std::collections::BTreeSet<u16>>,
    usize,
) {
    let readme = read("README.md");
    let mut codes = std::collections::BTreeMap::<String, std::collections::BTreeSet<u16>>::new();
    let mut tables = 0;
    for table in readme.split(ERROR_TABLE).skip(1) {
        tables += 1;
        let mut rows = 0;
        for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let status: u16 = cells[1]
                .parse()
                .unwrap_or_else(|_| panic!("an error table row without a status: {row}"));
            for code in cells[2].split(',') {
                codes
                    .entry(code.trim().trim_matches('`').to_owned())
                    .or_default()
                    .insert(status);
            }
            rows += 1;
        }
        assert!(rows > 0, "an error table of the README has no rows");
    }
    (codes, tables)
}

/// The `error` codes of `ErrorBody` in docs/openapi.json (inline, or behind a `$ref`).
fn documented_error_codes(spec: &serde_json::Value) -> std::collections::BTreeSet<String> {
    let mut error = &spec["components"]["schemas"]["ErrorBody"]["properties"]["error"];
    if let Some(reference) = error.get("$ref").and_then(|r| r.as_str()) {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("ErrorBody.error refers outside the schemas: {reference}"));
        error = &spec["components"]["schemas"][name];
    }
    error["enum"]
        .as_array()
        .expect("ErrorBody.error is an enum of codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_readme_error_table_agrees_with_the_openapi_description_and_sns_verification_md() {
    let (codes, tables) = readme_error_codes();
    assert!(
        tables >= 2,
        "the README has {tables} error tables; expected the webhook's and the API's"
    );
    let spec: serde_json::Value = serde_json::from_str(&read("docs/openapi.json")).unwrap();
    let documented = documented_error_codes(&spec);
    let in_readme: std::collections::BTreeSet<String> = codes.keys().cloned().collect();
    let missing_from_readme: Vec<&String> = documented.difference(&in_readme).collect();
    let missing_from_openapi: Vec<&String> = in_readme.difference(&documented).collect();
    assert!(
        missing_from_readme.is_empty() && missing_from_openapi.is_empty(),
        "docs/openapi.json's error codes and the README's error tables differ: \
         not in the README {missing_from_readme:?}, not in docs/openapi.json {missing_from_openapi:?}"
    );

    // docs/sns-verification.md: "| `Variant` | meaning | NNN `code` ... |"
    let verification = read("docs/sns-verification.md");
    let mut checked = 0;
    for row in verification.lines().filter(|l| l.starts_with("| `")) {
        let answer = row.split('|').nth(3).unwrap_or_default().trim();
        let answer = answer.trim_start_matches("**");
        let Some((status, rest)) = answer.split_once(' ') else {
            continue;
        };
        let Ok(status) = status.trim_end_matches("**").parse::<u16>() else {
            continue;
        };
        let code = rest.split('`').nth(1).unwrap();
        assert!(
            codes.get(code).is_some_and(|s| s.contains(&status)),
            "{row}"
        );
        checked += 1;
    }
    assert!(checked >= 5, "the verification error table was not found");
}

#[test]
fn the_readme_lists_the_commands_ci_runs() {
    let ci = read(".ci/run");
    let readme = read("README.md");
    let commands: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cargo ") || l.starts_with("./scripts/test"))
        .map(|l| l.split(" 2>&1").next().unwrap())
        .collect();

    assert!(commands.len() >= 5, "{commands:?}");
    for command in commands {
        assert!(
            readme.contains(command),
            "the README does not list `{command}`"
        );
    }
}

#[test]
fn the_certificate_cache_default_in_the_docs_is_the_setting_default() {
    let default = app::Settings::default().sns.cert_cache_capacity;
    let verification = read("docs/sns-verification.md");

    assert!(
        verification.contains(&format!("`sns.cert_cache_capacity`, default {default}")),
        "docs/sns-verification.md does not give the default {default}"
    );
}

#[test]
fn every_setting_the_docs_name_exists() {
    let defaults = serde_json::to_value(app::Settings::default()).unwrap();
    let sections = [
        "server",
        "database",
        "sns",
        "log",
        "metrics",
        "retention",
        "suppression",
        "reputation",
        "outbox",
    ];
    let mut unknown = Vec::new();
    let mut named = 0;
    for doc in [
        "README.md",
        "docs/operations.md",
        "docs/reputation.md",
        "docs/deploying.md",
        "docs/architecture.md",
        "docs/sns-verification.md",
        "docs/performance.md",
        "docs/suppressions.md",
        "docs/delivery.md",
        "docs/data-contract.md",
    ] {
        let text = read(doc);
        for quoted in text.split('`').skip(1).step_by(2) {
            // The entry types of suppression-list changes look like settings.
            if domain::delivery::ENTRY_TYPES.contains(&quoted) {
                continue;
            }
            let Some((section, key)) = quoted.split_once('.') else {
                continue;
            };
            let key = key.split([' ', '=']).next().unwrap_or_default();
            let plain =
                |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            if !sections.contains(&section) || !plain(key) {
                continue;
            }
            named += 1;
            if defaults[section].get(key).is_none() {
                unknown.push(format!("{doc}: `{section}.{key}`"));
            }
        }
    }
    assert!(named >= 30, "found only {named} settings named in the docs");
    assert!(
        unknown.is_empty(),
        "settings the code does not have: {unknown:?}"
    );
}
