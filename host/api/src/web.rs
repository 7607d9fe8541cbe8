//! The web pages Tessera serves itself (the subject portal and the
//! console): files embedded in the binary under `/ui/`, the security
//! headers of every page, and the browser sessions — cookies — with their
//! defence against cross-site requests. Nothing here reads a file from disk
//! at run time or loads anything from another origin.
//!
//! `docs/portal.md` and `docs/console.md` explain the choices.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::console::is_console_session;
use crate::error::ApiError;
use crate::subject_tokens::is_subject_token;

/// One embedded file.
struct Asset {
    /// Its path under `/ui/`.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:literal) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../web/", $path)),
        }
    };
}

/// Every file served under `/ui/`. `shared/` is for every page (the
/// portal and the console); each page has a folder of its own.
const ASSETS: &[Asset] = &[
    asset!("shared/api.js", "text/javascript; charset=utf-8"),
    asset!("shared/dom.js", "text/javascript; charset=utf-8"),
    asset!("shared/i18n.js", "text/javascript; charset=utf-8"),
    asset!("shared/base.css", "text/css; charset=utf-8"),
    asset!("shared/icon.svg", "image/svg+xml"),
    asset!("portal/app.js", "text/javascript; charset=utf-8"),
    asset!("portal/strings.js", "text/javascript; charset=utf-8"),
    asset!("portal/portal.css", "text/css; charset=utf-8"),
    asset!("console/app.js", "text/javascript; charset=utf-8"),
    asset!("console/strings.js", "text/javascript; charset=utf-8"),
    asset!("console/operator.js", "text/javascript; charset=utf-8"),
    asset!("console/marketer.js", "text/javascript; charset=utf-8"),
    asset!("console/charts.js", "text/javascript; charset=utf-8"),
    asset!("console/console.css", "text/css; charset=utf-8"),
    asset!("console/marketer.css", "text/css; charset=utf-8"),
];

/// The portal's page; `{{lang}}` becomes the language of the request.
pub(crate) const PORTAL_PAGE: &str = include_str!("../web/portal/index.html");
/// The console's page, likewise.
pub(crate) const CONSOLE_PAGE: &str = include_str!("../web/console/index.html");

/// The Content-Security-Policy of every page and file under `/portal`,
/// `/console` and `/ui`: only this origin's own scripts, styles, images and requests; no
/// inline script or style, no plugins, never inside a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// The cookie that holds a person's portal session over plain HTTP
/// (development).
pub const SESSION_COOKIE: &str = "tessera_session";
/// The same over HTTPS: the `__Host-` prefix makes browsers refuse it
/// unless it is `Secure`, has `Path=/` and no `Domain`.
pub const SECURE_SESSION_COOKIE: &str = "__Host-tessera_session";
/// The cookie of a console session over plain HTTP (development). A name
/// of its own, so that one browser may hold a portal and a console session.
pub const CONSOLE_COOKIE: &str = "tessera_console";
/// The same over HTTPS.
pub const SECURE_CONSOLE_COOKIE: &str = "__Host-tessera_console";

/// The two names of one kind of session cookie.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CookieNames {
    /// Over plain HTTP.
    pub(crate) plain: &'static str,
    /// Over HTTPS (`__Host-`, `Secure`).
    pub(crate) secure: &'static str,
    /// Whether a token is of this kind of session (else the cookie holds none).
    holds: fn(&str) -> bool,
}

/// The subject portal's session cookie (a subject token).
pub(crate) const PORTAL: CookieNames = CookieNames {
    plain: SESSION_COOKIE,
    secure: SECURE_SESSION_COOKIE,
    holds: is_subject_token,
};
/// The console's session cookie (a console session, never an API token).
pub(crate) const CONSOLE: CookieNames = CookieNames {
    plain: CONSOLE_COOKIE,
    secure: SECURE_CONSOLE_COOKIE,
    holds: is_console_session,
};
/// The header that carries the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The security headers of every answer under `/portal`, `/console` and `/ui`.
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    bearer_challenge_only(headers);
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), payment=()",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Browsers answer a `Basic` challenge with a password dialog, even to a
/// page's own `fetch`: an answer to a page, or to a request made with a
/// session cookie, names only the `Bearer` scheme.
fn bearer_challenge_only(headers: &mut HeaderMap) {
    if headers.contains_key(header::WWW_AUTHENTICATE) {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tessera\""),
        );
    }
}

/// The layer over the whole application that keeps a 401 to a request made
/// with a session cookie (and no `Authorization`) from opening a
/// password dialog ([`bearer_challenge_only`]).
pub(crate) async fn no_password_dialog(request: Request, next: Next) -> Response {
    let cookie = !request.headers().contains_key(header::AUTHORIZATION)
        && (cookie_value(request.headers(), PORTAL).is_some()
            || cookie_value(request.headers(), CONSOLE).is_some());
    let mut response = next.run(request).await;
    if cookie {
        bearer_challenge_only(response.headers_mut());
    }
    response
}

