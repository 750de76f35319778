//! Where the image comes from (spec §4): the POST body (raw or multipart field `file`), a file
//! under `-mount` (`?file=`), or an origin (`?url=`). Each source exists only when its own flag
//! enables it (FIX of spec §14 item 1: imaginary serves `?url=` with only `-mount` set, and
//! reads any local file with only `-enable-url-source`).

use std::path::Path;

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use url::Url;

use super::first;
use super::origin::OriginClient;
use crate::config::Config;
use crate::error::Error;
use crate::policy::mount;

#[derive(Debug, PartialEq)]
pub enum Source {
    Body,
    File(mount::MountedFile),
    Url(Url),
}

/// Picks the source: POST → body; GET → `file` (with `-mount`), then `url` (with
/// `-enable-url-source`): a fixed order where imaginary's was random (FIX).
pub fn select(cfg: &Config, post: bool, pairs: &[(String, String)]) -> Result<Source, Error> {
    if post {
        return Ok(Source::Body);
    }
    if let (Some(root), Some(file)) = (&cfg.mount, first(pairs, "file")) {
        if let Some(resolved) = mount::resolve(root, file) {
            return resolved.map(Source::File);
        }
    }
    if cfg.enable_url_source {
        if let Some(url) = first(pairs, "url").filter(|u| !u.is_empty()) {
            return OriginClient::parse_url(url).map(Source::Url);
        }
    }
    Err(Error::MissingImageSource)
}

/// Reads the request body, at most `limit` bytes; a `multipart/…` body yields its `file` field.
pub async fn read_body(session: &mut Session, limit: u64) -> Result<Bytes, Error> {
    // A declared length over the limit is refused before a byte of the body is read; a body
    // that grows past it (chunked, or lying) is cut off below.
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Error::TooLarge { limit });
    }
    let mut body = BytesMut::new();
    loop {
        let chunk = session
            .read_request_body()
            .await
            .map_err(|e| Error::bad_request(format!("error reading request body: {e}")))?;
        let Some(chunk) = chunk else { break };
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(Error::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    let content_type = session
        .req_header()
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // Case-sensitive, as imaginary checks it.
    if content_type.starts_with("multipart/") {
        return multipart_file(content_type, body).await;
    }
    Ok(body)
}

/// The first part named `file` of a multipart/form-data body.
async fn multipart_file(content_type: &str, body: Bytes) -> Result<Bytes, Error> {
    if !content_type.starts_with("multipart/form-data") {
        return Err(Error::bad_request(
            "request Content-Type isn't multipart/form-data",
        ));
    }
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| Error::bad_request("no multipart boundary param in Content-Type"))?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| Error::bad_request(e.to_string()))?
    {
        if field.name() == Some("file") {
            return field
                .bytes()
                .await
                .map_err(|e| Error::bad_request(e.to_string()));
        }
    }
    Err(Error::bad_request("http: no such file"))
}

/// A mounted file's identity for the cache: its path and version (size and mtime, from the
/// stat `mount::resolve` made), so an edited file is a new source.
pub fn file_identity(file: &mount::MountedFile) -> String {
    let mtime = file
        .meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("file:{}\n{}\n{mtime}", file.path.display(), file.meta.len())
}

/// Reads a resolved mount file, refusing files over `limit`: the open (contained again:
/// `mount::open`), the size check and a capped read. Blocking: the producer calls it on the
/// worker that will decode the bytes.
pub fn read_file(mount: &Path, path: &Path, limit: u64) -> Result<Bytes, Error> {
    use std::io::Read;
    let file = mount::open(mount, path)?;
    let len = file.metadata().map_err(|_| Error::InvalidFilePath)?.len();
    if len > limit {
        return Err(Error::TooLarge { limit });
    }
    // `take`: a file that grows between the stat and the read still stops at the limit.
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|_| Error::InvalidFilePath)?;
    match bytes.len() as u64 > limit {
        true => Err(Error::TooLarge { limit }),
        false => Ok(Bytes::from(bytes)),
    }
}
