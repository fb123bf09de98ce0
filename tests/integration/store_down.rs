//! When the database is unavailable nothing is acknowledged (503, SNS retries), and the server
//! recovers by itself once the database is back.

use adapters_store::testing::TestDatabase;
use diesel::prelude::*;
use test_support::{spawn_app, spawn_app_with};

fn delivery(message_id: &str) -> String {
    serde_json::json!({
        "notificationType": "Delivery",
        "mail": {"timestamp": "2026-11-27T11:59:58.000Z", "messageId": message_id, "destination": ["a@example.com"]},
        "delivery": {"timestamp": "2026-11-27T11:59:59.000Z", "recipients": ["a@example.com"]}
    })
    .to_string()
}

#[tokio::test]
async fn unreachable_database_is_503_and_not_ready() {
    let app = spawn_app_with(|settings| {
        settings.database.url = "postgres://postgres@127.0.0.1:1/nowhere".into();
        settings.database.migrate_on_start = false;
        settings.database.connect_timeout_secs = 1;
    })
    .await;

    let (status, body) = app.post(&app.notification(&delivery("down-1"))).await;
    let ready = app.get("/readyz").await;

    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "store_unavailable");
    assert!(
        !body["message"].as_str().unwrap().contains("127.0.0.1"),
        "internals leaked: {body}"
    );
    assert_eq!(ready.status().as_u16(), 503);
}

fn admin() -> PgConnection {
    PgConnection::establish(&format!("{}/postgres", TestDatabase::base_url_from_env())).unwrap()
}

pub(crate) fn set_database_open(name: &str, open: bool) {
    let mut admin = admin();
    diesel::sql_query(format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {open}"
    ))
    .execute(&mut admin)
    .unwrap();
    if !open {
        diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
        .execute(&mut admin)
        .unwrap();
    }
}

#[tokio::test]
async fn database_outage_gives_503_then_recovers_without_a_restart() {
    let app = spawn_app().await;
    let name = app.db().url().rsplit('/').next().unwrap().to_owned();
    let before = app.notification(&delivery("outage-before"));
    let during = app.notification(&delivery("outage-during"));
    assert_eq!(app.post(&before).await.0, 200);

    set_database_open(&name, false);
    let (status, body) = app.post(&during).await;
    assert_eq!(status, 503, "{body}");
    set_database_open(&name, true);

    let (status, body) = app.post(&during).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["processed"], 1);
    assert_eq!(app.count("email_events"), 2);
    assert_eq!(app.count("sns_messages"), 2);
}