fn etags() -> &'static BTreeMap<&'static str, String> {
    static ETAGS: OnceLock<BTreeMap<&'static str, String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                (a.path, format!("\"{}\"", hex::encode(&digest[..12])))
            })
            .collect()
    })
}

/// `GET /ui/{*file}`: an embedded file, revalidated by its ETag.
pub(crate) async fn asset(request: Request) -> Response {
    let path = request
        .uri()
        .path()
        .strip_prefix("/ui/")
        .unwrap_or_default();
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return ApiError::not_found("not_found", "there is no such file under /ui/")
            .into_response();
    };
    let etag = &etags()[asset.path];
    let fresh = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let etag = HeaderValue::from_str(etag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    // `no-cache`: kept, but checked at every use, so that a new binary's
    // files are never mixed with an old page.
    let cache = HeaderValue::from_static("no-cache");
    if fresh {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        asset.body,
    )
        .into_response()
}

/// The language of a page for `Accept-Language`: `zh-CN` if the browser
/// prefers any Chinese over English, else `en`.
pub(crate) fn page_language(headers: &HeaderMap) -> &'static str {
    let Some(value) = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    else {
        return "en";
    };
    let mut best: Option<(f32, &'static str)> = None;
    for item in value.split(',').take(32) {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let language = if tag == "zh" || tag.starts_with("zh-") {
            "zh-CN"
        } else if tag == "en" || tag.starts_with("en-") {
            "en"
        } else {
            continue;
        };
        // Equal weights: the earlier one wins, as the browser listed it.
        if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, language));
        }
    }
    best.map_or("en", |(_, language)| language)
}

/// The session token in the request's cookie of kind `names`, if any
/// (either name).
pub(crate) fn cookie_value(headers: &HeaderMap, names: CookieNames) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == names.secure || *name == names.plain)
        .map(|(_, value)| value.trim().to_owned())
}

/// The CSRF token of a session: a hash of its token, so that it is known
/// only to whoever holds the session (the page learns it when it signs
/// in, or from `GET /portal/api/session` or `GET /console/api/session`) and
/// needs no storage; it does not reveal the session token.
pub fn csrf_token(session: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"tessera session csrf v1\0");
    hasher.update(session.as_bytes());
    hex::encode(hasher.finalize())
}

fn cross_site(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "cross_site_request", message)
}

/// Refuses a request that does not come from a page of this server: its
/// `Sec-Fetch-Site`, when sent, must be `same-origin`, and its `Origin`
/// must be present and name the host the request was sent to.
pub(crate) fn check_same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return Err(cross_site(format!(
            "this request changes data with a session cookie but comes from another site \
             (Sec-Fetch-Site: {}); only this server's own pages may send it",
            String::from_utf8_lossy(site.as_bytes())
        )));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Err(cross_site(
            "this request changes data with a session cookie but has no Origin header; \
             only this server's own pages may send it"
                .into(),
        ));
    };
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    if host.is_empty() || authority.is_none_or(|a| !a.eq_ignore_ascii_case(host)) {
        return Err(cross_site(format!(
            "this request changes data with a session cookie but comes from {origin:?}, \
             not from this server ({host:?}); only this server's own pages may send it"
        )));
    }
    Ok(())
}

/// Refuses a request whose CSRF header does not match its session.
pub(crate) fn check_csrf(headers: &HeaderMap, session: &str) -> Result<(), ApiError> {
    let Some(sent) = headers.get(CSRF_HEADER) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_token_missing",
            "this request changes data with a session cookie but has no X-CSRF-Token \
             header; send the token the page's session gives (GET /portal/api/session or \
             GET /console/api/session)",
        ));
    };
    let expected = csrf_token(session);
    if !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_token_invalid",
            "the X-CSRF-Token header does not belong to this session; reload the page",
        ));
    }
    Ok(())
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The session token of a request that carries the session cookie of
/// kind `names`, checked for a request that changes data (same origin, CSRF
/// token). `None` if the request has no such cookie.
pub(crate) fn cookie_session(
    headers: &HeaderMap,
    method: &Method,
    names: CookieNames,
) -> Option<Result<String, ApiError>> {
    let session = cookie_value(headers, names)?;
    Some(check_session(headers, method, session, names))
}

fn check_session(
    headers: &HeaderMap,
    method: &Method,
    session: String,
    names: CookieNames,
) -> Result<String, ApiError> {
    if !(names.holds)(&session) {
        return Err(ApiError::unauthorized(
            "the session cookie holds no session; sign in again",
        ));
    }
    if !is_safe(method) {
        check_same_origin(headers)?;
        check_csrf(headers, &session)?;
    }
    Ok(session)
}

