//! Honest: a push connector that sends one outbound request per chunk. The
//! chunk is the URL; parameters give the method (`method`), the headers
//! (`headers`, "name: value" each) and the body (`body`). The response comes
//! back as one event (status, body, body length); a failed request is the
//! connector's own `unavailable`/`invalid-input` error, passed through as is.
use tessera_sdk::http::{Header, Request, send};
use tessera_sdk::prelude::*;

struct HttpFetch;

impl Connector for HttpFetch {
    fn describe() -> Manifest {
        Manifest::new("http-fetch", "0.1.0", "sends one request per chunk")
    }

    fn modes() -> Modes {
        Modes::PUSH
    }

    fn parse(params: &Params, data: &[u8]) -> Result<ParseOutput, Error> {
        let url = String::from_utf8(data.to_vec()).map_err(|_| Error::input("not a URL"))?;
        let text = |name: &str| match params.get(name) {
            Some(Value::Text(text)) => Some(text.clone()),
            _ => None,
        };
        let headers = match params.get("headers") {
            Some(Value::TextList(lines)) => lines
                .iter()
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| Header {
                    name: name.trim().into(),
                    value: value.trim().into(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let request = Request {
            method: text("method").unwrap_or_else(|| "GET".into()),
            url,
            headers,
            body: text("body").unwrap_or_default().into_bytes(),
        };
        let response = send(&request)?;
        let property = |name: &str, value: Value| FieldValue {
            name: name.into(),
            value,
        };
        Ok(ParseOutput {
            records: vec![Record::Event(Event {
                source_id: "response".into(),
                event_type: "http.response".into(),
                at: host::now(),
                identities: Vec::new(),
                properties: vec![
                    property("status", Value::Integer(response.status.into())),
                    property(
                        "body",
                        Value::Text(String::from_utf8_lossy(&response.body).into_owned()),
                    ),
                    property("body_len", Value::Integer(response.body.len() as i64)),
                ],
            })],
            rejections: Vec::new(),
        })
    }
}

tessera_sdk::export_connector!(HttpFetch);
