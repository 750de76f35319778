//! Containment of the `?file=` source in the `-mount` directory (spec §4.2).
//!
//! imaginary checks a string prefix of the lexically cleaned path, which lets `/data/img` reach
//! `/data/img2/…` and follows symlinks out of the mount. Here containment is decided by the
//! kernel while it resolves the path (FIX): `openat2` with `RESOLVE_BENEATH` fails as soon as a
//! component, symlinks included, leaves the mount. That is also the fast path: one short walk
//! from the open mount directory instead of `realpath`'s walk from `/` per component, which
//! was a fifth of a cache hit's CPU.

use std::fs::{File, Metadata};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::error::Error;

/// A regular file inside the mount: its path and what a stat of it said.
#[derive(Debug)]
pub struct MountedFile {
    pub path: PathBuf,
    pub meta: Metadata,
}

impl PartialEq for MountedFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

/// Resolves the `file` param (already decoded once by the query parser) to a file inside
/// `mount` (a canonical directory). `None` means the param does not name a source at all
/// (imaginary's second form-decoding failed), which imaginary reports as a missing source.
pub fn resolve(mount: &Path, file: &str) -> Option<Result<MountedFile, Error>> {
    // QUIRK (spec §4.2): the value is form-decoded a second time; clients that encode `%` as
    // `%25` once rely on it. A failed second decoding means "no file source".
    let decoded = decode_again(file)?;
    if decoded.is_empty() {
        return None;
    }
    Some(contain(mount, &decoded))
}

fn contain(mount: &Path, file: &str) -> Result<MountedFile, Error> {
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
    let found = match open_beneath(mount, &relative) {
        Ok(found) => found,
        // An absolute symlink (even one pointing inside the mount) or a kernel without
        // openat2 (< 5.6, or a seccomp profile that refuses it): the file system's answer by
        // canonical path, symlinks resolved, which must still be under the mount.
        Err(Fallback) => {
            let path = mount.join(&relative);
            let canonical = std::fs::canonicalize(&path).map_err(|_| Error::InvalidFilePath)?;
            if !canonical.starts_with(mount) {
                return Err(Error::InvalidFilePath);
            }
            let meta = std::fs::metadata(&canonical).map_err(|_| Error::InvalidFilePath)?;
            // Found by path but not beneath the open directory: the mount may have been
            // replaced (removed and created again); open it afresh next time.
            forget_mount_dir();
            MountedFile { path, meta }
        }
    };
    match found.meta.is_file() {
        true => Ok(found),
        false => Err(Error::InvalidFilePath),
    }
}

/// Why the kernel's resolution gave no answer to rely on: try the portable way.
struct Fallback;

/// `openat2(mount, relative, O_PATH, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` and a stat of
/// what was opened. `Ok` only for a definite answer; a missing file is `Fallback` too, so that
/// the portable path gives the one error every case shares.
fn open_beneath(mount: &Path, relative: &Path) -> Result<MountedFile, Fallback> {
    let file = openat2_beneath(mount, relative, libc::O_PATH)?;
    let meta = file.metadata().map_err(|_| Fallback)?;
    // The name asked for, not the one symlinks inside the mount lead to: asking the kernel
    // (readlink of /proc/self/fd) cost more than the rest of the resolution. A file reached
    // through two names is two sources to the cache.
    Ok(MountedFile {
        path: mount.join(relative),
        meta,
    })
}

/// Opens a file [`resolve`] found, to read it, under the same containment: beneath the open
/// mount directory, or (absolute symlinks, no `openat2`) by path and then judged by where the
/// opened descriptor really is. A path component swapped for a symlink between `resolve` and
/// this open therefore cannot lead out of the mount. Only regular files open; `O_NONBLOCK` keeps
/// a FIFO swapped in from blocking the open (it changes nothing for regular files).
pub fn open(mount: &Path, file: &Path) -> Result<File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let relative = file
        .strip_prefix(mount)
        .map_err(|_| Error::InvalidFilePath)?;
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    let opened = match openat2_beneath(mount, relative, flags) {
        Ok(opened) => opened,
        Err(Fallback) => {
            let opened = File::options()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(file)
                .map_err(|_| Error::InvalidFilePath)?;
            let real = std::fs::read_link(format!("/proc/self/fd/{}", opened.as_raw_fd()))
                .map_err(|_| Error::InvalidFilePath)?;
            if !real.starts_with(mount) {
                return Err(Error::InvalidFilePath);
            }
            opened
        }
    };
    match opened.metadata() {
        Ok(meta) if meta.is_file() => Ok(opened),
        _ => Err(Error::InvalidFilePath),
    }
}

/// `openat2(mount_dir, relative, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
fn openat2_beneath(mount: &Path, relative: &Path, flags: i32) -> Result<File, Fallback> {
    use std::os::unix::ffi::OsStrExt;
    let dir = mount_dir(mount).ok_or(Fallback)?;
    let mut name = relative.as_os_str().as_bytes().to_vec();
    if name.is_empty() {
        return Err(Fallback);
    }
    name.push(0);
    // SAFETY: plain integers; all zero is "no flags" (libc marks the struct non-exhaustive).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `name` is NUL-terminated and `how` lives across the call; the size is its own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(Fallback);
    }
    // SAFETY: a new descriptor the kernel just returned, owned by nobody else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}

