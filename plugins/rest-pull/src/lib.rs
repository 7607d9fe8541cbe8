//! `rest-pull`: a pull connector for paginated JSON APIs, through the host's
//! outbound HTTP (`http.send`, so only to the hosts the operator granted).
//!
//! Each `pull` is one `GET` of the collection URL with the cursor in a query
//! parameter (none on the first page). The page's items, found by a JSON
//! pointer, are objects in the shape of `tessera-json-records`; the next
//! cursor is found by another pointer:
//!
//! ```json
//! {"data": [{"id": "e-1", "event": "purchase", "at": "2026-11-01T10:00:00Z",
//!            "identities": {"email": "a@example.com"}, "properties": {"amount": 59.9}}],
//!  "next_cursor": "c2"}
//! ```
//!
//! An item that is not a record is rejected with its 1-based position in the
//! page as the row, the field at fault and the reason; the other items of
//! the page are still returned. A page that cannot be read at all (an HTTP
//! status other than 2xx, a body that is not JSON, no items array) is an
//! error that names the request, so the host keeps the page's cursor and
//! fetches it again on the next pull.
//!
//! Errors name the collection URL without its query string, and the cursor:
//! a query string may carry a key, and errors reach the host's logs.

use serde_json::Value as Json;
use tessera_sdk::http::{Header, Request, Response};
use tessera_sdk::prelude::*;

struct RestPull;

impl Connector for RestPull {
    fn describe() -> Manifest {
        Manifest::new(
            "rest-pull",
            "0.1.0",
            "Pulls a paginated JSON API page by page, from a cursor, through the host's outbound \
             HTTP; each item becomes an event, trait update or identity link.",
        )
        .param(
            ParamSpec::text(
                "url",
                "The collection URL (http or https), without the cursor or page size",
            )
            .required(),
        )
        .param(
            ParamSpec::text("cursor_param", "Query parameter that carries the cursor")
                .default(Value::Text("cursor".into())),
        )
        .param(
            ParamSpec::integer(
                "page_size",
                "Items to ask for per page, sent as `limit_param`; absent: the API's default",
            )
            .range(1.0, 10_000.0),
        )
        .param(
            ParamSpec::text("limit_param", "Query parameter that carries `page_size`")
                .default(Value::Text("limit".into())),
        )
        .param(
            ParamSpec::text(
                "items_pointer",
                "JSON pointer (RFC 6901) to the array of items in a page; empty: the page is \
                 the array",
            )
            .default(Value::Text("/data".into())),
        )
        .param(
            ParamSpec::text(
                "next_pointer",
                "JSON pointer to the next cursor (a string or number); null, absent or empty \
                 ends the pull",
            )
            .default(Value::Text("/next_cursor".into())),
        )
        .param(
            ParamSpec::text("id_prefix", "Prepended to every record's source id")
                .default(Value::Text(String::new())),
        )
        .param(ParamSpec::text(
            "auth_header",
            "Value of the Authorization header (e.g. `Bearer …`); the host stores it with the \
             import's parameters",
        ))
    }

    fn modes() -> Modes {
        Modes::PULL
    }

    fn validate(params: &Params) -> Result<(), Error> {
        Options::from(params).map(|_| ())
    }

    fn pull(params: &Params, cursor: Option<&str>) -> Result<Page, Error> {
        let options = Options::from(params)?;
        let request = options.request(cursor);
        let target = options.target(cursor);
        let response = tessera_sdk::http::send(&request).map_err(|error| match error {
            Error::InvalidInput(m) => Error::InvalidInput(format!("{target}: {m}")),
            Error::InvalidConfig(m) => Error::InvalidConfig(format!("{target}: {m}")),
            Error::Unavailable(m) => Error::Unavailable(format!("{target}: {m}")),
            Error::Internal(m) => Error::Internal(format!("{target}: {m}")),
        })?;
        check_status(&response, &target, cursor.is_some())?;
        decode_page(&response.body, content_type(&response), &options, &target)
    }
}

