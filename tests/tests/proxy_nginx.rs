//! The reverse-proxy configuration the README recommends (`deploy/nginx/`), rendered by its own
//! `render.sh`, in front of a real companion, served by Debian's nginx with a certificate made
//! for the test: an API call over TLS, a websocket upgrade with a realtime join, a signed
//! Paystack webhook whose raw body survives the proxy, the client address the companion sees
//! (nginx's, whatever `X-Forwarded-For` a client sends), and `/metrics` kept private.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use careplane_tests::{free_port, jwt, workspace_root, Companion, TestDb, TEST_JWT_SECRET};
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const HOST: &str = "careplane.test";
const PAYSTACK_SECRET: &str = "sk_test_behind_the_proxy";

struct Nginx {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master, which stops its workers before it exits; SIGKILL would leave
        // the worker running, orphaned, holding the listening socket and any inherited file.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a command");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A self-signed certificate for `HOST`, the site rendered by `deploy/nginx/render.sh`, and a
/// minimal main configuration around it (pid, logs and temp paths in the test's directory).
fn start_nginx(upstream: &str) -> Nginx {
    let dir = std::env::temp_dir().join(format!("careplane-nginx-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    run(Command::new("openssl").args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .arg("-subj").arg(format!("/CN={HOST}"))
        .arg("-addext").arg(format!("subjectAltName=DNS:{HOST}"))
        // A server certificate, not a CA (webpki refuses a CA certificate as the end entity).
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout").arg(dir.join("key.pem"))
        .arg("-out").arg(dir.join("cert.pem")));
    let (https, http) = (free_port(), free_port());
    let rendered = Command::new(workspace_root().join("deploy/nginx/render.sh"))
        .env("CAREPLANE_SERVER_NAME", HOST)
        .env("CAREPLANE_HTTPS_PORT", https.to_string())
        .env("CAREPLANE_HTTP_PORT", http.to_string())
        .env("CAREPLANE_TLS_CERTIFICATE", dir.join("cert.pem"))
        .env("CAREPLANE_TLS_CERTIFICATE_KEY", dir.join("key.pem"))
        .env("CAREPLANE_COMPANION_UPSTREAM", upstream)
        .env("CAREPLANE_ACCESS_LOG", dir.join("access.log"))
        .output()
        .unwrap();
    assert!(rendered.status.success(), "render.sh: {}", String::from_utf8_lossy(&rendered.stderr));
    std::fs::write(dir.join("careplane.conf"), &rendered.stdout).unwrap();
    let d = dir.display();
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{ worker_connections 256; }}\n\
             http {{\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  \
             uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n  include {d}/careplane.conf;\n}}\n"
        ),
    )
    .unwrap();
    let nginx = if Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" };
    let child = Command::new(nginx)
        .arg("-p").arg(&dir)
        .arg("-c").arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx (Debian package nginx; make test installs it)");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", https)).is_ok() {
            return Nginx { child, port: https, dir };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nginx did not listen on {https}: {}", std::fs::read_to_string(dir.join("error.log")).unwrap_or_default());
}

fn certificate(nginx: &Nginx) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(nginx.dir.join("cert.pem")).unwrap()
}

fn client(nginx: &Nginx) -> reqwest::Client {
    let pem = std::fs::read(nginx.dir.join("cert.pem")).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .resolve(HOST, ([127, 0, 0, 1], nginx.port).into())
        .build()
        .unwrap()
}