/// The mount directory, opened once and kept: `openat2` resolves beneath it. A mount that is
/// removed and created again is opened afresh once a file is found there by path.
static DIR: RwLock<Option<(PathBuf, Arc<File>)>> = RwLock::new(None);

fn mount_dir(mount: &Path) -> Option<Arc<File>> {
    if let Some((path, dir)) = DIR.read().ok()?.as_ref() {
        if path == mount {
            return Some(dir.clone());
        }
    }
    let dir = Arc::new(File::open(mount).ok()?);
    *DIR.write().ok()? = Some((mount.to_path_buf(), dir.clone()));
    Some(dir)
}

fn forget_mount_dir() {
    if let Ok(mut dir) = DIR.write() {
        *dir = None;
    }
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
        resolve(m, f)
            .expect("a source")
            .expect("inside the mount")
            .path
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
        std::os::unix::fs::symlink("../../secret.jpg", m.join("sub/up.jpg")).unwrap();
        refused(&m, "sub/up.jpg");
    }

    #[test]
    fn symlinks_inside_the_mount_are_followed() {
        let (_root, m) = mount();
        // Relative (the kernel's fast path) and absolute (the portable fallback) links to a
        // file in the mount are served, under the name asked for, with the target's stat.
        std::os::unix::fs::symlink("../a b.jpg", m.join("sub/rel.jpg")).unwrap();
        std::os::unix::fs::symlink(m.join("sub/c.jpg"), m.join("abs.jpg")).unwrap();
        std::fs::write(m.join("sub/c.jpg"), b"four").unwrap();
        assert_eq!(ok(&m, "sub/rel.jpg"), m.join("sub/rel.jpg"));
        let abs = resolve(&m, "abs.jpg").unwrap().unwrap();
        assert_eq!((abs.path, abs.meta.len()), (m.join("abs.jpg"), 4));
        std::os::unix::fs::symlink("sub", m.join("dir")).unwrap();
        refused(&m, "dir"); // a directory, through a link
    }

    #[test]
    fn a_mount_replaced_under_a_running_server_is_followed() {
        let (_root, m) = mount();
        assert_eq!(ok(&m, "sub/c.jpg"), m.join("sub/c.jpg"));
        std::fs::remove_dir_all(&m).unwrap();
        std::fs::create_dir_all(m.join("sub")).unwrap();
        std::fs::write(m.join("sub/new.jpg"), b"x").unwrap();
        assert_eq!(ok(&m, "sub/new.jpg"), m.join("sub/new.jpg"));
        assert_eq!(ok(&m, "sub/new.jpg"), m.join("sub/new.jpg"));
        refused(&m, "sub/c.jpg");
    }

    #[test]
    fn the_read_is_contained_again_after_the_check() {
        use std::io::Read;
        let (root, m) = mount();
        let read = |path: &Path| -> Result<String, Error> {
            let mut text = String::new();
            open(&m, path)?.read_to_string(&mut text).unwrap();
            Ok(text)
        };
        std::fs::write(root.path().join("img2/c.jpg"), b"outside").unwrap();
        std::os::unix::fs::symlink(m.join("sub/c.jpg"), m.join("abs.jpg")).unwrap();
        assert_eq!(read(&ok(&m, "sub/c.jpg")).unwrap(), "x");
        assert_eq!(read(&ok(&m, "abs.jpg")).unwrap(), "x"); // the by-path way, still inside

        // Between resolve and the read, `sub` becomes a link out of the mount: relative (the
        // kernel refuses it), then absolute (opened by path, refused by where it really is).
        let found = ok(&m, "sub/c.jpg");
        std::fs::remove_dir_all(m.join("sub")).unwrap();
        std::os::unix::fs::symlink("../img2", m.join("sub")).unwrap();
        assert_eq!(read(&found), Err(Error::InvalidFilePath));
        std::fs::remove_file(m.join("sub")).unwrap();
        std::os::unix::fs::symlink(root.path().join("img2"), m.join("sub")).unwrap();
        assert_eq!(read(&found), Err(Error::InvalidFilePath));

        // A FIFO swapped in is refused at once instead of blocking the open.
        let fifo = m.join("a b.jpg");
        std::fs::remove_file(&fifo).unwrap();
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert_eq!(read(&fifo), Err(Error::InvalidFilePath));
        assert_eq!(read(Path::new("/etc/passwd")), Err(Error::InvalidFilePath));
    }

    #[test]
    fn malformed_second_decoding_is_no_source() {
        let (_root, m) = mount();
        assert_eq!(resolve(&m, "100%.jpg"), None);
        assert_eq!(resolve(&m, ""), None);
    }
}
