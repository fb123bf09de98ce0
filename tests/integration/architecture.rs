//! The dependency rule of `docs/architecture.md`, checked over `cargo metadata`: dependencies
//! point inward. `domain` depends, directly or through other crates, on no web, database,
//! HTTP-client or async-runtime crate and on no other crate of ours; `sns-verify` stays a
//! stand-alone library; no adapter depends on another.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Crates that would tie the domain to a web framework, a database, an HTTP client or an async
/// runtime.
const OUTER_CRATES: &[&str] = &[
    "actix-web",
    "actix-http",
    "actix-server",
    "actix-rt",
    "axum",
    "hyper",
    "warp",
    "reqwest",
    "ureq",
    "isahc",
    "diesel",
    "diesel_migrations",
    "r2d2",
    "sqlx",
    "postgres",
    "tokio-postgres",
    "pq-sys",
    "libsqlite3-sys",
    "rusqlite",
    "tokio",
    "async-std",
    "smol",
];

/// Package id to its dependencies' ids, each with its kinds (`None` = normal, `Some("dev")`,
/// `Some("build")`).
type Edges = BTreeMap<String, Vec<(String, Vec<Option<String>>)>>;

/// The resolved dependency graph of the workspace.
struct Graph {
    /// Package id to name.
    names: BTreeMap<String, String>,
    edges: Edges,
    /// Names of the workspace's packages.
    members: BTreeSet<String>,
}

impl Graph {
    fn load() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let version = Command::new(rustc).arg("-vV").output().unwrap();
        let host = String::from_utf8(version.stdout)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
            .expect("rustc -vV names the host");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .current_dir(&root)
            .args([
                "metadata",
                "--format-version=1",
                "--all-features",
                "--locked",
                "--offline",
                "--filter-platform",
                &host,
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
        let names = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().unwrap().to_owned(),
                    p["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<BTreeMap<_, _>>();
        let members = metadata["workspace_members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| names[id.as_str().unwrap()].clone())
            .collect();
        let edges = metadata["resolve"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|node| {
                let deps = node["deps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|dep| {
                        let kinds = dep["dep_kinds"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|k| k["kind"].as_str().map(str::to_owned))
                            .collect();
                        (dep["pkg"].as_str().unwrap().to_owned(), kinds)
                    })
                    .collect();
                (node["id"].as_str().unwrap().to_owned(), deps)
            })
            .collect();
        Self {
            names,
            edges,
            members,
        }
    }

    fn id(&self, name: &str) -> String {
        self.names
            .iter()
            .find(|(_, n)| *n == name && self.members.contains(n.as_str()))
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("{name} is not a workspace member"))
    }

    /// The names of `name`'s direct dependencies of any kind.
    fn direct(&self, name: &str) -> BTreeSet<String> {
        self.edges[&self.id(name)]
            .iter()
            .map(|(id, _)| self.names[id].clone())
            .collect()
    }

    /// The names of every crate `name` depends on to build as a library (normal dependencies,
    /// transitively; not its tests' or build scripts' dependencies).
    fn normal_closure(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![self.id(name)];
        while let Some(id) = todo.pop() {
            for (dep, kinds) in &self.edges[&id] {
                if kinds.iter().any(Option::is_none) && seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        seen.into_iter().map(|id| self.names[&id].clone()).collect()
    }
}

#[test]
fn dependencies_point_inward() {
    let graph = Graph::load();

    let domain = graph.normal_closure("ses-webhook-domain");
    let outer: Vec<_> = domain
        .iter()
        .filter(|name| OUTER_CRATES.contains(&name.as_str()))
        .collect();
    assert!(
        outer.is_empty(),
        "domain must not depend on web, database, HTTP-client or runtime crates: {outer:?}"
    );
    let ours: Vec<_> = domain
        .iter()
        .filter(|name| graph.members.contains(name.as_str()))
        .collect();
    assert!(ours.is_empty(), "domain depends on {ours:?}");

    assert!(
        !graph
            .normal_closure("ses-webhook-sns-verify")
            .contains("ses-webhook-domain"),
        "sns-verify is a stand-alone library: it must not depend on the domain"
    );

    let adapters: Vec<&String> = graph
        .members
        .iter()
        .filter(|name| name.starts_with("ses-webhook-adapters-"))
        .collect();
    assert!(adapters.len() >= 2, "{adapters:?}");
    for adapter in &adapters {
        let direct = graph.direct(adapter);
        for other in &adapters {
            assert!(
                adapter == other || !direct.contains(other.as_str()),
                "{adapter} depends on {other}: adapters meet only through the domain's ports"
            );
        }
    }
}

#[test]
fn the_rule_would_catch_a_domain_that_reached_for_the_runtime() {
    // The check above is only worth something if the graph it reads is real: the HTTP adapter
    // does depend on actix-web and tokio, and the domain on serde.
    let graph = Graph::load();

    let http = graph.normal_closure("ses-webhook-adapters-http");
    let domain = graph.normal_closure("ses-webhook-domain");

    assert!(
        http.contains("actix-web") && http.contains("tokio"),
        "{http:?}"
    );
    assert!(http.contains("ses-webhook-domain"));
    assert!(domain.contains("serde"), "{domain:?}");
}
