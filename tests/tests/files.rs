//! Medical files end to end: the companion on a migrated throwaway database, a local
//! S3-compatible store (tests/src/s3.rs), and plain HTTP to the presigned URLs as a browser
//! would send them.
//!
//! Against moto: an upload through a presigned PUT and a download through a presigned GET; a
//! wrong size or type refused by the store; another patient's request for either URL refused
//! with 403 and nothing signed; completion checking what the store holds; the realtime events
//! and the access log. Against s3rver: expired upload and download URLs refused by the store
//! (moto does not check expiry). Neither store verifies SigV4 signatures of presigned URLs.

use careplane_tests::s3::LocalS3;
use careplane_tests::{create_user, jwt, Companion, TestDb, TEST_JWT_SECRET};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

const S3_BUCKET: &str = "careplane-files";

struct World {
    patient: Uuid,
    other_patient: Uuid,
    doctor: Uuid,
    other_doctor: Uuid,
    dispatcher: Uuid,
    consultation: Uuid,
    conversation: Uuid,
    message: Uuid,
}

/// Two patients, the first booked with a doctor (so that doctor is their care team and the
/// consultation's clinician), another doctor, a dispatcher, and a message of the patient in the
/// consultation's conversation.
async fn world(conn: &mut PgConnection) -> World {
    let patient = create_user(conn, "patient").await.unwrap();
    let other_patient = create_user(conn, "patient").await.unwrap();
    let doctor = create_user(conn, "doctor").await.unwrap();
    let other_doctor = create_user(conn, "doctor").await.unwrap();
    let dispatcher = create_user(conn, "dispatcher").await.unwrap();
    for (profile, name) in [(doctor, "Dr Ada Obi"), (other_doctor, "Dr Kofi Mensah")] {
        sqlx::query(
            "insert into public.practitioners (profile_id, kind, display_name, consultation_fee_minor, currency, time_zone)
             values ($1, 'doctor', $2, 1500000, 'NGN', 'Africa/Lagos')",
        )
        .bind(profile)
        .bind(name)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    let appointment: Uuid = sqlx::query_scalar(
        "insert into public.appointments (patient_id, practitioner_id, period, status, created_by)
         select $1, p.id, tstzrange(now() + interval '1 day', now() + interval '1 day 30 minutes'), 'booked', $1
           from public.practitioners p where p.profile_id = $2
         returning id",
    )
    .bind(patient)
    .bind(doctor)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    sqlx::query("select private.open_consultation(a) from public.appointments a where a.id = $1")
        .bind(appointment)
        .execute(&mut *conn)
        .await
        .unwrap();
    let (consultation, conversation): (Uuid, Uuid) = sqlx::query_as(
        "select c.id, v.id from public.consultations c join public.conversations v on v.consultation_id = c.id
          where c.appointment_id = $1",
    )
    .bind(appointment)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    let message: Uuid = sqlx::query_scalar(
        "insert into public.messages (conversation_id, sender_id, body) values ($1, $2, 'my scan is attached') returning id",
    )
    .bind(conversation)
    .bind(patient)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    World { patient, other_patient, doctor, other_doctor, dispatcher, consultation, conversation, message }
}

fn token(sub: Uuid, role: &str) -> String {
    jwt::sign_hs256(TEST_JWT_SECRET.as_bytes(), &jwt::user_claims("local", sub, role))
}

struct Api {
    http: reqwest::Client,
    companion: Companion,
}

impl Api {
    /// A companion on `db` storing files in `store`, with `extra` settings.
    async fn spawn(store: &LocalS3, db: &TestDb, extra: &[(&'static str, &str)]) -> Api {
        let mut env = store.companion_env(S3_BUCKET);
        env.push(("DATABASE_URL", db.url.clone()));
        env.push(("REDIS_URL", careplane_tests::redis_url()));
        env.push(("RATE_LIMIT_REDIS_PREFIX", careplane_tests::unique_prefix()));
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Api { http: reqwest::Client::new(), companion: Companion::spawn(&env_refs).await.unwrap() }
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.companion.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn upload_url(&self, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, "/v1/files/upload-url", token, Some(body)).await
    }

    async fn download_url(&self, token: &str, id: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, &format!("/v1/files/{id}/download-url"), token, None).await
    }

    async fn complete(&self, token: &str, id: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, &format!("/v1/files/{id}/complete"), token, None).await
    }

    /// Sends `body` to a presigned upload with the headers it names, replacing those given.
    async fn put(&self, upload: &Value, body: Vec<u8>, replace: &[(&str, &str)]) -> (StatusCode, String) {
        assert_eq!(upload["method"], "PUT");
        let mut request = self.http.put(upload["url"].as_str().unwrap());
        for (name, value) in upload["headers"].as_object().unwrap() {
            if name.eq_ignore_ascii_case("content-length") {
                continue; // reqwest sets it from the body
            }
            let value = replace.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map_or(value.as_str().unwrap(), |(_, v)| *v);
            request = request.header(name.as_str(), value);
        }
        let response = request.body(body).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }
}

fn pdf(size: usize) -> Vec<u8> {
    let mut bytes = b"%PDF-1.7\n".to_vec();
    bytes.resize(size, b'x');
    bytes
}

async fn access_log(conn: &mut PgConnection, actor: Uuid) -> Vec<(String, String)> {
    sqlx::query_as("select action, outcome from private.file_access_log where actor_id = $1 order by id")
        .bind(actor)
        .fetch_all(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn medical_files_through_presigned_urls_only_for_the_care_team() {
    let (moto, db) = tokio::join!(LocalS3::moto(), TestDb::migrated());
    let (moto, db) = (moto.unwrap(), db.unwrap());
    moto.create_bucket(S3_BUCKET).await.unwrap();
    let mut conn = db.connect().await.unwrap();
    let w = world(&mut conn).await;
    let api = Api::spawn(&moto, &db, &[]).await;
    let (patient, other_patient) = (token(w.patient, "patient"), token(w.other_patient, "patient"));
    let (doctor, other_doctor) = (token(w.doctor, "doctor"), token(w.other_doctor, "doctor"));
    let dispatcher = token(w.dispatcher, "dispatcher");

    // Upload through the presigned PUT, complete, download through a presigned GET -------------
    let file = pdf(2048);
    let (status, body) = api
        .upload_url(&patient, json!({"bucket": "medical-records", "attach_to": w.patient, "file_name": "lab result.pdf",
                                     "content_type": "application/pdf", "size": file.len(), "kind": "lab_result"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let attachment = body["data"]["attachment"].clone();
    let id = attachment["id"].as_str().unwrap().to_owned();
    assert_eq!(attachment["status"], "pending");
    assert_eq!(attachment["object_name"], format!("{}/{id}/lab result.pdf", w.patient));
    let upload = body["data"]["upload"].clone();
    assert!(upload["url"].as_str().unwrap().contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost"), "{upload}");
    assert!(upload["url"].as_str().unwrap().contains("X-Amz-Expires=300"), "{upload}");

    // Nothing stored yet: completing now is refused, and a download too.
    let (status, body) = api.complete(&patient, &id).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("upload_missing")), "{body}");
    let (status, body) = api.download_url(&patient, &id).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("upload_incomplete")), "{body}");

    let (status, text) = api.put(&upload, file.clone(), &[]).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // Someone else cannot complete the patient's upload.
    let (status, _) = api.complete(&other_patient, &id).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = api.complete(&patient, &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "ready");
    assert_eq!(body["data"]["sha256"], hex::encode(Sha256::digest(&file)));
    let (status, again) = api.complete(&patient, &id).await;
    assert_eq!((status, &again["data"]), (StatusCode::OK, &body["data"]), "completing twice answers the same");

    for (who, token) in [("the patient", &patient), ("their care team", &doctor)] {
        let (status, body) = api.download_url(token, &id).await;
        assert_eq!(status, StatusCode::OK, "{who}: {body}");
        let download = &body["data"]["download"];
        assert!(download["url"].as_str().unwrap().contains("X-Amz-Expires=300"), "five minutes: {download}");
        let response = api.http.get(download["url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{who}");
        assert_eq!(response.bytes().await.unwrap().as_ref(), file.as_slice(), "{who} downloads the uploaded bytes");
    }

    // Another patient, another clinician, a dispatcher: 403 and nothing signed ---------------------
    for (who, token) in [("another patient", &other_patient), ("another clinician", &other_doctor), ("a dispatcher", &dispatcher)] {
        let (status, body) = api.download_url(token, &id).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_permitted")), "{who}: {body}");
        assert!(!body.to_string().contains("X-Amz-Signature"), "{who}: nothing signed");
    }
    let (status, body) = api
        .upload_url(&other_patient, json!({"bucket": "medical-records", "attach_to": w.patient, "file_name": "fake.pdf",
                                           "content_type": "application/pdf", "size": 10}))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_permitted")), "{body}");
    assert!(!body.to_string().contains("X-Amz-Signature"), "nothing signed");
    // An attachment id that does not exist gets the same answer as one that is not yours.
    let (status, _) = api.download_url(&other_patient, &Uuid::new_v4().to_string()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let pending_of_others: i64 = sqlx::query_scalar("select count(*) from public.attachments where uploaded_by = $1")
        .bind(w.other_patient)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending_of_others, 0, "the refused upload left no attachment behind");

    // A wrong size or type is refused by the store ------------------------------------------------
    let (status, body) = api
        .upload_url(&patient, json!({"bucket": "medical-records", "attach_to": w.patient, "file_name": "scan.png",
                                     "content_type": "image/png", "size": 1000}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let second = body["data"]["attachment"]["id"].as_str().unwrap().to_owned();
    let upload = body["data"]["upload"].clone();
    let (status, text) = api.put(&upload, vec![7u8; 5000], &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a bigger body than signed is refused: {text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    let (status, text) = api.put(&upload, vec![7u8; 1000], &[("content-type", "text/html")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another content type than signed is refused: {text}");
    let (status, body) = api.complete(&patient, &second).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("upload_missing")), "{body}");

    // Completion checks the store itself: an object of another size (put there by hand, as a
    // store that enforced nothing would keep it) is refused and removed.
    let object_url = format!("{}/{S3_BUCKET}/medical-records/{}/{second}/scan.png", moto.endpoint, w.patient);
    let put = api.http.put(&object_url).header("content-type", "image/png").body(vec![1u8; 999]).send().await.unwrap();
    assert!(put.status().is_success());
    let (status, body) = api.complete(&patient, &second).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("upload_mismatch")), "{body}");
    assert_eq!(api.http.get(&object_url).send().await.unwrap().status(), StatusCode::NOT_FOUND, "the mismatched object was removed");

    // Limits of the bucket, before anything is recorded -------------------------------------------
    let too_big = json!({"bucket": "message-attachments", "attach_to": w.message, "file_name": "big.pdf",
                         "content_type": "application/pdf", "size": 10_485_761});
    let (status, body) = api.upload_url(&patient, too_big).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("file_too_large")), "{body}");
    let html = json!({"bucket": "medical-records", "attach_to": w.patient, "file_name": "x.html", "content_type": "text/html", "size": 10});
    let (status, body) = api.upload_url(&patient, html).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("content_type_not_allowed")), "{body}");
    let traversal = json!({"bucket": "medical-records", "attach_to": w.patient, "file_name": "../x.pdf", "content_type": "application/pdf", "size": 10});
    let (status, body) = api.upload_url(&patient, traversal).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_file_name")), "{body}");

    // Consultation files: written by the clinician, read by both participants, announced --------
    let consultation_file = json!({"bucket": "consultation-files", "attach_to": w.consultation, "file_name": "report.pdf",
                                   "content_type": "application/pdf", "size": 512, "kind": "report"});
    let (status, _) = api.upload_url(&patient, consultation_file.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a patient does not write the consultation's files");
    let (status, body) = api.upload_url(&doctor, consultation_file).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let report = body["data"]["attachment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(api.put(&body["data"]["upload"], pdf(512), &[]).await.0, StatusCode::OK);
    assert_eq!(api.complete(&doctor, &report).await.0, StatusCode::OK);
    assert_eq!(api.download_url(&patient, &report).await.0, StatusCode::OK, "the other participant reads it");
    assert_eq!(api.download_url(&other_doctor, &report).await.0, StatusCode::FORBIDDEN);
    let announced: i64 = sqlx::query_scalar(
        "select count(*) from private.realtime_events
          where topic = 'consultation:' || $1 and event = 'consultation:updated' and payload ->> 'attachment_id' = $2",
    )
    .bind(w.consultation.to_string())
    .bind(&report)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(announced, 1);

    // Message attachments: the sender attaches to their message; the conversation hears message:new --
    let scan = json!({"bucket": "message-attachments", "attach_to": w.message, "file_name": "scan.jpg",
                      "content_type": "image/jpeg", "size": 300, "kind": "imaging"});
    let (status, _) = api.upload_url(&doctor, scan.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only the sender attaches to a message");
    let (status, body) = api.upload_url(&patient, scan).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["data"]["attachment"]["object_name"].as_str().unwrap().split('/').next(), Some(w.conversation.to_string().as_str()));
    let image = body["data"]["attachment"]["id"].as_str().unwrap().to_owned();
    let mut jpeg = vec![0xFF, 0xD8, 0xFF];
    jpeg.resize(300, 0);
    assert_eq!(api.put(&body["data"]["upload"], jpeg, &[("content-type", "image/jpeg")]).await.0, StatusCode::OK);
    assert_eq!(api.complete(&patient, &image).await.0, StatusCode::OK);
    let topics: Vec<String> = sqlx::query_scalar(
        "select topic from private.realtime_events where event = 'message:new' and payload ->> 'attachment_id' = $1 order by topic",
    )
    .bind(&image)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(topics, vec![format!("conversation:{}", w.conversation)]);
    assert_eq!(api.download_url(&doctor, &image).await.0, StatusCode::OK, "the other member reads it");

    // Every access is in the log, granted or not --------------------------------------------------
    let other_log = access_log(&mut conn, w.other_patient).await;
    assert!(other_log.iter().all(|(_, outcome)| outcome == "denied"), "{other_log:?}");
    assert!(other_log.contains(&("download_url".into(), "denied".into())) && other_log.contains(&("upload_url".into(), "denied".into())));
    let patient_log = access_log(&mut conn, w.patient).await;
    for entry in [("upload_url", "granted"), ("complete", "rejected"), ("complete", "granted"), ("download_url", "granted")] {
        assert!(patient_log.contains(&(entry.0.into(), entry.1.into())), "{entry:?} in {patient_log:?}");
    }
}

#[tokio::test]
async fn expired_urls_are_refused_by_the_store() {
    let (store, db) = tokio::join!(LocalS3::s3rver(S3_BUCKET), TestDb::migrated());
    let (store, db) = (store.unwrap(), db.unwrap());
    let w = world(&mut db.connect().await.unwrap()).await;
    let ttl = [("FILES_UPLOAD_URL_TTL_SECONDS", "5"), ("FILES_DOWNLOAD_URL_TTL_SECONDS", "5")];
    let api = Api::spawn(&store, &db, &ttl).await;
    let patient = token(w.patient, "patient");
    let new_upload = || json!({"bucket": "medical-records", "attach_to": w.patient, "file_name": "lab.pdf",
                               "content_type": "application/pdf", "size": 100});

    // Within its lifetime each URL works.
    let (status, body) = api.upload_url(&patient, new_upload()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["data"]["attachment"]["id"].as_str().unwrap().to_owned();
    let (status, text) = api.put(&body["data"]["upload"], pdf(100), &[]).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, body) = api.complete(&patient, &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api.download_url(&patient, &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let download = body["data"]["download"]["url"].as_str().unwrap().to_owned();
    assert_eq!(api.http.get(&download).send().await.unwrap().status(), StatusCode::OK);
    let (status, body) = api.upload_url(&patient, new_upload()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let late_upload = body["data"]["upload"].clone();

    // Past it, the store refuses both.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let response = api.http.get(&download).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("Request has expired"), "{text}");
    let (status, text) = api.put(&late_upload, pdf(100), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("Request has expired"), "{text}");
}

#[tokio::test]
async fn without_a_store_the_file_endpoints_say_so() {
    let companion = Companion::spawn(&[("REDIS_URL", &careplane_tests::redis_url()), ("RATE_LIMIT_REDIS_PREFIX", &careplane_tests::unique_prefix())])
        .await
        .unwrap();
    let user = token(Uuid::new_v4(), "patient");
    let response = reqwest::Client::new()
        .post(companion.url("/v1/files/upload-url"))
        .bearer_auth(&user)
        .json(&json!({"bucket": "medical-records", "attach_to": Uuid::new_v4(), "file_name": "a.pdf", "content_type": "application/pdf", "size": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "files_not_configured");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("file storage not configured"));
}