/// The parameters, checked.
#[derive(Debug)]
struct Options<'a> {
    url: &'a str,
    cursor_param: &'a str,
    /// `limit_param` and the page size, when one is asked for.
    limit: Option<(&'a str, i64)>,
    items_pointer: &'a str,
    next_pointer: &'a str,
    id_prefix: &'a str,
    auth_header: Option<&'a str>,
}

impl<'a> Options<'a> {
    fn from(params: &'a Params) -> Result<Self, Error> {
        let text = |name: &str, default: &'static str| -> Result<&'a str, Error> {
            match params.get(name) {
                None => Ok(default),
                Some(_) => params.text(name),
            }
        };
        let url = params.text("url")?;
        check_url(url)?;
        let cursor_param = text("cursor_param", "cursor")?;
        let limit_param = text("limit_param", "limit")?;
        let limit = match params.get("page_size") {
            None => None,
            Some(_) => {
                let size = params.integer("page_size")?;
                if size < 1 {
                    return Err(Error::config("parameter `page_size` must be at least 1"));
                }
                Some((limit_param, size))
            }
        };
        for (param, name) in std::iter::once(("cursor_param", cursor_param))
            .chain(limit.map(|(name, _)| ("limit_param", name)))
        {
            if name.is_empty() {
                return Err(Error::config(format!("parameter `{param}` is empty")));
            }
            if query_names(url).any(|n| n == name || n == encode(name)) {
                return Err(Error::config(format!(
                    "parameter `url` already has the query parameter `{name}`, which the \
                     connector sets itself (`{param}`); remove it from the URL"
                )));
            }
        }
        if limit.is_some_and(|(name, _)| name == cursor_param) {
            return Err(Error::config(
                "parameters `cursor_param` and `limit_param` name the same query parameter",
            ));
        }
        let items_pointer = text("items_pointer", "/data")?;
        check_pointer("items_pointer", items_pointer)?;
        let next_pointer = text("next_pointer", "/next_cursor")?;
        check_pointer("next_pointer", next_pointer)?;
        let auth_header = match params.get("auth_header") {
            None => None,
            Some(_) => {
                let value = params.text("auth_header")?;
                if value.trim().is_empty() || value.chars().any(char::is_control) {
                    return Err(Error::config(
                        "parameter `auth_header` must be a header value: not empty, on one line",
                    ));
                }
                Some(value)
            }
        };
        Ok(Options {
            url,
            cursor_param,
            limit,
            items_pointer,
            next_pointer,
            id_prefix: text("id_prefix", "")?,
            auth_header,
        })
    }

    /// The URL of the page at `cursor` (none: the first page).
    fn page_url(&self, cursor: Option<&str>) -> String {
        let mut url = self.url.to_owned();
        let mut add = |name: &str, value: &str| {
            if !url.contains('?') {
                url.push('?');
            } else if !url.ends_with(['?', '&']) {
                url.push('&');
            }
            url.push_str(&encode(name));
            url.push('=');
            url.push_str(&encode(value));
        };
        if let Some((name, size)) = self.limit {
            add(name, &size.to_string());
        }
        if let Some(cursor) = cursor {
            add(self.cursor_param, cursor);
        }
        url
    }

    fn request(&self, cursor: Option<&str>) -> Request {
        let mut headers = vec![Header {
            name: "accept".into(),
            value: "application/json".into(),
        }];
        if let Some(value) = self.auth_header {
            headers.push(Header {
                name: "authorization".into(),
                value: value.into(),
            });
        }
        Request {
            method: "GET".into(),
            url: self.page_url(cursor),
            headers,
            body: Vec::new(),
        }
    }

