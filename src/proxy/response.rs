//! Step 8 of the lifecycle: what goes back to the client, and how it is written.
//!
//! Every generated response carries `Content-Length` (keep-alive clients hang without it) and
//! goes through [`send`], so HEAD, CORS and server headers are handled in one place.

use std::borrow::Cow;

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::error::Error;

/// A complete response, built before anything is written.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Fixed texts stay borrowed and owned ones are handed over: neither is copied again on
    /// the way out ([`send`]), where each value used to be allocated twice (its `String`, then
    /// the `HeaderValue`'s copy).
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    pub body: Bytes,
    /// The error this reply reports, if any (the placeholder replaces such replies).
    pub error: Option<Error>,
}

impl Reply {
    pub fn new(
        status: u16,
        content_type: impl Into<Cow<'static, str>>,
        body: impl Into<Bytes>,
    ) -> Self {
        // Room for every header a variant is answered with, so none of them reallocates.
        let mut headers = Vec::with_capacity(10);
        headers.push(("Content-Type", content_type.into()));
        Reply {
            status,
            headers,
            body: body.into(),
            error: None,
        }
    }

    pub fn json(status: u16, body: impl Into<Bytes>) -> Self {
        Reply::new(status, "application/json", body)
    }

    /// imaginary's JSON error reply (spec §13).
    pub fn error(e: &Error) -> Self {
        let mut reply = Reply::json(e.status(), e.json());
        if matches!(e, Error::Overloaded) {
            reply.headers.push(("Retry-After", "1".into()));
        }
        reply.error = Some(e.clone());
        reply
    }

    /// Not a response: the request is to be proxied upstream (named-origin passthrough).
    pub fn proxy() -> Self {
        Reply::new(0, "", Bytes::new())
    }

    pub fn is_proxy(&self) -> bool {
        self.status == 0
    }

    /// Go's mux 404 for unknown paths under a non-root prefix.
    pub fn plain_not_found() -> Self {
        Reply::new(404, "text/plain; charset=utf-8", "404 page not found\n")
    }

    pub fn redirect(location: String) -> Self {
        let mut reply = Reply::new(301, "text/html; charset=utf-8", "");
        reply.headers.push(("Location", location.into()));
        reply
    }

    pub fn header(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds `value` to the `Vary` header (merging, so CORS's `Origin` and negotiation's
    /// `Accept` both stay: FIX of imaginary replacing one with the other).
    pub fn vary(&mut self, value: &str) {
        match self.headers.iter_mut().find(|(n, _)| *n == "Vary") {
            Some((_, v)) if !v.split(", ").any(|x| x == value) => {
                let v = v.to_mut();
                v.push_str(", ");
                v.push_str(value);
            }
            Some(_) => {}
            None => self.headers.push(("Vary", value.to_string().into())),
        }
    }
}

/// Writes `reply`; for HEAD only the headers (with the body's length). Returns body bytes sent.
pub async fn send(session: &mut Session, reply: Reply, head: bool) -> pingora::Result<usize> {
    let mut header = ResponseHeader::build(reply.status, Some(reply.headers.len() + 2))?;
    for (name, value) in reply.headers {
        let value = match value {
            // `from_static` panics where `from_str` errs: checked first, by the same rule.
            Cow::Borrowed(text) if text.bytes().all(|b| b == b'\t' || (32..127).contains(&b)) => {
                Ok(HeaderValue::from_static(text))
            }
            Cow::Borrowed(text) => HeaderValue::from_str(text),
            Cow::Owned(text) => HeaderValue::try_from(text),
        };
        let value = value
            .map_err(|_| pingora::Error::explain(pingora::ErrorType::InvalidHTTPHeader, name))?;
        header.append_header(name, value)?;
    }
    // 304 and 204 have no body and no length of one (RFC 9110 §8.6).
    if !matches!(reply.status, 204 | 304) {
        header.insert_header("Content-Length", reply.body.len().to_string())?;
    }
    header.insert_header("Server", concat!("imgedge/", env!("CARGO_PKG_VERSION")))?;
    let len = reply.body.len();
    if head || reply.body.is_empty() {
        session
            .write_response_header(Box::new(header), true)
            .await?;
        return Ok(0);
    }
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(reply.body), true).await?;
    Ok(len)
}
