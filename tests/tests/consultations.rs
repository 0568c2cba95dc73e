//! `POST /v1/consultations/{id}/ice-servers` against the real companion and database: TURN
//! credentials only for a participant of an open call, in coturn's REST scheme.

use careplane_companion::turn::credentials;
use careplane_tests::{begin_as, create_user, jwt, user_claims, Companion, TestDb, TEST_JWT_SECRET};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

const TURN_SECRET: &str = "turn-secret-for-the-e2e-tests";

struct Call {
    patient: Uuid,
    clinician: Uuid,
    other_patient: Uuid,
    admin: Uuid,
    consultation: Uuid,
}

/// A patient, a doctor with a booked consultation that started five minutes ago, another
/// patient and an admin.
async fn call(conn: &mut PgConnection) -> Call {
    let patient = create_user(conn, "patient").await.unwrap();
    let clinician = create_user(conn, "doctor").await.unwrap();
    let other_patient = create_user(conn, "patient").await.unwrap();
    let admin = create_user(conn, "admin").await.unwrap();
    let consultation: Uuid = sqlx::query_scalar(
        "with p as (insert into public.practitioners (profile_id, kind, display_name, consultation_fee_minor, currency, time_zone)
                    values ($2, 'doctor', 'Dr Test', 10000, 'NGN', 'Africa/Lagos') returning id),
              a as (insert into public.appointments (patient_id, practitioner_id, period, status, created_by)
                    select $1, p.id, tstzrange(now() - interval '5 minutes', now() + interval '25 minutes'), 'booked', $1 from p
                    returning id)
         insert into public.consultations (appointment_id) select id from a returning id",
    )
    .bind(patient)
    .bind(clinician)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    Call { patient, clinician, other_patient, admin, consultation }
}

fn token(sub: Uuid, role: &str) -> String {
    jwt::sign_hs256(TEST_JWT_SECRET.as_bytes(), &jwt::user_claims("local", sub, role))
}

async fn ask(companion: &Companion, consultation: Uuid, sub: Uuid, role: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(companion.url(&format!("/v1/consultations/{consultation}/ice-servers")))
        .bearer_auth(token(sub, role))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn rpc(conn: &mut PgConnection, sub: Uuid, role: &str, sql: &str, consultation: Uuid) {
    let mut tx = begin_as(conn, &user_claims(sub, role)).await.unwrap();
    sqlx::query(sql).bind(consultation).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn only_participants_of_an_open_call_get_turn_credentials() {
    let db = TestDb::migrated().await.unwrap();
    let mut conn = db.connect().await.unwrap();
    let c = call(&mut conn).await;
    let companion = Companion::spawn(&[
        ("DATABASE_URL", &db.url),
        ("TURN_URLS", "stun:127.0.0.1:3478,turn:127.0.0.1:3478?transport=udp"),
        ("TURN_SECRET", TURN_SECRET),
        ("TURN_TTL_SECONDS", "600"),
    ])
    .await
    .unwrap();

    // Scheduled: the call is not open yet.
    let (status, body) = ask(&companion, c.consultation, c.patient, "patient").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("call_not_open")), "{body}");
    assert_eq!(body["error"]["details"]["status"], "scheduled");

    rpc(&mut conn, c.patient, "patient", "select public.join_consultation($1)", c.consultation).await;
    for (sub, role) in [(c.patient, "patient"), (c.clinician, "doctor")] {
        let (status, body) = ask(&companion, c.consultation, sub, role).await;
        assert_eq!(status, 200, "{body}");
        let data = &body["data"];
        assert_eq!(data["ttl"], 600);
        let servers = data["ice_servers"].as_array().unwrap();
        assert_eq!(servers[0], serde_json::json!({"urls": ["stun:127.0.0.1:3478"]}), "STUN needs no credentials");
        let expires_at = data["expires_at"].as_u64().unwrap();
        let now = jwt::now() as u64;
        assert!((now + 590..=now + 610).contains(&expires_at), "expires in the TTL: {expires_at} vs {now}");
        let (username, credential) = credentials(TURN_SECRET.as_bytes(), sub, expires_at);
        assert_eq!(servers[1]["urls"], serde_json::json!(["turn:127.0.0.1:3478?transport=udp"]));
        assert_eq!(servers[1]["username"], username.as_str(), "<expiry>:<user id>");
        assert_eq!(servers[1]["credential"], credential.as_str());
    }

    // Nobody else: another patient cannot see the consultation; an admin can, but takes no part.
    let (status, body) = ask(&companion, c.consultation, c.other_patient, "patient").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("consultation_not_found")), "{body}");
    let (status, body) = ask(&companion, c.consultation, c.admin, "admin").await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("not_a_participant")), "{body}");
    let (status, _) = ask(&companion, Uuid::new_v4(), c.patient, "patient").await;
    assert_eq!(status, 404);

    // In the call, then ended: closed again.
    rpc(&mut conn, c.clinician, "doctor", "select public.admit_patient($1)", c.consultation).await;
    assert_eq!(ask(&companion, c.consultation, c.patient, "patient").await.0, 200);
    rpc(&mut conn, c.clinician, "doctor", "select public.end_consultation($1)", c.consultation).await;
    let (status, body) = ask(&companion, c.consultation, c.patient, "patient").await;
    assert_eq!((status, body["error"]["details"]["status"].as_str()), (409, Some("ended")), "{body}");
}

