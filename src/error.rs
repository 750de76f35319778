//! The one error type of a request. Each variant knows its HTTP status and imaginary's message
//! (spec §13), so every failure reaches the client in imaginary's JSON shape:
//! `{"message":"<text>","status":<code>}`.

use crate::ops::OpError;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// 404 `Not found`: the index catch-all.
    NotFound,
    /// 401: `-key` is set and the request's key differs.
    InvalidApiKey,
    /// 405: a method other than GET/POST (HEAD is served on GET routes).
    MethodNotAllowed,
    /// 405: GET on an image endpoint while neither `-mount` nor `-enable-url-source` is set.
    GetMethodNotAllowed,
    /// 400: the request names no usable source (`file`, `url`, or a POST body).
    MissingImageSource,
    /// 400: the source was empty.
    EmptyBody,
    /// 400: `?file=` outside the mount, missing or unreadable.
    InvalidFilePath,
    /// 400: `?url=` does not parse as an http(s) URL.
    InvalidImageUrl,
    /// 501: the endpoint is listed in `-disable-endpoints`.
    NotImplemented,
    /// 400: `sign` is not unpadded URL-safe base64.
    InvalidUrlSignature,
    /// 403: `sign` does not match.
    UrlSignatureMismatch,
    /// 413 (FIX: imaginary reads bodies without limit): body or origin larger than allowed.
    TooLarge { limit: u64 },
    /// 503 with `Retry-After`: the image worker queue is full.
    Overloaded,
    /// An image error: params, formats, libvips (status from [`OpError`]).
    Op(OpError),
    /// An error with imaginary's free-form message and a given status (origin fetch failures,
    /// multipart parse errors, origins not allowed).
    Message { status: u16, message: String },
}

impl Error {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::Message {
            status: 400,
            message: message.into(),
        }
    }

    /// The HTTP status: the error's own code when within 400..=511, else 503 (spec §13.1).
    pub fn status(&self) -> u16 {
        let code = self.code();
        if (400..=511).contains(&code) {
            code
        } else {
            503
        }
    }

    /// The code written in the JSON body's `status` field (may differ from the HTTP status for
    /// remote statuses outside 400..=511, as in imaginary).
    pub fn code(&self) -> u16 {
        match self {
            Error::NotFound => 404,
            Error::InvalidApiKey => 401,
            Error::MethodNotAllowed | Error::GetMethodNotAllowed => 405,
            Error::NotImplemented => 501,
            Error::UrlSignatureMismatch => 403,
            Error::TooLarge { .. } => 413,
            Error::Overloaded => 503,
            Error::Op(OpError::UnsupportedMedia) => 406,
            Error::Op(OpError::ResolutionTooBig) => 422,
            Error::Op(_) => 400,
            Error::Message { status, .. } => *status,
            Error::MissingImageSource
            | Error::EmptyBody
            | Error::InvalidFilePath
            | Error::InvalidImageUrl
            | Error::InvalidUrlSignature => 400,
        }
    }

    pub fn message(&self) -> String {
        let text = match self {
            Error::NotFound => "Not found".to_string(),
            Error::InvalidApiKey => "Invalid or missing API key".to_string(),
            Error::MethodNotAllowed => "HTTP method not allowed. Try with a POST or GET method (-enable-url-source flag must be defined)".to_string(),
            Error::GetMethodNotAllowed => "GET method not allowed. Make sure remote URL source is enabled by using the flag: -enable-url-source".to_string(),
            Error::MissingImageSource => "Cannot process the image due to missing or invalid params".to_string(),
            Error::EmptyBody => "Empty or unreadable image".to_string(),
            Error::InvalidFilePath => "Invalid file path".to_string(),
            Error::InvalidImageUrl => "Invalid image URL".to_string(),
            Error::NotImplemented => "Not implemented endpoint".to_string(),
            Error::InvalidUrlSignature => "Invalid URL signature".to_string(),
            Error::UrlSignatureMismatch => "URL signature mismatch".to_string(),
            Error::TooLarge { limit } => format!("Request or image larger than the allowed {limit} bytes"),
            Error::Overloaded => "Server busy: too many images in progress, retry shortly".to_string(),
            Error::Op(e) => e.to_string(),
            Error::Message { message, .. } => message.clone(),
        };
        // imaginary removes newlines so the message stays one JSON line.
        text.replace(['\n', '\r'], "")
    }

    /// imaginary's JSON body: `{"message":"…","status":N}` with Go's HTML-safe escaping.
    pub fn json(&self) -> String {
        json_message(&self.message(), self.code())
    }
}

impl From<OpError> for Error {
    fn from(e: OpError) -> Self {
        Error::Op(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Error {}

/// `{"message":"…","status":N}`, escaped like Go's `encoding/json` (`<`, `>`, `&` as `\u003c`…).
pub fn json_message(message: &str, status: u16) -> String {
    let quoted = go_json_string(message);
    format!("{{\"message\":{quoted},\"status\":{status}}}")
}

/// A JSON string literal as Go's `encoding/json` writes it (HTML-safe).
pub fn go_json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string())
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_and_escaping_match_imaginary() {
        assert_eq!(
            Error::EmptyBody.json(),
            r#"{"message":"Empty or unreadable image","status":400}"#
        );
        assert_eq!(
            Error::bad_request("a<b>&\"c\"\nd").json(),
            r#"{"message":"a\u003cb\u003e\u0026\"c\"d","status":400}"#
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(Error::Op(OpError::UnsupportedMedia).status(), 406);
        assert_eq!(Error::Op(OpError::ResolutionTooBig).status(), 422);
        assert_eq!(Error::Op(OpError::Process("x".into())).status(), 400);
        assert_eq!(Error::InvalidApiKey.status(), 401);
        assert_eq!(Error::NotImplemented.status(), 501);
        // A remote 302 or 600 is reported as 503 while the body keeps the remote code.
        let remote = Error::Message {
            status: 302,
            message: "x".into(),
        };
        assert_eq!(remote.status(), 503);
        assert!(remote.json().ends_with("\"status\":302}"));
    }
}