    /// The request as errors name it: the collection URL without its query
    /// string, and the cursor.
    fn target(&self, cursor: Option<&str>) -> String {
        let base = self.url.split('?').next().unwrap_or(self.url);
        match cursor {
            None => format!("GET {base} (first page)"),
            Some(cursor) => format!("GET {base} (cursor `{}`)", shorten(cursor, 120)),
        }
    }
}

fn check_url(url: &str) -> Result<(), Error> {
    let bad = |why: &str| Err(Error::config(format!("parameter `url`: {why}")));
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return bad("must be an http:// or https:// URL");
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.is_empty() {
        return bad("has no host");
    }
    if authority.contains('@') {
        return bad("must not carry user info (`user@`); send credentials with `auth_header`");
    }
    if url.contains('#') {
        return bad("must not have a fragment (`#…`)");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces or control characters (percent-encode them)");
    }
    Ok(())
}

/// The names of the URL's query parameters, as written.
fn query_names(url: &str) -> impl Iterator<Item = &str> {
    url.split_once('?')
        .map_or("", |(_, query)| query)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split('=').next().unwrap_or(pair))
}

fn check_pointer(param: &str, pointer: &str) -> Result<(), Error> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(Error::config(format!(
            "parameter `{param}` must be a JSON pointer: empty, or starting with `/` (e.g. \
             `/data`), not `{pointer}`"
        )));
    }
    let mut escapes = pointer.split('~').skip(1);
    if escapes.any(|after| !after.starts_with(['0', '1'])) {
        return Err(Error::config(format!(
            "parameter `{param}`: in a JSON pointer `~` is written `~0` and `/` inside a name \
             `~1`; `{pointer}` has another `~`"
        )));
    }
    Ok(())
}

/// Percent-encodes a query component: every byte but the unreserved
/// characters of RFC 3986 (`A-Z a-z 0-9 - . _ ~`).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn content_type(response: &Response) -> Option<&str> {
    response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-type"))
        .map(|h| h.value.as_str())
}

/// Any status but 2xx fails the page: retryable statuses as `unavailable`,
/// the others as the configuration or request being wrong.
fn check_status(response: &Response, target: &str, had_cursor: bool) -> Result<(), Error> {
    let status = response.status;
    if (200..300).contains(&status) {
        return Ok(());
    }
    let message = format!("{target} answered HTTP {status}");
    Err(match status {
        408 | 429 | 500..=599 => Error::unavailable(format!("{message}; retrying later may help")),
        401 | 403 => Error::config(format!(
            "{message}: the API refused the credentials (parameter `auth_header`)"
        )),
        400 | 404 | 410 | 422 if had_cursor => Error::input(format!(
            "{message}: if the cursor expired, reset the pull's cursor to start over"
        )),
        _ => Error::input(message),
    })
}

/// The records, rejections and next cursor of one page's body.
fn decode_page(
    body: &[u8],
    content_type: Option<&str>,
    options: &Options<'_>,
    target: &str,
) -> Result<Page, Error> {
    let page: Json = serde_json::from_slice(body).map_err(|e| {
        let content_type = content_type.map_or(String::new(), |t| format!(" ({t})"));
        Error::input(format!(
            "{target}: the response{content_type} is not JSON: {e}"
        ))
    })?;
    let items = match page.pointer(options.items_pointer) {
        Some(Json::Array(items)) => items,
        Some(other) => {
            return Err(Error::input(format!(
                "{target}: the response's items (`{}`) are {}, not an array",
                options.items_pointer,
                kind(other)
            )));
        }
        None => {
            return Err(Error::input(format!(
                "{target}: the response has no items array at `{}` (parameter \
                 `items_pointer`)",
                options.items_pointer
            )));
        }
    };
    let next_cursor = next_cursor(&page, options.next_pointer)
        .map_err(|why| Error::input(format!("{target}: {why}")))?;
    let mut records = Vec::with_capacity(items.len());
    let mut rejections = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let row = u32::try_from(index + 1).unwrap_or(u32::MAX);
        match tessera_json_records::record(item, options.id_prefix) {
            Ok(record) => records.push(record),
            Err(invalid) => {
                let id = match item.get("id") {
                    Some(Json::String(s)) => format!(" (id `{}`)", shorten(s, 80)),
                    Some(Json::Number(n)) => format!(" (id `{n}`)"),
                    _ => String::new(),
                };
                rejections.push(Rejection::new(
                    row,
                    invalid.field,
                    format!("item {row}{id}: {}", invalid.reason),
                ));
            }
        }
    }
    Ok(Page {
        records,
        rejections,
        next_cursor,
    })
}

