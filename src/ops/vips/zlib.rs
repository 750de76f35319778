//! zlib-rs in front of the system's zlib, process-wide.
//!
//! libpng inside Debian 12's libvips inflates and deflates with the system's zlib 1.2.13, and that
//! was 42 % of the CPU of a PNG-alpha → 300 px request (perf; docs/performance.md, "PNG"). zlib-rs
//! (the `libz-rs-sys` crate: zlib's C API in Rust, by the Trifecta Tech Foundation) defines the
//! same functions under the same names. `build.rs` exports all of them from the binary, and the
//! dynamic linker looks in the executable before any shared library, so libpng, libtiff, GLib and
//! every other user of zlib in the process bind to zlib-rs. All functions move together (a
//! stream begun by one implementation must never be continued by the other); zlib's two varargs
//! functions, which Rust cannot define, are in `shim.c`.
//!
//! Output is the same DEFLATE format; the bytes (and so PNG sizes) differ from zlib 1.2's at
//! the same level, which [`png_level`] accounts for. [`implementation`] says which zlib the
//! process uses.

use std::ffi::{c_char, CStr};
use std::sync::OnceLock;

// Linked for its exported C symbols; no Rust code calls it.
use libz_rs_sys as _;

/// The `zlibVersion()` every library in the process binds to, e.g. `1.3.0-zlib-rs-0.6.8`
/// (zlib-rs in front) or `1.2.13` (the system's: the exports did not take).
pub fn implementation() -> String {
    extern "C" {
        fn zlibVersion() -> *const c_char;
    }
    // dlsym finds what libpng's calls find: the first definition in the global lookup order.
    // SAFETY: dlsym with a NUL-terminated name; the result, if any, is zlib's
    // `const char *zlibVersion(void)`, returning a static string.
    unsafe {
        let found = libc::dlsym(libc::RTLD_DEFAULT, c"zlibVersion".as_ptr());
        let f: unsafe extern "C" fn() -> *const c_char = if found.is_null() {
            zlibVersion
        } else {
            std::mem::transmute::<*mut libc::c_void, unsafe extern "C" fn() -> *const c_char>(found)
        };
        CStr::from_ptr(f()).to_string_lossy().into_owned()
    }
}

/// Whether zlib-rs is the zlib of the process.
pub fn in_front() -> bool {
    implementation().contains("zlib-rs")
}

/// The zlib level to write a PNG with when `requested` is asked for: imaginary's users know
/// zlib 1.2's levels (what libpng on the system's zlib writes for `compression=N`), and
/// zlib-rs' levels are zlib-ng's strategies, not zlib's. On PNG data its level 1 ("quick")
/// writes files about 37 % larger than zlib's level 1, its 5 and 6 ("medium") 1–2 % larger
/// than zlib's, and its 4 (and 7) 0.5 % larger than zlib's 4 on a flat drawing; its 2, 7 and
/// 8 write files no larger than zlib's 1, 5 and 6, and 4, and the other levels are no larger
/// than zlib's as they are
/// (docs/performance.md, changes 11 and 27; `encode.rs` checks it against the system's zlib).
/// Level 7 costs zlib-rs more than its 6 and still less than zlib 1.2's level 6. Since change
/// 27 only what libvips' saver writes (Adam7, palettes, compression 8 and 9) uses this.
pub fn png_level(requested: u32) -> u32 {
    static IN_FRONT: OnceLock<bool> = OnceLock::new();
    if !*IN_FRONT.get_or_init(in_front) {
        return requested;
    }
    match requested {
        1 => 2,
        4 => 8,
        5 | 6 => 7,
        level => level,
    }
}

/// A PNG's zlib stream (its IDAT chunks joined): its length, and what it inflates to (the
/// filtered rows). For tests.
#[cfg(test)]
pub(crate) fn png_image_data(png: &[u8]) -> (usize, Vec<u8>) {
    let (mut at, mut z) = (8, vec![]);
    while at + 12 <= png.len() {
        let size = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        if &png[at + 4..at + 8] == b"IDAT" {
            z.extend_from_slice(&png[at + 8..at + 8 + size]);
        }
        at += 12 + size;
    }
    (z.len(), inflate(&z))
}

/// A whole zlib stream inflated (by zlib-rs, through zlib's `uncompress`). For tests.
#[cfg(test)]
pub(crate) fn inflate(z: &[u8]) -> Vec<u8> {
    use std::ffi::c_ulong;
    let mut out = vec![0u8; 4 * z.len() + 1024];
    loop {
        let mut len = out.len() as c_ulong;
        // SAFETY: buffers of the lengths given.
        let rc = unsafe {
            libz_rs_sys::uncompress(out.as_mut_ptr(), &mut len, z.as_ptr(), z.len() as c_ulong)
        };
        match rc {
            0 => {
                out.truncate(len as usize);
                return out;
            }
            libz_rs_sys::Z_BUF_ERROR => out.resize(out.len() * 2, 0),
            rc => panic!("uncompress: {rc}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zlib_rs_is_what_every_library_binds_to() {
        assert!(in_front(), "zlib in use: {}", implementation());
    }

    #[test]
    fn png_levels_where_zlib_rs_writes_larger_files_than_zlib_move_up() {
        let levels: Vec<u32> = (0..=9).map(png_level).collect();
        assert_eq!(levels, [0, 2, 2, 3, 8, 7, 7, 7, 8, 9]);
    }

    #[test]
    fn the_varargs_pair_writes_through_zlib_rs() {
        // gzprintf is shim.c's, on zlib-rs' gzwrite: a gzFile of one implementation only.
        use std::ffi::{c_int, c_void};
        extern "C" {
            fn gzopen(path: *const c_char, mode: *const c_char) -> *mut c_void;
            fn gzprintf(file: *mut c_void, format: *const c_char, ...) -> c_int;
            fn gzread(file: *mut c_void, buf: *mut c_void, len: u32) -> c_int;
            fn gzclose(file: *mut c_void) -> c_int;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = std::ffi::CString::new(dir.path().join("t.gz").to_str().unwrap()).unwrap();
        let mut text = [0u8; 64];
        // SAFETY: valid C strings and a buffer of the length given; each file closed once.
        let (written, read) = unsafe {
            let file = gzopen(path.as_ptr(), c"wb".as_ptr());
            assert!(!file.is_null());
            let written = gzprintf(file, c"%s %d".as_ptr(), c"answer".as_ptr(), 42 as c_int);
            assert_eq!(gzclose(file), 0);
            let file = gzopen(path.as_ptr(), c"rb".as_ptr());
            let read = gzread(file, text.as_mut_ptr().cast(), text.len() as u32);
            gzclose(file);
            (written, read)
        };
        assert_eq!((written, read), (9, 9));
        assert_eq!(&text[..9], b"answer 42");
        let raw = std::fs::read(dir.path().join("t.gz")).unwrap();
        assert_eq!(&raw[..2], &[0x1f, 0x8b], "a gzip file");
    }
}
