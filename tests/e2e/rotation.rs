//! The gateway's signing key rotated on a running system with `tessera keys rotate`: new
//! tokens carry the new key, tokens signed before keep working until they expire, and the
//! JWKS the services read lists both. And `up` off loopback refuses the demo's passwords.

use serde_json::{Value, json};

use crate::http::request;
use crate::{Up, tessera};

fn kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().expect("a JWT");
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).expect("base64url"),
    )
    .expect("a JSON header");
    header["kid"].as_str().expect("a kid").to_owned()
}

fn sign_in(base: &str) -> String {
    let credentials = json!({"email": "admin@tessera.local", "password": "admin"});
    let (code, answer) = request(base, "POST", "/api/v1/auth/token", Some(&credentials), &[]);
    assert_eq!(code, 200, "{answer}");
    answer["access_token"].as_str().expect("token").to_owned()
}

#[test]
fn keys_rotate_on_a_running_system_without_signing_anybody_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let up = Up::start(&dir.path().join("data"));
    let before = sign_in(&up.base);
    let output =
        tessera().args(["keys", "rotate", "--url", &up.base, "--json"]).output().expect("run keys rotate");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rotated: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let after = sign_in(&up.base);
    assert_ne!(kid(&before), kid(&after), "a new key signs");
    assert_eq!(rotated["kid"], json!(kid(&after)));
    assert_eq!(rotated["previous"], json!([kid(&before)]), "{rotated}");
    let (_, jwks) = request(&up.base, "GET", "/.well-known/jwks.json", None, &[]);
    let kids: Vec<&str> =
        jwks["keys"].as_array().expect("keys").iter().filter_map(|k| k["kid"].as_str()).collect();
    assert!(kids.contains(&kid(&before).as_str()) && kids.contains(&kid(&after).as_str()), "{jwks}");
    for token in [&before, &after] {
        let bearer = format!("Bearer {token}");
        let (code, answer) =
            request(&up.base, "GET", "/api/v1/admin/services", None, &[("Authorization", &bearer)]);
        assert_eq!(code, 200, "a token signed by {} still works: {answer}", kid(token));
    }
    // A customer may not rotate.
    let (code, _) = request(&up.base, "POST", "/api/v1/admin/keys/rotate", None, &[]);
    assert_eq!(code, 401);
}

#[test]
fn up_off_loopback_refuses_the_demo_passwords() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = tessera()
        .args(["up", "--listen", "0.0.0.0:0", "--data"])
        .arg(dir.path().join("data"))
        .output()
        .expect("run tessera up");
    assert!(!output.status.success(), "it must not start");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("demo password") && said.contains("admin@tessera.local"), "{said}");
    assert!(!dir.path().join("data").join("orders.db").exists(), "nothing was opened");
}
