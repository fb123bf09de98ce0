//! The integration suite: the real `ses-webhook` server on a random port against a real
//! PostgreSQL database (a fresh one per test), SNS messages signed at test time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod architecture;
mod deliveries;
mod docs;
mod duplicates;
mod faults;
mod fixtures;
mod forgeries;
mod history;
mod hostile;
mod maintenance;
mod openapi;
mod operability;
mod reputation;
mod sqlite;
mod status_page;
mod store_down;
mod subscriptions;
