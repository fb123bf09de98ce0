//! Faults under load: the database stops and comes back while deliveries arrive. Nothing
//! acknowledged is lost, nothing is stored twice, and the server recovers without a restart.

use std::sync::Arc;
use std::time::Duration;

use test_support::{ThrowawayPostgres, spawn_app_on};

fn delivery(i: usize) -> String {
    let recipients: Vec<String> = (0..3).map(|r| format!("r{r}-{i}@example.com")).collect();
    serde_json::json!({
        "notificationType": "Delivery",
        "mail": {"timestamp": "2026-11-27T11:59:58.000Z", "messageId": format!("fault-{i}"), "destination": recipients},
        "delivery": {"timestamp": "2026-11-27T11:59:59.000Z", "recipients": recipients}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_and_restarted_under_load_loses_nothing_and_recovers() {
    let Some(postgres) = ThrowawayPostgres::start() else {
        return;
    };
    let app = Arc::new(
        spawn_app_on(postgres.url(), |settings| {
            settings.database.connect_timeout_secs = 1;
        })
        .await,
    );
    let messages = 200;
    let bodies: Vec<Arc<String>> = (0..messages)
        .map(|i| Arc::new(app.notification(&delivery(i)).to_string()))
        .collect();

    // Deliveries spread over about two seconds; the database is down for one of them.
    let mut tasks = tokio::task::JoinSet::new();
    for (i, body) in bodies.iter().enumerate() {
        let app = Arc::clone(&app);
        let body = Arc::clone(body);
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
            let status = app.post_raw(body.to_string()).await.status().as_u16();
            (i, status)
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    postgres.stop();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    postgres.start_again();
    let mut unacknowledged = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (i, status) = result.unwrap();
        assert!(status == 200 || status == 503, "delivery {i}: {status}");
        if status != 200 {
            unacknowledged.push(i);
        }
    }
    assert!(
        !unacknowledged.is_empty(),
        "the outage was not hit: the test proves nothing"
    );
    assert!(
        unacknowledged.len() < messages,
        "nothing was acknowledged around the outage"
    );

    // SNS retries what was not acknowledged; the same server, never restarted, now stores it.
    for i in &unacknowledged {
        let mut status = 0;
        for _ in 0..20 {
            status = app.post_raw(bodies[*i].to_string()).await.status().as_u16();
            if status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(status, 200, "delivery {i} never recovered");
    }

    assert_eq!(app.count("sns_messages"), messages as i64);
    assert_eq!(
        app.count("email_events"),
        3 * messages as i64,
        "events lost or doubled"
    );
    let events = app.events();
    let keys: std::collections::HashSet<_> = events.iter().map(|e| &e.event_key).collect();
    assert_eq!(keys.len(), events.len());
}
