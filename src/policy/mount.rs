//! Containment of the `?file=` source in the `-mount` directory (spec §4.2).
//!
//! imaginary checks a string prefix of the lexically cleaned path, which lets `/data/img` reach
//! `/data/img2/…` and follows symlinks out of the mount. Here containment is decided on the
//! canonical path, component by component, after symlinks are resolved (FIX).

use std::path::{Component, Path, PathBuf};

use crate::error::Error;

/// Resolves the `file` param (already decoded once by the query parser) to a file inside
/// `mount` (a canonical directory). `None` means the param does not name a source at all
/// (imaginary's second form-decoding failed), which imaginary reports as a missing source.
pub fn resolve(mount: &Path, file: &str) -> Option<Result<PathBuf, Error>> {
    // QUIRK (spec §4.2): the value is form-decoded a second time; clients that encode `%` as
    // `%25` once rely on it. A failed second decoding means "no file source".
    let decoded = decode_again(file)?;
    if decoded.is_empty() {
        return None;
    }
    Some(contain(mount, &decoded))
}

fn contain(mount: &Path, file: &str) -> Result<PathBuf, Error> {
    if file.contains('\0') {
        return Err(Error::InvalidFilePath);
    }
    // Lexical pass first: `..` may never climb above the mount, even transiently.
    let mut relative = PathBuf::new();
    for component in Path::new(file).components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !relative.pop() {
                    return Err(Error::InvalidFilePath);
                }
            }
        }
    }
    // Then the file system's answer: symlinks resolved, must still be under the mount.
    let canonical =
        std::fs::canonicalize(mount.join(&relative)).map_err(|_| Error::InvalidFilePath)?;
    if !canonical.starts_with(mount) || !canonical.is_file() {
        return Err(Error::InvalidFilePath);
    }
    Ok(canonical)
}

/// Go's `url.QueryUnescape`: `+` → space, `%XX` → byte; a malformed escape fails.
fn decode_again(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let m = root.path().join("img");
        std::fs::create_dir_all(m.join("sub")).unwrap();
        std::fs::create_dir_all(root.path().join("img2")).unwrap();
        std::fs::write(m.join("a b.jpg"), b"x").unwrap();
        std::fs::write(m.join("sub/c.jpg"), b"x").unwrap();
        std::fs::write(root.path().join("img2/secret.jpg"), b"x").unwrap();
        std::fs::write(root.path().join("secret.jpg"), b"x").unwrap();
        let canonical = m.canonicalize().unwrap();
        (root, canonical)
    }

    fn ok(m: &Path, f: &str) -> PathBuf {
        resolve(m, f).expect("a source").expect("inside the mount")
    }

    fn refused(m: &Path, f: &str) {
        assert_eq!(resolve(m, f), Some(Err(Error::InvalidFilePath)), "{f}");
    }

    #[test]
    fn files_inside_the_mount_resolve() {
        let (_root, m) = mount();
        assert_eq!(ok(&m, "sub/c.jpg"), m.join("sub/c.jpg"));
        assert_eq!(ok(&m, "/sub/c.jpg"), m.join("sub/c.jpg")); // a leading slash is just joined
        assert_eq!(ok(&m, "sub/../a+b.jpg"), m.join("a b.jpg")); // second decoding: + is a space
        assert_eq!(ok(&m, "a%20b.jpg"), m.join("a b.jpg"));
    }

    #[test]
    fn no_way_out_of_the_mount() {
        let (root, m) = mount();
        refused(&m, "../secret.jpg");
        refused(&m, "sub/../../secret.jpg");
        refused(&m, "%2e%2e/secret.jpg"); // encoded once more
        refused(&m, "../img2/secret.jpg"); // imaginary's string-prefix hole
        refused(&m, "a.jpg\0.png");
        refused(&m, "missing.jpg");
        refused(&m, "sub"); // a directory
        std::os::unix::fs::symlink(root.path().join("secret.jpg"), m.join("link.jpg")).unwrap();
        refused(&m, "link.jpg");
        std::os::unix::fs::symlink("/etc", m.join("etc")).unwrap();
        refused(&m, "etc/passwd");
    }

    #[test]
    fn malformed_second_decoding_is_no_source() {
        let (_root, m) = mount();
        assert_eq!(resolve(&m, "100%.jpg"), None);
        assert_eq!(resolve(&m, ""), None);
    }
}
