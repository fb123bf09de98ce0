//! The docs stay true to the code: every file the code map of `docs/architecture.md` names
//! exists and contains the symbol it names.

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
                // `Type::method` is found as the method inside the file that holds the type.
                let parts: Vec<&str> = symbol.split("::").collect();
                if let Some(part) = parts.iter().find(|p| !text.contains(*p)) {
                    missing.push(format!("{behaviour}: {file} has no `{part}`"));
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
