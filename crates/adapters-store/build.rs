//! Rebuilds the crate when a migration changes, so `embed_migrations!` never embeds stale SQL.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
