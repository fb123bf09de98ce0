//! Diesel table definitions, kept by hand in step with both `migrations/postgres/` and
//! `migrations/sqlite/`: one schema for both backends, with [`Instant`](crate::sql_types::Instant)
//! and [`JsonDocument`](crate::sql_types::JsonDocument) for the columns whose type differs.
//! Private to this crate.

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::Instant;

    sns_messages (id) {
        id -> Int8,
        sns_message_id -> Text,
        message_type -> Text,
        topic_arn -> Text,
        sns_timestamp -> Instant,
        received_at -> Instant,
        ses_type -> Nullable<Text>,
        outcome -> Text,
        error_count -> Int4,
        error_detail -> Nullable<Text>,
        raw_body -> Nullable<Text>,
        events_stored -> Int4,
        ses_message_id -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::{Instant, JsonDocument};

    email_events (id) {
        id -> Int8,
        event_key -> Text,
        event_type -> Text,
        recipient -> Nullable<Text>,
        bounce_type -> Nullable<Text>,
        ses_message_id -> Text,
        sns_message_id -> Text,
        event_time -> Instant,
        mail_time -> Nullable<Instant>,
        source -> Nullable<Text>,
        subject -> Nullable<Text>,
        ses_bounce_type -> Nullable<Text>,
        bounce_subtype -> Nullable<Text>,
        bounce_action -> Nullable<Text>,
        bounce_status -> Nullable<Text>,
        diagnostic_code -> Nullable<Text>,
        feedback_id -> Nullable<Text>,
        complaint_feedback_type -> Nullable<Text>,
        complaint_subtype -> Nullable<Text>,
        smtp_response -> Nullable<Text>,
        reporting_mta -> Nullable<Text>,
        remote_mta_ip -> Nullable<Text>,
        processing_time_ms -> Nullable<Int8>,
        link -> Nullable<Text>,
        link_tags -> Nullable<JsonDocument>,
        user_agent -> Nullable<Text>,
        ip_address -> Nullable<Text>,
        tags -> Nullable<JsonDocument>,
        created_at -> Instant,
        recipient_key -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::Instant;

    sns_subscriptions (topic_arn) {
        topic_arn -> Text,
        state -> Text,
        subscribe_url -> Nullable<Text>,
        created_at -> Instant,
        updated_at -> Instant,
        confirmed_at -> Nullable<Instant>,
        unsubscribed_at -> Nullable<Instant>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::Instant;

    suppressions (id) {
        id -> Int8,
        address_key -> Text,
        address -> Text,
        reason -> Text,
        created_at -> Instant,
        expires_at -> Nullable<Instant>,
        ses_message_id -> Nullable<Text>,
        event_key -> Nullable<Text>,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::Instant;

    suppression_history (id) {
        id -> Int8,
        address_key -> Text,
        address -> Text,
        action -> Text,
        reason -> Text,
        actor -> Text,
        at -> Instant,
        expires_at -> Nullable<Instant>,
        ses_message_id -> Nullable<Text>,
        event_key -> Nullable<Text>,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::Instant;

    api_tokens (id) {
        id -> Int8,
        name -> Text,
        scope -> Text,
        token_hash -> Text,
        created_at -> Instant,
        last_used_at -> Nullable<Instant>,
        revoked_at -> Nullable<Instant>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::Instant;

    erasures (id) {
        id -> Int8,
        address_hash -> Text,
        actor -> Text,
        at -> Instant,
        events_deleted -> Int4,
        messages_cleared -> Int4,
        suppression_removed -> Bool,
        history_deleted -> Int4,
    }
}

// SQLite only (on PostgreSQL a GIN index on `email_events.tags` does its work): one row per
// value of each tag of each event, kept by triggers. Read by the history's tag queries.
diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::Instant;

    email_event_tags (name, value, event_time, event_id) {
        name -> Text,
        value -> Text,
        event_time -> Instant,
        event_id -> Int8,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::Instant;

    email_counts (hour, configuration_set, shard) {
        hour -> Instant,
        configuration_set -> Text,
        shard -> Int2,
        sent -> Int8,
        delivered -> Int8,
        hard_bounces -> Int8,
        soft_bounces -> Int8,
        complaints -> Int8,
        rejects -> Int8,
        delivery_delays -> Int8,
        opens -> Int8,
        clicks -> Int8,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::Instant;

    counted_records (record_key) {
        record_key -> Text,
        kind -> Text,
        at -> Instant,
    }
}

diesel::table! {
    delivery_sinks (name) {
        name -> Text,
        all_types -> Bool,
    }
}

diesel::table! {
    delivery_sink_types (sink, entry_type) {
        sink -> Text,
        entry_type -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::Instant;

    outbox (id) {
        id -> Int8,
        sink -> Text,
        entry_id -> Text,
        entry_type -> Text,
        event_id -> Nullable<Int8>,
        history_id -> Nullable<Int8>,
        state -> Text,
        attempts -> Int4,
        created_at -> Instant,
        next_attempt_at -> Instant,
        lease_until -> Nullable<Instant>,
        last_error -> Nullable<Text>,
        settled_at -> Nullable<Instant>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    sns_messages,
    email_events,
    sns_subscriptions,
    suppressions,
    suppression_history,
    api_tokens,
    erasures,
    email_event_tags,
    email_counts,
    counted_records,
    delivery_sinks,
    delivery_sink_types,
    outbox,
);
