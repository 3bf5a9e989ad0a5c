//! Services fetching the gateway's keys: over https from a server with a private CA, and again
//! on a schedule so that a key the gateway retired stops verifying without any restart.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderValue;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_web::token::{HttpJwks, JwksSource, ServiceAuth, TokenError, TokenRules};

const DOCUMENT: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

#[tokio::test]
async fn keys_come_over_https_from_a_server_whose_ca_is_given() {
    let identity = tessera_web::Identity::self_signed(&["localhost".to_owned()]).expect("a certificate");
    let ca = identity.certificate_pem.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let port = listener.local_addr().expect("address").port();
    let router = Router::new().route("/.well-known/jwks.json", get(|| async { DOCUMENT }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tessera_web::serve_tls(
        listener,
        router,
        identity.server_config().expect("config"),
        async {
            stopped.await.ok();
        },
    ));
    let url = format!("https://localhost:{port}/.well-known/jwks.json");

    let trusted = HttpJwks::with_ca(&url, ca.as_bytes()).expect("an https source");
    let document = trusted.fetch().await.expect("fetched over TLS");
    let keys = tessera_web::token::parse_jwks(&document).expect("a JWKS");
    assert!(keys.contains_key("k1"), "{keys:?}");

    // The same server without its CA is somebody we cannot vouch for.
    let untrusted = HttpJwks::new(&url).expect("an https source");
    assert!(untrusted.fetch().await.is_err(), "a certificate nobody trusts is refused");

    assert!(HttpJwks::new("ftp://localhost/jwks.json").is_err(), "only http and https");
    stop.send(()).ok();
    server.await.expect("server task").expect("server");
}

/// A JWKS whose keys the test changes, counting fetches.
struct Changing {
    document: Arc<Mutex<String>>,
    fetches: Arc<Mutex<u32>>,
}

impl JwksSource for Changing {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + '_>> {
        *self.fetches.lock().expect("lock") += 1;
        let document = self.document.lock().expect("lock").clone();
        Box::pin(async move { Ok(document.into_bytes()) })
    }
}

fn signed_token(kid: &str, audience: &str, key: &rcgen::KeyPair, now: u64) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let claims = serde_json::json!({"iss": "tessera", "aud": audience, "sub": "c-1", "role": "customer",
        "iat": now, "nbf": now, "exp": now + 60});
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&key.serialize_der()))
        .expect("signed")
}

fn jwks(kid: &str, key: &rcgen::KeyPair) -> String {
    let x = URL_SAFE_NO_PAD.encode(key.public_key_raw());
    serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": x}]}).to_string()
}

#[tokio::test]
async fn keys_are_fetched_again_on_a_schedule_and_a_retired_key_stops_verifying() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("an Ed25519 key");
    let document = Arc::new(Mutex::new(jwks("old", &key)));
    let fetches = Arc::new(Mutex::new(0));
    let source = Changing { document: document.clone(), fetches: fetches.clone() };
    let auth = Arc::new(ServiceAuth::new(Box::new(source), TokenRules::for_service("orders")));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
    let bearer =
        HeaderValue::from_str(&format!("Bearer {}", signed_token("old", "tessera:orders", &key, now)))
            .expect("header");
    let caller = auth.check(Some(&bearer)).await.expect("the key is the gateway's");
    assert_eq!((caller.sub.as_str(), caller.role.as_str()), ("c-1", "customer"));

    // The gateway retires the key; the next scheduled fetch forgets it.
    *document.lock().expect("lock") = jwks("new", &key);
    ServiceAuth::refetch_on_schedule(&auth, Duration::from_millis(50));
    let started = std::time::Instant::now();
    loop {
        match auth.check(Some(&bearer)).await {
            Err(TokenError::UnknownKey) => break,
            outcome => {
                assert!(started.elapsed() < Duration::from_secs(5), "still verifies: {outcome:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(*fetches.lock().expect("lock") >= 2, "fetched at first use and on schedule");

    // The new key verifies tokens minted for this service, and no others: a client's gateway
    // token and one minted for payments are refused.
    for (audience, accepted) in
        [("tessera:orders", true), ("tessera-api", false), ("tessera:payments", false)]
    {
        let token = signed_token("new", audience, &key, now);
        let bearer = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
        let outcome = auth.check(Some(&bearer)).await;
        assert_eq!(outcome.is_ok(), accepted, "{audience}: {outcome:?}");
    }
}