/// The credential of a `/v1` request to `path`: the `Authorization`
/// header if it has one; else a session cookie (checked as
/// [`cookie_session`] does): the portal's under `/v1/me`, which only a
/// person's session may call, and elsewhere the console's, or the portal's
/// if there is none (to be refused with the role's answer); else the error
/// of a request without credentials.
pub(crate) fn presented_credential(
    headers: &HeaderMap,
    method: &Method,
    path: &str,
) -> Result<String, ApiError> {
    if !headers.contains_key(header::AUTHORIZATION) {
        let me = path == "/v1/me" || path.starts_with("/v1/me/");
        let session = if me {
            cookie_session(headers, method, PORTAL)
        } else {
            cookie_session(headers, method, CONSOLE)
                .or_else(|| cookie_session(headers, method, PORTAL))
        };
        if let Some(session) = session {
            return session;
        }
    }
    crate::auth::presented_token(headers)
}

/// Whether the browser reached the server over HTTPS: TLS here, or a proxy
/// in front that says so (which can only make the cookie stricter).
pub(crate) fn over_https(tls_on: bool, headers: &HeaderMap) -> bool {
    tls_on
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The `Set-Cookie` value of a session of kind `names` for `max_age_s`
/// seconds.
pub(crate) fn session_cookie_header(
    names: CookieNames,
    token: &str,
    max_age_s: i64,
    secure: bool,
) -> Result<HeaderValue, ApiError> {
    let (name, secure) = if secure {
        (names.secure, "; Secure")
    } else {
        (names.plain, "")
    };
    HeaderValue::from_str(&format!(
        "{name}={token}; Max-Age={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        max_age_s.max(0)
    ))
    .map_err(|e| ApiError::internal(&e))
}

/// The `Set-Cookie` values that remove a session cookie of kind `names`
/// (both names).
pub(crate) fn clear_session_cookies(names: CookieNames) -> Vec<HeaderValue> {
    [
        format!(
            "{}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict; Secure",
            names.secure
        ),
        format!(
            "{}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict",
            names.plain
        ),
    ]
    .into_iter()
    .filter_map(|value| HeaderValue::from_str(&value).ok())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_page_language_follows_the_browser_preference() {
        for (accept, lang) in [
            ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
            ("en-GB,en;q=0.9,zh-CN;q=0.5", "en"),
            ("fr-FR,fr;q=0.9,zh-TW;q=0.4,en;q=0.3", "zh-CN"),
            ("de", "en"),
            ("zh;q=0, en", "en"),
            ("", "en"),
        ] {
            assert_eq!(
                page_language(&headers(&[("accept-language", accept)])),
                lang,
                "{accept}"
            );
        }
        assert_eq!(page_language(&HeaderMap::new()), "en");
    }

    #[test]
    fn same_origin_needs_a_matching_origin_and_no_foreign_fetch_site() {
        let host = ("host", "127.0.0.1:8080");
        assert!(check_same_origin(&headers(&[host, ("origin", "http://127.0.0.1:8080")])).is_ok());
        assert!(
            check_same_origin(&headers(&[
                host,
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "same-origin")
            ]))
            .is_ok()
        );
        for bad in [
            headers(&[host]),
            headers(&[host, ("origin", "http://evil.example")]),
            headers(&[host, ("origin", "http://127.0.0.1:8080.evil.example")]),
            headers(&[host, ("origin", "null")]),
            headers(&[
                host,
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "cross-site"),
            ]),
            headers(&[("origin", "http://127.0.0.1:8080")]),
        ] {
            let error = check_same_origin(&bad).unwrap_err();
            assert_eq!(error.code, "cross_site_request", "{bad:?}");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others_under_either_name() {
        let h = headers(&[("cookie", "a=1; tessera_session=tst_x; b=2")]);
        assert_eq!(cookie_value(&h, PORTAL).as_deref(), Some("tst_x"));
        assert_eq!(cookie_value(&h, CONSOLE), None);
        let h = headers(&[
            ("cookie", "a=1"),
            ("cookie", "__Host-tessera_session=tst_y"),
        ]);
        assert_eq!(cookie_value(&h, PORTAL).as_deref(), Some("tst_y"));
        assert_eq!(
            cookie_value(&headers(&[("cookie", "x_tessera_session=1")]), PORTAL),
            None
        );
        let both = headers(&[(
            "cookie",
            "tessera_session=tst_a; __Host-tessera_console=tcs_b",
        )]);
        assert_eq!(cookie_value(&both, PORTAL).as_deref(), Some("tst_a"));
        assert_eq!(cookie_value(&both, CONSOLE).as_deref(), Some("tcs_b"));
    }
}
