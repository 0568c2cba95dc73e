//! Which build of the extension the database runs is visible where an operator looks: the
//! companion's `/health/detailed` reports it (issue 18: a debug build is many times slower and
//! must never be installed unnoticed).

use careplane_tests::{redis_url, Companion, TestDb};
use serde_json::Value;

#[tokio::test]
async fn detailed_health_names_the_installed_extension_build() {
    let db = TestDb::migrated().await.unwrap();
    let app = Companion::spawn(&[("DATABASE_URL", &db.url), ("REDIS_URL", &redis_url())]).await.unwrap();

    let res = reqwest::get(app.url("/health/detailed")).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    let installed: String = sqlx::query_scalar("select careplane.build_info() ->> 'profile'")
        .fetch_one(&mut db.connect().await.unwrap())
        .await
        .unwrap();
    assert!(installed == "release" || installed == "debug", "{installed}");
    assert_eq!(body["checks"]["extension"]["build"], installed.as_str(), "{body}");
    assert_eq!(body["checks"]["extension"]["status"], "ok", "{body}");
    // Only the extension has a build.
    assert!(body["checks"]["database"].get("build").is_none(), "{body}");
}
