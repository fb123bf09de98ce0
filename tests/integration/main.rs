//! The integration suite: the real `ses-webhook` server on a random port against a real
//! PostgreSQL database (a fresh one per test), SNS messages signed at test time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// For each named `async fn NAME(backend: test_support::Backend)` of the module, a module
/// `NAME` with one test on PostgreSQL and one on SQLite.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use test_support::Backend;

                #[tokio::test]
                async fn on_postgres() {
                    super::$name(Backend::Postgres).await;
                }

                #[tokio::test]
                async fn on_sqlite() {
                    super::$name(Backend::Sqlite).await;
                }
            }
        )*
    };
}

mod api;
mod architecture;
mod deliveries;
mod docs;
mod duplicates;
mod event_delivery;
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
mod sqs;
mod status_page;
mod store_down;
mod subscriptions;
