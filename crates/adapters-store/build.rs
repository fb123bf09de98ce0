//! Rebuilds the crate when a migration changes, so `embed_migrations!` never embeds stale SQL.
//! Cargo scans each named directory, and everything under it, for changes: one line per
//! backend's migrations.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/postgres");
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
}
