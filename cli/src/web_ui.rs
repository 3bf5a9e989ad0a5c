//! The browser pages served from the binary: the storefront at `/shop` and the operator console
//! at `/ui`. Their files are compiled in (no build step, no CDN, nothing fetched at run time)
//! and speak only the public API under `/api/v1` and `/metrics`, as any other client would. The
//! console's data map (`/ui/data-map.json`) is the services' declarations of the personal data
//! they keep, compiled into this binary like the pages.
//!
//! The pages get their own Content-Security-Policy, as Swagger UI does: scripts, styles and
//! requests from this origin only, no inline script, so the JavaScript lives in files.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tessera_web::{Path, Problem};

/// One compiled-in file: its name under the page's prefix, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Files both pages share (served under each prefix, so each page stays self-contained).
const COMMON: [Asset; 3] = [
    Asset { name: "api.js", content_type: JS, body: include_str!("../assets/common/api.js") },
    Asset { name: "base.css", content_type: CSS, body: include_str!("../assets/common/base.css") },
    Asset { name: "logo.svg", content_type: SVG, body: include_str!("../assets/common/logo.svg") },
];

const SHOP: [Asset; 3] = [
    Asset { name: "index.html", content_type: HTML, body: include_str!("../assets/shop/index.html") },
    Asset { name: "shop.js", content_type: JS, body: include_str!("../assets/shop/shop.js") },
    Asset { name: "shop.css", content_type: CSS, body: include_str!("../assets/shop/shop.css") },
];

const CONSOLE: [Asset; 5] = [
    Asset { name: "index.html", content_type: HTML, body: include_str!("../assets/ui/index.html") },
    Asset { name: "console.js", content_type: JS, body: include_str!("../assets/ui/console.js") },
    Asset { name: "charts.js", content_type: JS, body: include_str!("../assets/ui/charts.js") },
    Asset { name: "governance.js", content_type: JS, body: include_str!("../assets/ui/governance.js") },
    Asset { name: "console.css", content_type: CSS, body: include_str!("../assets/ui/console.css") },
];

/// Scripts, styles, images and API calls from this origin only; nothing inline, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `/shop`, `/ui` and the files under them; an unknown file is a 404 problem.
pub fn routes() -> Router {
    Router::new()
        .route("/shop", get(|| async { page(&SHOP, "index.html") }))
        .route("/shop/", get(|| async { page(&SHOP, "index.html") }))
        .route("/shop/{*file}", get(|Path(file): Path<String>| async move { page(&SHOP, &file) }))
        .route("/ui", get(|| async { page(&CONSOLE, "index.html") }))
        .route("/ui/", get(|| async { page(&CONSOLE, "index.html") }))
        .route(
            "/ui/data-map.json",
            get(|| async { secured(axum::Json(crate::governance::declarations()).into_response()) }),
        )
        .route("/ui/{*file}", get(|Path(file): Path<String>| async move { page(&CONSOLE, &file) }))
}

fn page(own: &[Asset], file: &str) -> Response {
    let Some(asset) = own.iter().chain(COMMON.iter()).find(|a| a.name == file) else {
        return secured(Problem::not_found(format!("no file {file} here")).into_response());
    };
    let mut response = asset.body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    secured(response)
}

fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The files change with the binary; a browser revalidates rather than keep an old copy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str) -> (StatusCode, String, String, String) {
        let response =
            routes().oneshot(Request::get(path).body(Body::empty()).expect("request")).await.expect("answer");
        let header =
            |name| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let (content_type, csp) = (header(header::CONTENT_TYPE), header(header::CONTENT_SECURITY_POLICY));
        let status = response.status();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, content_type, csp, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn pages_and_their_files_are_served_with_their_content_types_and_a_strict_csp() {
        for (path, content_type) in [
            ("/shop", HTML),
            ("/shop/", HTML),
            ("/shop/shop.js", JS),
            ("/shop/api.js", JS),
            ("/shop/base.css", CSS),
            ("/ui", HTML),
            ("/ui/console.js", JS),
            ("/ui/charts.js", JS),
            ("/ui/console.css", CSS),
            ("/ui/logo.svg", SVG),
        ] {
            let (status, actual, csp, _) = get(path).await;
            assert_eq!((status, actual.as_str()), (StatusCode::OK, content_type), "{path}");
            assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe"), "{path}: {csp}");
        }
    }

    #[tokio::test]
    async fn an_unknown_file_is_a_404_problem() {
        for path in ["/shop/nope.js", "/ui/../Cargo.toml", "/ui/shop.js", "/shop/a/b"] {
            let (status, content_type, _, body) = get(path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(content_type, tessera_web::PROBLEM_JSON, "{path}");
            assert!(body.contains("\"status\":404"), "{path}: {body}");
        }
    }

    #[test]
    fn the_pages_load_their_scripts_from_files_never_inline() {
        for asset in SHOP.iter().chain(CONSOLE.iter()).filter(|a| a.content_type == HTML) {
            for tag in asset.body.split("<script").skip(1) {
                assert!(
                    tag.trim_start().starts_with("type=\"module\" src=\"/"),
                    "{}: <script{tag}",
                    asset.name
                );
            }
            assert!(!asset.body.contains(" style=\""), "{}: inline style", asset.name);
            for handler in ["onclick=", "onsubmit=", "onload=", "onchange=", "oninput=", "onerror="] {
                assert!(!asset.body.contains(handler), "{}: inline {handler}", asset.name);
            }
        }
    }
}