/// The cursor at `pointer`: a non-empty string or a number; null, absent or
/// empty when the source is exhausted.
fn next_cursor(page: &Json, pointer: &str) -> Result<Option<String>, String> {
    match page.pointer(pointer) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if s.is_empty() => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(Json::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!(
            "the next cursor (`{pointer}`, parameter `next_pointer`) is {}; a cursor is a \
             string or a number",
            kind(other)
        )),
    }
}

fn kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

tessera_sdk::export_connector!(RestPull);

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, Value)]) -> Params {
        Params::new(
            pairs
                .iter()
                .map(|(name, value)| FieldValue {
                    name: (*name).into(),
                    value: value.clone(),
                })
                .collect(),
        )
    }

    fn text(value: &str) -> Value {
        Value::Text(value.into())
    }

    fn config_error(pairs: &[(&str, Value)]) -> String {
        match Options::from(&params(pairs)) {
            Err(Error::InvalidConfig(message)) => message,
            Err(other) => panic!("expected invalid-config, got {other:?}"),
            Ok(options) => panic!("accepted: {options:?}"),
        }
    }

    const EVENTS: &str = "https://api.shop.test/v1/events";

    #[test]
    fn the_first_page_has_no_cursor_and_later_ones_carry_it_percent_encoded() {
        let p = params(&[("url", text(EVENTS))]);
        let options = Options::from(&p).unwrap();
        assert_eq!(options.page_url(None), EVENTS);
        assert_eq!(
            options.page_url(Some("c2")),
            "https://api.shop.test/v1/events?cursor=c2"
        );
        assert_eq!(
            options.page_url(Some("a b&c=d/é+%~._-")),
            "https://api.shop.test/v1/events?cursor=a%20b%26c%3Dd%2F%C3%A9%2B%25~._-"
        );
        assert_eq!(
            options.page_url(Some("eyJpZCI6NDJ9==")),
            "https://api.shop.test/v1/events?cursor=eyJpZCI6NDJ9%3D%3D"
        );
    }

    #[test]
    fn the_page_size_and_cursor_join_an_existing_query() {
        let p = params(&[
            ("url", text("https://api.shop.test/v1/events?status=paid")),
            ("cursor_param", text("page token")),
            ("page_size", Value::Integer(100)),
            ("limit_param", text("per_page")),
        ]);
        let options = Options::from(&p).unwrap();
        assert_eq!(
            options.page_url(None),
            "https://api.shop.test/v1/events?status=paid&per_page=100"
        );
        assert_eq!(
            options.page_url(Some("7")),
            "https://api.shop.test/v1/events?status=paid&per_page=100&page%20token=7"
        );
        let p = params(&[("url", text("http://api.shop.test/events?"))]);
        assert_eq!(
            Options::from(&p).unwrap().page_url(Some("x")),
            "http://api.shop.test/events?cursor=x"
        );
    }

    #[test]
    fn requests_are_gets_with_the_authorization_header_when_one_is_given() {
        let p = params(&[
            ("url", text(EVENTS)),
            ("auth_header", text("Bearer s3cr3t")),
        ]);
        let request = Options::from(&p).unwrap().request(Some("c2"));
        assert_eq!(request.method, "GET");
        assert!(request.body.is_empty());
        let auth = request.headers.iter().find(|h| h.name == "authorization");
        assert_eq!(auth.map(|h| h.value.as_str()), Some("Bearer s3cr3t"));
        let p = params(&[("url", text(EVENTS))]);
        let request = Options::from(&p).unwrap().request(None);
        assert!(request.headers.iter().all(|h| h.name != "authorization"));
    }

    #[test]
    fn bad_parameters_are_refused_naming_the_parameter() {
        for (pairs, expected) in [
            (
                vec![("url", text("ftp://api.shop.test/x"))],
                "http:// or https://",
            ),
            (vec![("url", text("https:///x"))], "no host"),
            (
                vec![("url", text("https://api.shop.test/x#frag"))],
                "fragment",
            ),
            (
                vec![("url", text("https://me:pw@api.shop.test/x"))],
                "user info",
            ),
            (vec![("url", text("https://api.shop.test/a b"))], "spaces"),
            (
                vec![("url", text("https://api.shop.test/x?cursor=1"))],
                "already has the query parameter `cursor`",
            ),
            (
                vec![
                    ("url", text("https://api.shop.test/x?limit=5")),
                    ("page_size", Value::Integer(10)),
                ],
                "already has the query parameter `limit`",
            ),
            (
                vec![
                    ("url", text(EVENTS)),
                    ("page_size", Value::Integer(10)),
                    ("limit_param", text("cursor")),
                ],
                "name the same query parameter",
            ),
            (
                vec![("url", text(EVENTS)), ("cursor_param", text(""))],
                "`cursor_param` is empty",
            ),
            (
                vec![("url", text(EVENTS)), ("items_pointer", text("data"))],
                "`items_pointer`",
            ),
            (
                vec![("url", text(EVENTS)), ("next_pointer", text("/a~2"))],
                "`next_pointer`",
            ),
            (
                vec![
                    ("url", text(EVENTS)),
                    ("auth_header", text("Bearer x\r\nX-Evil: 1")),
                ],
                "`auth_header`",
            ),
            (vec![], "`url` is required"),
        ] {
            let message = config_error(&pairs);
            assert!(message.contains(expected), "{pairs:?}: {message}");
        }
    }

    fn decode(body: &str, pairs: &[(&str, Value)]) -> Result<Page, Error> {
        let mut all = vec![("url", text(EVENTS))];
        all.extend_from_slice(pairs);
        let p = params(&all);
        let options = Options::from(&p).unwrap();
        decode_page(
            body.as_bytes(),
            Some("application/json"),
            &options,
            "GET page",
        )
    }

    #[test]
    fn a_page_gives_its_records_its_rejections_by_position_and_the_next_cursor() {
        let body = r#"{"data": [
            {"id": "e-1", "event": "purchase", "at": "2026-11-01T10:00:00Z",
             "identities": {"email": "a@example.com"}, "properties": {"amount": 59.9}},
            {"id": "e-2", "event": "purchase", "at": "yesterday",
             "identities": {"email": "b@example.com"}},
            {"id": 3, "type": "identify", "identities": {"member_id": "M-1"},
             "traits": {"tier": "gold"}},
            "not an object"
        ], "next_cursor": "c2"}"#;
        let page = decode(body, &[("id_prefix", text("shop:"))]).unwrap();
        assert_eq!(page.records.len(), 2);
        assert!(matches!(&page.records[0], Record::Event(e) if e.source_id == "shop:e-1"));
        assert!(matches!(&page.records[1], Record::TraitUpdate(t) if t.source_id == "shop:3"));
        assert_eq!(page.next_cursor.as_deref(), Some("c2"));
        let rejected: Vec<_> = page
            .rejections
            .iter()
            .map(|r| (r.row, r.field.clone()))
            .collect();
        assert_eq!(rejected, vec![(2, Some("at".into())), (4, None)]);
        assert!(
            page.rejections[0]
                .reason
                .starts_with("item 2 (id `e-2`): `at` is not an RFC 3339 time"),
            "{}",
            page.rejections[0].reason
        );
        assert!(page.rejections[1].reason.contains("expected a JSON object"));
    }

    #[test]
    fn the_next_cursor_ends_the_pull_when_null_absent_or_empty_and_may_be_a_number() {
        let cursor = |body: &str| decode(body, &[]).unwrap().next_cursor;
        assert_eq!(cursor(r#"{"data": [], "next_cursor": null}"#), None);
        assert_eq!(cursor(r#"{"data": []}"#), None);
        assert_eq!(cursor(r#"{"data": [], "next_cursor": ""}"#), None);
        assert_eq!(
            cursor(r#"{"data": [], "next_cursor": 1200}"#).as_deref(),
            Some("1200")
        );
        let nested = decode(
            r#"{"items": [], "meta": {"paging": {"after": "QVFIU"}}}"#,
            &[
                ("items_pointer", text("/items")),
                ("next_pointer", text("/meta/paging/after")),
            ],
        )
        .unwrap();
        assert_eq!(nested.next_cursor.as_deref(), Some("QVFIU"));
        match decode(r#"{"data": [], "next_cursor": {"id": 1}}"#, &[]) {
            Err(Error::InvalidInput(m)) => assert!(m.contains("is an object"), "{m}"),
            other => panic!("expected invalid-input, got {other:?}"),
        }
    }

    #[test]
    fn a_bare_array_is_a_page_without_a_next_cursor() {
        let page = decode(
            r#"[{"id": "x", "event": "v", "at": 1, "identities": {"device_id": "d"}}]"#,
            &[("items_pointer", text(""))],
        )
        .unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.next_cursor, None);
    }

    #[test]
    fn a_body_that_is_not_json_or_has_no_items_array_is_an_error_naming_it() {
        for (body, expected) in [
            (
                "<html>502 Bad Gateway</html>",
                "GET page: the response (application/json) is not JSON",
            ),
            (
                r#"{"results": []}"#,
                "no items array at `/data` (parameter `items_pointer`)",
            ),
            (
                r#"{"data": {"id": 1}}"#,
                "items (`/data`) are an object, not an array",
            ),
        ] {
            match decode(body, &[]) {
                Err(Error::InvalidInput(m)) => assert!(m.contains(expected), "{body}: {m}"),
                other => panic!("{body}: expected invalid-input, got {other:?}"),
            }
        }
    }

    #[test]
    fn statuses_other_than_2xx_fail_naming_the_status_and_the_url_without_its_query() {
        let p = params(&[("url", text("https://api.shop.test/v1/events?key=k1"))]);
        let options = Options::from(&p).unwrap();
        let target = options.target(Some("c3"));
        assert_eq!(target, "GET https://api.shop.test/v1/events (cursor `c3`)");
        let response = |status| Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        };
        assert!(check_status(&response(200), &target, true).is_ok());
        assert!(check_status(&response(204), &target, true).is_ok());
        match check_status(&response(500), &target, true) {
            Err(Error::Unavailable(m)) => assert_eq!(
                m,
                "GET https://api.shop.test/v1/events (cursor `c3`) answered HTTP 500; \
                 retrying later may help"
            ),
            other => panic!("expected unavailable, got {other:?}"),
        }
        assert!(matches!(
            check_status(&response(401), &target, true),
            Err(Error::InvalidConfig(m)) if m.contains("HTTP 401") && m.contains("auth_header")
        ));
        assert!(matches!(
            check_status(&response(400), &target, true),
            Err(Error::InvalidInput(m)) if m.contains("reset the pull's cursor")
        ));
        assert!(matches!(
            check_status(&response(404), &options.target(None), false),
            Err(Error::InvalidInput(m)) if m.ends_with("(first page) answered HTTP 404")
        ));
    }
}
