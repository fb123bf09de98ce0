//! The SQL types of the columns whose type differs between the two backends, so that one diesel
//! schema (`schema.rs`) and one set of statements serve both:
//!
//! | type             | PostgreSQL    | SQLite |
//! |------------------|---------------|--------|
//! | [`Instant`]      | `TIMESTAMPTZ` | `TEXT`, RFC 3339 in UTC with microseconds: `2024-05-01T12:00:00.000000Z` |
//! | [`JsonDocument`] | `JSONB`       | `TEXT` holding the JSON document (checked with `json_valid`) |
//!
//! The SQLite text form has a fixed width, so text order is time order: the subscription upsert
//! compares `updated_at` values in SQL on both backends.
//!
//! Reading the tables with diesel (the tests do): `DateTime<Utc>` and `serde_json::Value`
//! deserialise from these types on either backend.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use diesel::deserialize::{self, FromSql};
use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::query_builder::QueryId;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Jsonb, SqlType, Text, Timestamptz};
use diesel::sqlite::Sqlite;

/// An instant in time: `TIMESTAMPTZ` on PostgreSQL, fixed-width RFC 3339 UTC text on SQLite.
#[derive(Debug, Clone, Copy, Default, QueryId, SqlType)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Instant;

/// Instants compare in SQL (`MAX(event_time)`) on both backends: the SQLite text is fixed-width.
impl diesel::sql_types::SqlOrd for Instant {}

/// A JSON document: `JSONB` on PostgreSQL, JSON text on SQLite.
#[derive(Debug, Clone, Copy, Default, QueryId, SqlType)]
#[diesel(postgres_type(oid = 3802, array_oid = 3807))]
#[diesel(sqlite_type(name = "Text"))]
pub struct JsonDocument;

/// How an [`Instant`] is written on SQLite: microseconds, as PostgreSQL keeps them.
pub(crate) fn sqlite_text(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An instant bound as a statement parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, AsExpression)]
#[diesel(sql_type = Instant)]
pub(crate) struct TimeParam(pub DateTime<Utc>);

/// A JSON document bound as a statement parameter.
#[derive(Debug, Clone, PartialEq, AsExpression, serde::Serialize)]
#[diesel(sql_type = JsonDocument)]
#[serde(transparent)]
pub(crate) struct JsonParam(pub serde_json::Value);

/// In a JSON row (PostgreSQL's batch write), an instant is its fixed-width RFC 3339 text, which
/// `TIMESTAMPTZ` reads back exactly.
impl serde::Serialize for TimeParam {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&sqlite_text(&self.0))
    }
}

impl ToSql<Instant, Pg> for TimeParam {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<Timestamptz, Pg>>::to_sql(&self.0, out)
    }
}

impl ToSql<Instant, Sqlite> for TimeParam {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(sqlite_text(&self.0));
        Ok(IsNull::No)
    }
}

impl FromSql<Instant, Pg> for DateTime<Utc> {
    fn from_sql(
        bytes: <Pg as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        <Self as FromSql<Timestamptz, Pg>>::from_sql(bytes)
    }
}

impl FromSql<Instant, Sqlite> for DateTime<Utc> {
    fn from_sql(
        value: <Sqlite as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        parse_sqlite_instant(&text)
            .ok_or_else(|| format!("not an RFC 3339 instant: {text:?}").into())
    }
}

/// Parses the text of an [`Instant`] column: RFC 3339 (what the store writes), or SQLite's own
/// `YYYY-MM-DD HH:MM:SS[.SSS]` in UTC (what `CURRENT_TIMESTAMP` gives, should a reader write it).
fn parse_sqlite_instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|naive| naive.and_utc())
        })
}

impl ToSql<JsonDocument, Pg> for JsonParam {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <serde_json::Value as ToSql<Jsonb, Pg>>::to_sql(&self.0, out)
    }
}

impl ToSql<JsonDocument, Sqlite> for JsonParam {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}

impl FromSql<JsonDocument, Pg> for serde_json::Value {
    fn from_sql(
        bytes: <Pg as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        <Self as FromSql<Jsonb, Pg>>::from_sql(bytes)
    }
}

impl FromSql<JsonDocument, Sqlite> for serde_json::Value {
    fn from_sql(
        value: <Sqlite as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        Ok(serde_json::from_str(&text)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn sqlite_instants_have_a_fixed_width_so_text_order_is_time_order() {
        let whole = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        let later = whole + chrono::Duration::microseconds(500_000);
        let latest = whole + chrono::Duration::microseconds(1);

        assert_eq!(sqlite_text(&whole), "2024-05-01T12:00:00.000000Z");
        assert_eq!(sqlite_text(&later), "2024-05-01T12:00:00.500000Z");
        assert!(sqlite_text(&whole) < sqlite_text(&latest));
        assert!(sqlite_text(&latest) < sqlite_text(&later));
    }

    #[test]
    fn sqlite_instants_read_back_in_both_text_forms() {
        let at = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
            + chrono::Duration::microseconds(123_456);

        assert_eq!(parse_sqlite_instant(&sqlite_text(&at)), Some(at));
        assert_eq!(parse_sqlite_instant("2024-05-01 12:00:00.123456"), Some(at));
        assert_eq!(parse_sqlite_instant("yesterday"), None);
    }
}
