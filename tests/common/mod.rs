//! Test support shared by the integration tests: a PostgreSQL schema of its own per test.

use sqlx::Connection;
use std::time::Duration;

/// A fresh schema in `LINKBOT_TEST_DATABASE_URL`, and a URL whose `search_path` points at it.
pub struct TestSchema {
    /// The database URL with `options=-c search_path=<schema>` added.
    pub url: String,
    schema: String,
    admin: sqlx::PgConnection,
}

/// Creates a schema for one test. `None` when `LINKBOT_TEST_DATABASE_URL` is not set (the test
/// is skipped), unless `LINKBOT_REQUIRE_POSTGRES=1`, which makes that a failure.
pub async fn postgres_schema(wait: Duration) -> Option<TestSchema> {
    let Ok(base) = std::env::var("LINKBOT_TEST_DATABASE_URL") else {
        if std::env::var("LINKBOT_REQUIRE_POSTGRES").as_deref() == Ok("1") {
            panic!("LINKBOT_REQUIRE_POSTGRES=1 but LINKBOT_TEST_DATABASE_URL is not set: point it at a PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/test");
        }
        eprintln!("skipped: LINKBOT_TEST_DATABASE_URL not set");
        return None;
    };
    let schema = format!("linkbot_test_{}", uuid::Uuid::new_v4().simple());
    let admin = async {
        let mut conn = sqlx::PgConnection::connect(&base).await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await?;
        Ok::<_, sqlx::Error>(conn)
    };
    let admin = tokio::time::timeout(wait, admin)
        .await
        .expect("connecting to LINKBOT_TEST_DATABASE_URL timed out")
        .expect("cannot create a test schema in LINKBOT_TEST_DATABASE_URL");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Some(TestSchema { url, schema, admin })
}

impl TestSchema {
    /// Drops the schema and everything in it.
    pub async fn drop_schema(mut self, wait: Duration) {
        let sql = format!("DROP SCHEMA {} CASCADE", self.schema);
        tokio::time::timeout(wait, sqlx::query(&sql).execute(&mut self.admin))
            .await
            .expect("dropping the test schema timed out")
            .expect("dropping the test schema");
    }
}