#[tokio::test]
async fn nginx_in_front_passes_api_websockets_and_signed_webhooks() {
    let db = TestDb::migrated().await.unwrap();
    let companion = Companion::spawn(&[
        ("DATABASE_URL", &db.url),
        ("TRUST_X_FORWARDED_FOR", "true"),
        ("RATE_LIMIT_IP_PER_MINUTE", "1"),
        ("RATE_LIMIT_IP_BURST", "3"),
        ("RATE_LIMIT_REDIS_PREFIX", &format!("careplane:proxy-test:{}", Uuid::new_v4().simple())),
        ("PAYSTACK_SECRET_KEY", PAYSTACK_SECRET),
        ("PAYSTACK_ALLOWED_IPS", "127.0.0.1"),
        ("PAYMENT_WORKERS", "false"),
    ])
    .await
    .unwrap();
    let nginx = start_nginx(companion.base.trim_start_matches("http://"));
    let base = format!("https://{HOST}:{}", nginx.port);
    let http = client(&nginx);

    // An API call over TLS, with the proxy's headers.
    let ping = http.get(format!("{base}/v1/ping")).send().await.unwrap();
    assert_eq!(ping.status(), 200);
    assert!(ping.headers().contains_key("strict-transport-security"), "HSTS");
    assert!(ping.headers().contains_key("x-request-id"), "the companion's request id comes back through nginx");
    assert_eq!(ping.json::<Value>().await.unwrap()["data"]["pong"], true);

    // The client address is nginx's view of the peer: a client that names other addresses in
    // X-Forwarded-For is still one client to the per-IP limit (burst 3: this is the 4th call).
    for (n, claimed) in ["10.0.0.2", "10.0.0.3", "10.0.0.4"].into_iter().enumerate() {
        let r = http.get(format!("{base}/v1/ping")).header("x-forwarded-for", claimed).send().await.unwrap();
        let expected = if n < 2 { 200 } else { 429 };
        assert_eq!(r.status(), expected, "request {} claiming {claimed}", n + 2);
    }

    // A signed Paystack webhook: HMAC-SHA512 over the exact bytes, which nginx must not change;
    // the allow-list (127.0.0.1) sees nginx's address, not the one the sender claims.
    let body = br#"{"event":"charge.success","data":{"id":4099260516,"reference":"proxy-ref-1","amount":10000,"currency":"NGN","status":"success"}}"#;
    let signature = careplane_companion::payments::paystack::sign(PAYSTACK_SECRET.as_bytes(), body);
    let stored = http
        .post(format!("{base}/webhooks/paystack"))
        .header("content-type", "application/json")
        .header("x-paystack-signature", &signature)
        .header("x-forwarded-for", "52.31.139.75")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200, "{}", stored.text().await.unwrap());
    let mut conn = db.connect().await.unwrap();
    let rows: i64 = sqlx::query_scalar("select count(*) from private.webhook_inbox where provider = 'paystack'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1, "stored once");
    let forged = http
        .post(format!("{base}/webhooks/paystack"))
        .header("x-paystack-signature", signature)
        .body(body[..body.len() - 1].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401, "a changed body fails the signature");

    // Not public through the proxy.
    assert_eq!(http.get(format!("{base}/metrics")).send().await.unwrap().status(), 404);
    assert_eq!(http.get(format!("{base}/health/detailed")).send().await.unwrap().status(), 404);

    // A websocket upgrade to the realtime relay over TLS, and a join on the user's own topic.
    let sub = Uuid::new_v4();
    let token = jwt::sign_hs256(TEST_JWT_SECRET.as_bytes(), &jwt::user_claims("local", sub, "patient"));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate(&nginx)).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", nginx.port)).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .unwrap();
    let url = format!("wss://{HOST}:{}/realtime/v1/websocket?apikey={token}&vsn=1.0.0", nginx.port);
    let (mut ws, response) = tokio_tungstenite::client_async(url, stream).await.expect("websocket upgrade through nginx");
    assert_eq!(response.status(), 101);
    let topic = format!("realtime:user:{sub}");
    let join = json!({"topic": topic, "event": "phx_join", "payload": {"config": {"private": true}}, "ref": "1", "join_ref": "1"});
    ws.send(Message::Text(join.to_string().into())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = ws.next().await {
            if let Message::Text(text) = frame.unwrap() {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["event"] == "phx_reply" && v["ref"] == "1" {
                    return v;
                }
            }
        }
        panic!("the socket closed before the join was answered");
    })
    .await
    .expect("a join reply within 10 s");
    assert_eq!(reply["payload"]["status"], "ok", "{reply}");
    ws.close(None).await.unwrap();
    drop(companion);
}