#[tokio::test]
async fn without_turn_settings_the_endpoint_says_so() {
    let companion = Companion::spawn(&[]).await.unwrap();
    let (status, body) = ask(&companion, Uuid::new_v4(), Uuid::new_v4(), "patient").await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("turn_not_configured")), "{body}");
}

async fn http(companion: &Companion, method: reqwest::Method, path: &str, sub: Uuid, role: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, companion.url(path)).bearer_auth(token(sub, role));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The page's endpoints run the RPCs and the messages table as the caller: the rule's refusals
/// come back with their codes, RLS hides what is not the caller's, history is the latest first
/// taken, oldest first returned.
#[tokio::test]
async fn the_call_and_chat_endpoints_act_as_the_caller() {
    use reqwest::Method;
    let db = TestDb::migrated().await.unwrap();
    let mut conn = db.connect().await.unwrap();
    let c = call(&mut conn).await;
    let conversation = careplane_tests::create_conversation(&mut conn, &[c.patient, c.clinician]).await.unwrap();
    sqlx::query("update public.conversations set kind = 'consultation', consultation_id = $2 where id = $1")
        .bind(conversation)
        .bind(c.consultation)
        .execute(&mut conn)
        .await
        .unwrap();
    let companion = Companion::spawn(&[("DATABASE_URL", &db.url)]).await.unwrap();
    let at = |m: &str| format!("/v1/consultations/{}/{m}", c.consultation);

    let (status, body) = http(&companion, Method::GET, &format!("/v1/consultations/{}", c.consultation), c.clinician, "doctor", None).await;
    assert_eq!((status, body["data"]["status"].as_str()), (200, Some("scheduled")), "{body}");
    assert_eq!(body["data"]["conversation_id"], conversation.to_string());
    let (status, body) = http(&companion, Method::GET, &format!("/v1/consultations/{}", c.consultation), c.other_patient, "patient", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("consultation_not_found")), "{body}");
    // The clinician cannot enter the waiting room, nor admit before the patient waits.
    let (status, body) = http(&companion, Method::POST, &at("join"), c.clinician, "doctor", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body) = http(&companion, Method::POST, &at("admit"), c.clinician, "doctor", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_transition")), "{body}");
    let (status, body) = http(&companion, Method::POST, &at("join"), c.other_patient, "patient", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("consultation_not_found")), "{body}");
    let (status, body) = http(&companion, Method::POST, &at("join"), c.patient, "patient", None).await;
    assert_eq!((status, body["data"]["status"].as_str()), (200, Some("waiting")), "{body}");
    let (status, body) = http(&companion, Method::POST, &at("admit"), c.patient, "patient", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body) = http(&companion, Method::POST, &at("admit"), c.clinician, "doctor", None).await;
    assert_eq!((status, body["data"]["status"].as_str()), (200, Some("in_progress")), "{body}");
    assert!(body["data"]["started_at"].is_string());
    let (status, body) = http(&companion, Method::POST, &at("end"), c.patient, "patient", None).await;
    assert_eq!((status, body["data"]["status"].as_str()), (200, Some("ended")), "{body}");
    assert!(body["data"]["duration_seconds"].as_i64().is_some_and(|d| d >= 0), "{body}");

    // Chat: members post as themselves; history is the latest `limit`, oldest first.
    let messages = format!("/v1/conversations/{conversation}/messages");
    for (i, (sub, role)) in [(c.patient, "patient"), (c.clinician, "doctor"), (c.patient, "patient")].into_iter().enumerate() {
        let (status, body) = http(&companion, Method::POST, &messages, sub, role, Some(serde_json::json!({"body": format!("m{i}")}))).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["data"]["sender_id"], sub.to_string());
    }
    let (status, body) = http(&companion, Method::GET, &format!("{messages}?limit=2"), c.clinician, "doctor", None).await;
    assert_eq!(status, 200, "{body}");
    let bodies: Vec<&str> = body["data"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["m1", "m2"]);
    for (sub, role, path, payload, want) in [
        (c.other_patient, "patient", messages.clone(), None, (404, "conversation_not_found")),
        (c.other_patient, "patient", messages.clone(), Some(serde_json::json!({"body": "hi"})), (404, "conversation_not_found")),
        (c.patient, "patient", messages.clone(), Some(serde_json::json!({"body": "   "})), (422, "validation_failed")),
        (c.patient, "patient", format!("{messages}?limit=0"), None, (422, "validation_failed")),
        (c.patient, "patient", format!("{messages}?limit=201"), None, (422, "validation_failed")),
    ] {
        let method = if payload.is_some() { Method::POST } else { Method::GET };
        let (status, body) = http(&companion, method, &path, sub, role, payload).await;
        assert_eq!((status, body["error"]["code"].as_str().unwrap_or("")), want, "{path}: {body}");
    }
    let stored: i64 = sqlx::query_scalar("select count(*) from public.messages where conversation_id = $1")
        .bind(conversation)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, 3, "refused messages are not stored");
}
