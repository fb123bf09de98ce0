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
    "rustls",
    "openssl",
    "native-tls",
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

/// Everything in `graph` that breaks the dependency rule, in words.
fn violations(graph: &Graph) -> Vec<String> {
    let mut found = Vec::new();
    let domain = graph.normal_closure("ses-webhook-domain");
    for name in &domain {
        if OUTER_CRATES.contains(&name.as_str()) {
            found.push(format!("domain depends on {name}"));
        }
        if graph.members.contains(name.as_str()) {
            found.push(format!("domain depends on our crate {name}"));
        }
    }
    if graph
        .normal_closure("ses-webhook-sns-verify")
        .contains("ses-webhook-domain")
    {
        found.push("sns-verify (a stand-alone library) depends on the domain".into());
    }
    let adapters = graph
        .members
        .iter()
        .filter(|name| name.starts_with("ses-webhook-adapters-"));
    for adapter in adapters {
        // Of our crates, an adapter builds on the domain alone: it meets the other adapters
        // only through the domain's ports, in `app`.
        for dep in graph.direct(adapter) {
            let ours = graph.members.contains(dep.as_str());
            if ours && dep != "ses-webhook-domain" && dep != *adapter {
                found.push(format!("{adapter} depends on {dep}"));
            }
        }
    }
    found
}

#[test]
fn dependencies_point_inward() {
    let graph = Graph::load();

    assert_eq!(violations(&graph), Vec::<String>::new());
    let adapters = graph
        .members
        .iter()
        .filter(|name| name.starts_with("ses-webhook-adapters-"))
        .count();
    assert!(adapters >= 2, "the adapters are found by their names");
}

#[test]
fn the_rule_catches_a_domain_reaching_outward_and_adapters_meeting() {
    let mut graph = Graph::load();
    assert!(violations(&graph).is_empty());
    // Make the graph wrong in three ways: the domain on tokio, sns-verify on the domain, the
    // HTTP adapter on the store adapter.
    let id = |graph: &Graph, name: &str| {
        graph
            .names
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(id, _)| id.clone())
            .unwrap()
    };
    for (from, to) in [
        ("ses-webhook-domain", "tokio"),
        ("ses-webhook-sns-verify", "ses-webhook-domain"),
        ("ses-webhook-adapters-http", "ses-webhook-adapters-store"),
    ] {
        let (from, to) = (id(&graph, from), id(&graph, to));
        graph.edges.get_mut(&from).unwrap().push((to, vec![None]));
    }

    let found = violations(&graph);

    assert!(
        found.contains(&"domain depends on tokio".to_owned()),
        "{found:?}"
    );
    assert!(
        found.iter().any(|v| v.starts_with("sns-verify")),
        "{found:?}"
    );
    assert!(
        found.contains(
            &"ses-webhook-adapters-http depends on ses-webhook-adapters-store".to_owned()
        ),
        "{found:?}"
    );
}
