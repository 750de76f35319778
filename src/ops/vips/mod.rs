//! The libvips layer: a safe [`Image`] over the small C shim in `shim.c`.
//!
//! Why a shim: libvips options are varargs, checked only at run time and renamed between
//! releases (`strip` → `keep` in 8.15), so every call we make goes through a fixed-signature C
//! wrapper compiled against the installed headers (like imgproxy's `vips.c`). This file declares
//! those wrappers by hand and wraps them so the rest of `ops` never sees a raw pointer.
//!
//! Rules this layer enforces:
//! * **One process-wide start-up**: [`init`] (idempotent; the first call wins). libvips' own
//!   operation cache is switched off: caching is ours.
//! * **Ownership**: an [`Image`] owns one reference to a `VipsImage` and drops it on `Drop`.
//!   Images are lazy pipelines: pixels are computed only when saved or copied to memory.
//! * **Input buffers outlive their images**: libvips' `*_buffer` loaders do *not* copy their
//!   input, and every image derived from a loaded one may read from it until it is saved. So the
//!   bytes are held in a [`Bytes`] that every derived [`Image`] keeps a clone of; they are
//!   freed only after the last image that may read them. A fetched or read source is already
//!   `Bytes` and is not copied; callers holding a `&[u8]` copy it once.
//! * **Errors carry libvips' message**: libvips reports errors in one process-wide buffer; each
//!   failing call reads and clears it atomically right away ([`VipsError`]). Under concurrent
//!   failures two messages can end up in one error — the text is diagnostic, never parsed,
//!   except for the "encode" test of spec §8.3.
//! * **Sequential access**: images loaded with `access=sequential` can be read top to bottom
//!   only once. [`Image::random_access`] renders them to memory before operations that need to
//!   read out of order (rotations, smart crop); a failed save leaves such an image unusable, so
//!   a retry must start again from the buffer.

use std::ffi::{c_int, c_void, CStr, CString};
use std::ptr::{self, NonNull};
use std::sync::Once;

use bytes::Bytes;

use super::format::ImageType;

pub mod zlib;

/// Opaque libvips image.
#[repr(C)]
pub struct VipsImage {
    _private: [u8; 0],
}

mod ffi {
    use super::VipsImage;
    use std::ffi::{c_char, c_int, c_void};

    // Declared by hand: only the shim's functions and the few plain GLib calls we need.
    extern "C" {
        pub fn imgedge_init(concurrency: c_int) -> c_int;
        #[allow(dead_code)] // read by the orc test
        pub fn imgedge_orc_guarded_calls() -> c_int;
        pub fn imgedge_operation_exists(nickname: *const c_char) -> c_int;
        pub fn imgedge_error_take() -> *mut c_char;
        pub fn imgedge_thread_shutdown();
        pub fn imgedge_version() -> *const c_char;

        pub fn imgedge_load(
            buf: *const c_void,
            len: usize,
            sequential: c_int,
            fail_on: c_int,
            pages: c_int,
            out: *mut *mut VipsImage,
        ) -> c_int;
        pub fn imgedge_load_jpeg(
            buf: *const c_void,
            len: usize,
            shrink: c_int,
            fail_on: c_int,
            out: *mut *mut VipsImage,
        ) -> c_int;
        pub fn imgedge_load_jpeg_from(
            full: *mut VipsImage,
            buf: *const c_void,
            len: usize,
            shrink: c_int,
            out: *mut *mut VipsImage,
        ) -> c_int;
        #[cfg(test)]
        pub fn imgedge_fields(im: *mut VipsImage) -> *mut c_char;
        #[cfg(test)]
        pub fn imgedge_jpeg_headers_reused() -> c_int;
        pub fn imgedge_thumbnail(
            buf: *const c_void,
            len: usize,
            width: c_int,
            height: c_int,
            fail_on: c_int,
            pages: c_int,
            out: *mut *mut VipsImage,
        ) -> c_int;

        pub fn imgedge_width(im: *mut VipsImage) -> c_int;
        pub fn imgedge_height(im: *mut VipsImage) -> c_int;
        pub fn imgedge_bands(im: *mut VipsImage) -> c_int;
        pub fn imgedge_band_format(im: *mut VipsImage) -> c_int;
        pub fn imgedge_interpretation(im: *mut VipsImage) -> *const c_char;
        pub fn imgedge_has_alpha(im: *mut VipsImage) -> c_int;
        pub fn imgedge_has_alpha_bimg(im: *mut VipsImage) -> c_int;
        pub fn imgedge_has_icc(im: *mut VipsImage) -> c_int;
        pub fn imgedge_exif_orientation(im: *mut VipsImage) -> c_int;
        pub fn imgedge_orientation(im: *mut VipsImage) -> c_int;
        pub fn imgedge_loader(im: *mut VipsImage) -> *const c_char;

        pub fn imgedge_copy_memory(im: *mut VipsImage, out: *mut *mut VipsImage) -> c_int;
        pub fn imgedge_rot(im: *mut VipsImage, out: *mut *mut VipsImage, angle: c_int) -> c_int;
        pub fn imgedge_flip(im: *mut VipsImage, out: *mut *mut VipsImage, vertical: c_int)
            -> c_int;
        pub fn imgedge_autorot(im: *mut VipsImage, out: *mut *mut VipsImage) -> c_int;
        pub fn imgedge_set_orientation(
            im: *mut VipsImage,
            out: *mut *mut VipsImage,
            orientation: c_int,
        ) -> c_int;
        pub fn imgedge_resize(
            im: *mut VipsImage,
            out: *mut *mut VipsImage,
            hscale: f64,
            vscale: f64,
            sequential: c_int,
        ) -> c_int;
        #[cfg(test)]
        pub fn imgedge_jpeg_pixels_used() -> c_int;
        #[cfg(test)]
        pub fn imgedge_png_pixels_used() -> c_int;
        #[cfg(test)]
        pub fn imgedge_jpeg_write_used() -> c_int;
        #[cfg(test)]
        pub fn imgedge_webp_write_used() -> c_int;
        #[cfg(test)]
        pub fn imgedge_png_write_used() -> c_int;
        #[cfg(test)]
        pub fn imgedge_save_png_libvips(
            im: *mut VipsImage,
            buf: *mut *mut c_void,
            len: *mut usize,
            compression: c_int,
            interlace: c_int,
            palette: c_int,
            quality: c_int,
            effort: c_int,
            strip: c_int,
        ) -> c_int;
        pub fn imgedge_load_libvips(
            buf: *const c_void,
            len: usize,
            sequential: c_int,
            fail_on: c_int,
            pages: c_int,
            out: *mut *mut VipsImage,
        ) -> c_int;
        #[cfg(test)]
        pub fn imgedge_premultiply_uchar(im: *mut VipsImage, out: *mut *mut VipsImage) -> c_int;
        #[cfg(test)]
        pub fn imgedge_reduceh_uchar(
            im: *mut VipsImage,
            out: *mut *mut VipsImage,
            hshrink: f64,
        ) -> c_int;
        pub fn imgedge_reduce_simd(level: c_int) -> c_int;
        #[cfg(test)]
        pub fn imgedge_reducev_uchar(
            im: *mut VipsImage,
            out: *mut *mut VipsImage,
            vshrink: f64,
        ) -> c_int;
        pub fn imgedge_extract_area(
            im: *mut VipsImage,
            out: *mut *mut VipsImage,
            left: c_int,
            top: c_int,
            width: c_int,
            height: c_int,
        ) -> c_int;
        pub fn imgedge_embed(
            im: *mut VipsImage,
            out: *mut *mut VipsImage,
            left: c_int,
            top: c_int,
            width: c_int,
            height: c_int,
            extend: c_int,
            background: *const f64,
            n: c_int,
        ) -> c_int;
        pub fn imgedge_smartcrop(
            im: *mut VipsImage,
            out: *mut *mut VipsImage,
            width: c_int,
            height: c_int,
        ) -> c_int;
        pub fn imgedge_zoom(
            im: *mut VipsImage,
            out: *mut *mut VipsImage,
            xfac: c_int,
            yfac: c_int,
        ) -> c_int;
        pub fn imgedge_gaussblur(
            im: *mut VipsImage,
            out: *mut *mut VipsImage,
            sigma: f64,
            min_ampl: f64,
        ) -> c_int;
        pub fn imgedge_flatten(
            im: *mut VipsImage,
            out: *mut *mut VipsImage,
            r: f64,
            g: f64,
            b: f64,
        ) -> c_int;
        pub fn imgedge_colourspace(
            im: *mut VipsImage,
            out: *mut *mut VipsImage,
            bw: c_int,
        ) -> c_int;
        pub fn imgedge_remove_icc(im: *mut VipsImage, out: *mut *mut VipsImage) -> c_int;
        pub fn imgedge_text_watermark(
            im: *mut VipsImage,
            out: *mut *mut VipsImage,
            text: *const c_char,
            font: *const c_char,
            width: c_int,
            dpi: c_int,
            margin: c_int,
            opacity: f64,
            replicate: c_int,
            rgb: *const f64,
        ) -> c_int;
        pub fn imgedge_composite(
            im: *mut VipsImage,
            overlay: *mut VipsImage,
            out: *mut *mut VipsImage,
            left: c_int,
            top: c_int,
            opacity: f64,
        ) -> c_int;

        pub fn imgedge_save_jpeg(
            im: *mut VipsImage,
            buf: *mut *mut c_void,
            len: *mut usize,
            quality: c_int,
            interlace: c_int,
            strip: c_int,
        ) -> c_int;
        #[cfg(test)]
        pub fn imgedge_save_jpeg_libvips(
            im: *mut VipsImage,
            buf: *mut *mut c_void,
            len: *mut usize,
            quality: c_int,
            interlace: c_int,
            strip: c_int,
        ) -> c_int;
        pub fn imgedge_save_png(
            im: *mut VipsImage,
            buf: *mut *mut c_void,
            len: *mut usize,
            compression: c_int,
            zlib_level: c_int,
            interlace: c_int,
            palette: c_int,
            quality: c_int,
            effort: c_int,
            strip: c_int,
        ) -> c_int;
        #[cfg(test)]
        pub fn imgedge_save_webp_libvips(
            im: *mut VipsImage,
            buf: *mut *mut c_void,
            len: *mut usize,
            quality: c_int,
            lossless: c_int,
            strip: c_int,
        ) -> c_int;
        pub fn imgedge_save_webp(
            im: *mut VipsImage,
            buf: *mut *mut c_void,
            len: *mut usize,
            quality: c_int,
            lossless: c_int,
            strip: c_int,
        ) -> c_int;
        pub fn imgedge_save_tiff(
            im: *mut VipsImage,
            buf: *mut *mut c_void,
            len: *mut usize,
            strip: c_int,
        ) -> c_int;
        pub fn imgedge_save_gif(
            im: *mut VipsImage,
            buf: *mut *mut c_void,
            len: *mut usize,
            strip: c_int,
        ) -> c_int;
        pub fn imgedge_save_heif(
            im: *mut VipsImage,
            buf: *mut *mut c_void,
            len: *mut usize,
            quality: c_int,
            av1: c_int,
            lossless: c_int,
            strip: c_int,
        ) -> c_int;
        pub fn imgedge_save_jxl(
            im: *mut VipsImage,
            buf: *mut *mut c_void,
            len: *mut usize,
            quality: c_int,
            lossless: c_int,
            strip: c_int,
        ) -> c_int;

        pub fn imgedge_test_image(
            width: c_int,
            height: c_int,
            bands: c_int,
            out: *mut *mut VipsImage,
        ) -> c_int;
        pub fn imgedge_from_pixels(
            data: *const c_void,
            len: usize,
            width: c_int,
            height: c_int,
            bands: c_int,
            out: *mut *mut VipsImage,
        ) -> c_int;
        pub fn imgedge_to_pixels(
            im: *mut VipsImage,
            buf: *mut *mut c_void,
            len: *mut usize,
        ) -> c_int;
        pub fn imgedge_getpoint(
            im: *mut VipsImage,
            x: c_int,
            y: c_int,
            values: *mut f64,
            max: c_int,
        ) -> c_int;

        pub fn imgedge_n_pages(im: *mut VipsImage) -> c_int;
        pub fn imgedge_page_height(im: *mut VipsImage) -> c_int;
        pub fn imgedge_join_frames(
            frames: *mut *mut VipsImage,
            n: c_int,
            out: *mut *mut VipsImage,
        ) -> c_int;
        pub fn imgedge_set_page_height(
            im: *mut VipsImage,
            out: *mut *mut VipsImage,
            page_height: c_int,
        ) -> c_int;
        pub fn imgedge_set_animation(
            im: *mut VipsImage,
            out: *mut *mut VipsImage,
            delays: *const c_int,
            n_delays: c_int,
            loop_count: c_int,
        ) -> c_int;
        pub fn imgedge_get_delays(im: *mut VipsImage, delays: *mut c_int, max: c_int) -> c_int;
        pub fn imgedge_get_loop(im: *mut VipsImage) -> c_int;

        pub fn g_object_ref(object: *mut c_void) -> *mut c_void;
        pub fn g_object_unref(object: *mut c_void);
        pub fn g_free(mem: *mut c_void);
    }
}

static INIT: Once = Once::new();

/// Starts libvips once for the process (idempotent: the first call wins, later ones are no-ops).
///
/// `threads` is libvips' worker-thread count *per image* (0 → 1); the `VIPS_CONCURRENCY`
/// environment variable overrides it, as in imaginary. Call it at start-up before any image
/// work; [`Image`] constructors call it with 1 if nobody did.
///
/// # Panics
/// If libvips cannot start (missing modules, broken install): nothing could work afterwards.
pub fn init(threads: u32) {
    INIT.call_once(|| {
        let threads = threads.clamp(1, 1024) as c_int;
        // SAFETY: plain C call; the Once serialises it.
        if unsafe { ffi::imgedge_init(threads) } != 0 {
            // Not `take_error`: the error buffer's lock may not exist when start-up failed.
            panic!("libvips failed to start (VIPS_INIT); check the libvips installation");
        }
    });
}

/// The libvips version string, e.g. `8.14.1`.
pub fn version() -> String {
    init(1);
    // SAFETY: static string owned by libvips.
    unsafe { CStr::from_ptr(ffi::imgedge_version()) }
        .to_string_lossy()
        .into_owned()
}

/// Whether this libvips build has an operation, e.g. `jxlsave_buffer` or `heifsave_buffer`.
pub fn has_operation(nickname: &str) -> bool {
    init(1);
    let Ok(name) = CString::new(nickname) else {
        return false;
    };
    // SAFETY: valid NUL-terminated string.
    unsafe { ffi::imgedge_operation_exists(name.as_ptr()) != 0 }
}

/// Frees libvips' per-thread buffers. Call when a worker thread is done with a request (bimg
/// and imgproxy do the same), so idle worker threads do not hold image memory.
pub fn thread_shutdown() {
    // SAFETY: always valid; libvips recreates the buffers on demand.
    unsafe { ffi::imgedge_thread_shutdown() }
}

/// The widest SIMD the Lanczos3 reduce (reduce.c) uses from now on: 2 = AVX2 where the CPU has
/// it, 1 = SSE2 (or C off x86-64); below 0, or more than the CPU has, = the widest it has (the
/// default). Returns the level in effect. For benchmarks and tests: every level gives the
/// same bytes.
pub fn set_reduce_simd(level: i32) -> i32 {
    // SAFETY: sets an atomic int; operations read it when they are built.
    unsafe { ffi::imgedge_reduce_simd(level) }
}

/// What a file's header says, read without decoding pixels (see [`read_header`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    pub bands: u32,
    /// libvips' interpretation nickname (`srgb`, `b-w`, `cmyk`, …).
    pub interpretation: String,
    /// bimg's alpha test.
    pub has_alpha: bool,
    pub has_icc: bool,
    /// EXIF IFD0 Orientation as stored (0 when absent).
    pub exif_orientation: u32,
    /// The orientation libvips honours (1..=8).
    pub orientation: u32,
    /// e.g. `jpegload_buffer`.
    pub loader: Option<String>,
}

/// `bytes` opened with libvips' own loader (none of the shim's pixel readers), sequentially,
/// with `FailOn::None`.
///
/// # Safety
/// The image does not keep `bytes` alive (libvips' buffer loaders do not copy): the caller must
/// keep them until the image and everything made from it are dropped.
unsafe fn load_libvips_unkept(bytes: &[u8]) -> Result<Image, VipsError> {
    init(1);
    let mut out = ptr::null_mut();
    // SAFETY: a valid buffer of bytes.len() bytes; the caller keeps it alive.
    let rc = unsafe {
        ffi::imgedge_load_libvips(
            bytes.as_ptr() as *const c_void,
            bytes.len(),
            1,
            FailOn::None as c_int,
            0,
            &mut out,
        )
    };
    if rc != 0 {
        return Err(take_error("load"));
    }
    let ptr = NonNull::new(out).ok_or_else(|| VipsError::new("load: no image"))?;
    Ok(Image {
        ptr,
        keep: Vec::new(),
        sequential: true,
    })
}

/// Reads the header of `bytes` (format detected by libvips) without decoding pixels and without
/// copying the bytes: the image opened here is dropped before this returns, so the borrow is
/// enough. For the resolution limit and `/info`.
pub fn read_header(bytes: &[u8]) -> Result<Header, VipsError> {
    // SAFETY: `bytes` outlives the image, which is unreffed at the end of this function and
    // never handed out (libvips' cache is off, so nothing else keeps it). libvips' own loader:
    // no pixels are read, so the shim's pixel readers (and their checks) have nothing to do.
    let img = unsafe { load_libvips_unkept(bytes)? };
    let header = Header {
        width: img.width(),
        height: img.height(),
        bands: img.bands(),
        interpretation: img.interpretation(),
        has_alpha: img.has_alpha_bimg(),
        has_icc: img.has_icc(),
        exif_orientation: img.exif_orientation(),
        orientation: img.orientation(),
        loader: img.loader(),
    };
    drop(img);
    Ok(header)
}

/// Tests that make libvips fail hold this lock: libvips' error buffer is process-wide, and a
/// concurrent failure in another test could otherwise take (or add to) the message under test.
#[cfg(test)]
pub(crate) fn error_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A libvips failure, with libvips' own message (trimmed, one line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipsError(String);

impl VipsError {
    pub fn new(message: impl Into<String>) -> Self {
        VipsError(message.into())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for VipsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VipsError {}

/// Reads and clears libvips' error buffer. `context` names the call, used when the buffer is
/// empty (another thread may have taken the text). Only after a libvips call: before start-up
/// the buffer's lock does not exist.
fn take_error(context: &str) -> VipsError {
    // SAFETY: returns a g_malloc'd copy (or NULL) that we free.
    let text = unsafe {
        let p = ffi::imgedge_error_take();
        if p.is_null() {
            String::new()
        } else {
            let s = CStr::from_ptr(p).to_string_lossy().into_owned();
            ffi::g_free(p as *mut c_void);
            s
        }
    };
    VipsError(clean_message(&text, context))
}

/// Whatever text libvips' error buffer holds now, cleared (tests: successes leave none).
#[cfg(test)]
pub(crate) fn take_pending_error() -> Option<String> {
    init(1);
    let e = take_error("");
    (e.message() != ": libvips error").then(|| e.message().to_string())
}

/// libvips' text is one line per message, each ending in `\n`: join them with spaces.
fn clean_message(text: &str, context: &str) -> String {
    let msg = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if msg.is_empty() {
        format!("{context}: libvips error")
    } else {
        msg
    }
}

/// What a loader does with damaged input (libvips `VipsFailOn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FailOn {
    /// Decode what can be decoded (imaginary's behaviour: a truncated JPEG still renders).
    #[default]
    None = 0,
    Truncated = 1,
    Error = 2,
    Warning = 3,
}

/// How [`Image::load`] will be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Top to bottom, once: decoding streams through the pipeline with little memory.
    Sequential,
    /// Any order: the loader decodes the whole image up front when pixels are first needed.
    Random,
}

/// Edge handling for [`Image::embed`] (libvips `VipsExtend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extend {
    Black = 0,
    Copy = 1,
    Repeat = 2,
    Mirror = 3,
    White = 4,
    Background = 5,
}

/// An encoder and its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Saver {
    Jpeg {
        quality: u32,
        interlace: bool,
    },
    Png {
        /// zlib's level (0-9), as imaginary's users know it: each writer takes the level of
        /// its own deflate that writes files no larger (pngwrite.c, `zlib::png_level`).
        compression: u32,
        interlace: bool,
        palette: bool,
        quality: u32,
        effort: u32,
    },
    Webp {
        quality: u32,
        lossless: bool,
    },
    Tiff,
    Gif,
    Heif {
        quality: u32,
        lossless: bool,
    },
    Avif {
        quality: u32,
        lossless: bool,
    },
    Jxl {
        quality: u32,
        lossless: bool,
    },
}

impl Saver {
    /// A fast lossless PNG (zlib level 1): for tests and debugging, where encode time matters
    /// and size does not.
    pub const QUICK_PNG: Saver = Saver::Png {
        compression: 1,
        interlace: false,
        palette: false,
        quality: 75,
        effort: 7,
    };
}

impl Saver {
    /// The format this saver writes.
    pub fn format(&self) -> ImageType {
        match self {
            Saver::Jpeg { .. } => ImageType::Jpeg,
            Saver::Png { .. } => ImageType::Png,
            Saver::Webp { .. } => ImageType::Webp,
            Saver::Tiff => ImageType::Tiff,
            Saver::Gif => ImageType::Gif,
            Saver::Heif { .. } => ImageType::Heif,
            Saver::Avif { .. } => ImageType::Avif,
            Saver::Jxl { .. } => ImageType::Jxl,
        }
    }

    /// Whether this libvips build can write the format (JPEG XL, HEIF and GIF are optional
    /// at libvips build time; the check is by operation name, at run time).
    pub fn available(&self) -> bool {
        match self {
            Saver::Jpeg { .. } => has_operation("jpegsave_buffer"),
            Saver::Png { .. } => has_operation("pngsave_buffer"),
            Saver::Webp { .. } => has_operation("webpsave_buffer"),
            Saver::Tiff => has_operation("tiffsave_buffer"),
            Saver::Gif => has_operation("gifsave_buffer"),
            Saver::Heif { .. } | Saver::Avif { .. } => has_operation("heifsave_buffer"),
            Saver::Jxl { .. } => has_operation("jxlsave_buffer"),
        }
    }
}

/// A libvips image: one owned reference to a (lazy) `VipsImage`, plus the input buffers its
/// pipeline may still read.
pub struct Image {
    ptr: NonNull<VipsImage>,
    /// Buffers handed to `*_buffer` loaders somewhere upstream of this image. libvips reads them
    /// without copying until the image is finalised: they must outlive `ptr` (dropped after it,
    /// see `Drop`).
    keep: Vec<Bytes>,
    /// Upstream of this image is a sequential loader not yet rendered to memory.
    sequential: bool,
}

// SAFETY: a VipsImage is reference counted with atomic GObject refcounts and libvips images may
// be used from any thread; `Image` is not `Sync`, so one image is never used by two threads at
// once through the same handle. Metadata is only ever changed on fresh copies.
unsafe impl Send for Image {}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: we own one reference. `keep` is dropped after this, so the buffers outlive
        // the image.
        unsafe { ffi::g_object_unref(self.ptr.as_ptr() as *mut c_void) }
    }
}

impl Clone for Image {
    /// A new reference to the same image (no pixels are copied).
    fn clone(&self) -> Self {
        // SAFETY: ptr is a live GObject.
        unsafe { ffi::g_object_ref(self.ptr.as_ptr() as *mut c_void) };
        Image {
            ptr: self.ptr,
            keep: self.keep.clone(),
            sequential: self.sequential,
        }
    }
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("width", &self.width())
            .field("height", &self.height())
            .field("bands", &self.bands())
            .field("interpretation", &self.interpretation())
            .field("sequential", &self.sequential)
            .finish()
    }
}

/// The same kept buffer (clones of one `Bytes` share their bytes).
fn same_buffer(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

fn to_c(v: u32) -> c_int {
    v.min(c_int::MAX as u32) as c_int
}

impl Image {
    /// Wraps the result of a shim call that creates an image from a buffer.
    fn from_load(
        rc: c_int,
        out: *mut VipsImage,
        buf: Bytes,
        sequential: bool,
        context: &str,
    ) -> Result<Image, VipsError> {
        if rc != 0 {
            return Err(take_error(context));
        }
        let ptr = NonNull::new(out).ok_or_else(|| VipsError(format!("{context}: no image")))?;
        Ok(Image {
            ptr,
            keep: vec![buf],
            sequential,
        })
    }

    /// Wraps the result of an operation on `self` (and possibly `other`).
    /// Runs one shim operation that makes a new image from this one.
    fn apply(
        &self,
        context: &str,
        op: impl FnOnce(*mut VipsImage, *mut *mut VipsImage) -> c_int,
    ) -> Result<Image, VipsError> {
        let mut out = ptr::null_mut();
        let rc = op(self.raw(), &mut out);
        self.derived(None, rc, out, context)
    }

    fn derived(
        &self,
        other: Option<&Image>,
        rc: c_int,
        out: *mut VipsImage,
        context: &str,
    ) -> Result<Image, VipsError> {
        if rc != 0 {
            return Err(take_error(context));
        }
        let ptr = NonNull::new(out).ok_or_else(|| VipsError(format!("{context}: no image")))?;
        let mut keep = self.keep.clone();
        let mut sequential = self.sequential;
        if let Some(o) = other {
            for b in &o.keep {
                if !keep.iter().any(|k| same_buffer(k, b)) {
                    keep.push(b.clone());
                }
            }
            sequential |= o.sequential;
        }
        Ok(Image {
            ptr,
            keep,
            sequential,
        })
    }

    fn raw(&self) -> *mut VipsImage {
        self.ptr.as_ptr()
    }

    /// Opens an image from encoded bytes (format detected by libvips). Only the header is read
    /// now; pixels are decoded when needed.
    pub fn load(buf: Bytes, access: Access, fail_on: FailOn) -> Result<Image, VipsError> {
        Image::open(buf, access, fail_on, false)
    }

    /// [`Image::load`], or with `pages` every frame of a GIF/WebP, stacked.
    fn open(buf: Bytes, access: Access, fail_on: FailOn, pages: bool) -> Result<Image, VipsError> {
        init(1);
        let mut out = ptr::null_mut();
        let sequential = access == Access::Sequential;
        // SAFETY: buf stays alive inside the returned Image (`keep`).
        let rc = unsafe {
            ffi::imgedge_load(
                buf.as_ptr() as *const c_void,
                buf.len(),
                sequential as c_int,
                fail_on as c_int,
                pages as c_int,
                &mut out,
            )
        };
        Image::from_load(rc, out, buf, sequential, "load")
    }

    /// Copies `bytes` and opens them (see [`Image::load`]).
    pub fn load_bytes(bytes: &[u8], access: Access) -> Result<Image, VipsError> {
        Image::load(Bytes::copy_from_slice(bytes), access, FailOn::None)
    }

    /// Opens a JPEG decoded at 1/`shrink` size in the DCT domain (shrink ∈ 1, 2, 4, 8), read
    /// sequentially: the cheapest way to a small image from a big JPEG.
    pub fn load_jpeg_shrunk(buf: Bytes, shrink: u32, fail_on: FailOn) -> Result<Image, VipsError> {
        init(1);
        let mut out = ptr::null_mut();
        // SAFETY: as in load.
        let rc = unsafe {
            ffi::imgedge_load_jpeg(
                buf.as_ptr() as *const c_void,
                buf.len(),
                to_c(shrink),
                fail_on as c_int,
                &mut out,
            )
        };
        Image::from_load(rc, out, buf, true, "jpegload_buffer")
    }

    /// [`Image::load_jpeg_shrunk`] (with `FailOn::None`) of `buf`, whose full-size load `self`
    /// already is: the header at 1/`shrink` is made from this one where the shim's JPEG reader
    /// decodes the pixels, instead of being parsed again.
    pub fn jpeg_shrunk(&self, buf: Bytes, shrink: u32) -> Result<Image, VipsError> {
        let mut out = ptr::null_mut();
        // SAFETY: live image; buf stays alive inside the returned Image.
        let rc = unsafe {
            ffi::imgedge_load_jpeg_from(
                self.raw(),
                buf.as_ptr() as *const c_void,
                buf.len(),
                to_c(shrink),
                &mut out,
            )
        };
        Image::from_load(rc, out, buf, true, "jpegload_buffer")
    }

    /// Every header field as "name=value" lines, sorted (tests compare headers with it), but
    /// `filename`: libvips names every image made from memory anew ("temp-N").
    #[cfg(test)]
    fn fields(&self) -> Vec<String> {
        // SAFETY: live image; the text is ours to free.
        let text = unsafe { ffi::imgedge_fields(self.raw()) };
        assert!(!text.is_null(), "{}", take_error("fields"));
        // SAFETY: a NUL-terminated string from the shim.
        let mut lines: Vec<String> = unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .lines()
            .filter(|l| !l.starts_with("filename="))
            .map(str::to_string)
            .collect();
        // SAFETY: g_malloc'd by the shim, freed once.
        unsafe { ffi::g_free(text as *mut c_void) };
        lines.sort();
        lines
    }

    /// libvips' thumbnail from a buffer: shrink-on-load where the format allows, then resize to
    /// exactly `width`×`height` (aspect not preserved: the caller did the fitting). Orientation
    /// tags are not applied. The result is sequential.
    pub fn thumbnail(
        buf: Bytes,
        width: u32,
        height: u32,
        fail_on: FailOn,
    ) -> Result<Image, VipsError> {
        Image::thumbnail_frames(buf, width, height, fail_on, false)
    }

    /// [`Image::thumbnail`]; with `pages`, of every frame (stacked, `page-height` = `height`).
    fn thumbnail_frames(
        buf: Bytes,
        width: u32,
        height: u32,
        fail_on: FailOn,
        pages: bool,
    ) -> Result<Image, VipsError> {
        init(1);
        let mut out = ptr::null_mut();
        // SAFETY: as in load.
        let rc = unsafe {
            ffi::imgedge_thumbnail(
                buf.as_ptr() as *const c_void,
                buf.len(),
                to_c(width.max(1)),
                to_c(height.max(1)),
                fail_on as c_int,
                pages as c_int,
                &mut out,
            )
        };
        Image::from_load(rc, out, buf, true, "thumbnail_buffer")
    }

    /// A small in-memory test pattern: band 0 = 255·x/width, band 1 = 255·y/height, band 2 = 64,
    /// band 3 = 255 (alpha); 1 or 2 bands are grey (+ alpha). For tests and benchmarks.
    pub fn test_pattern(width: u32, height: u32, bands: u32) -> Result<Image, VipsError> {
        init(1);
        let mut out = ptr::null_mut();
        // SAFETY: plain C call.
        let rc =
            unsafe { ffi::imgedge_test_image(to_c(width), to_c(height), to_c(bands), &mut out) };
        if rc != 0 {
            return Err(take_error("test_image"));
        }
        let ptr = NonNull::new(out).ok_or_else(|| VipsError::new("test_image: no image"))?;
        Ok(Image {
            ptr,
            keep: Vec::new(),
            sequential: false,
        })
    }

    /// An sRGB (3 or 4 bands) or grey (1 or 2 bands) image from raw 8-bit pixels, row-major and
    /// interleaved, copied into libvips memory. For benchmarks, which generate their inputs.
    pub fn from_pixels(
        pixels: &[u8],
        width: u32,
        height: u32,
        bands: u32,
    ) -> Result<Image, VipsError> {
        init(1);
        let mut out = ptr::null_mut();
        // SAFETY: the shim checks the length and copies the pixels before returning.
        let rc = unsafe {
            ffi::imgedge_from_pixels(
                pixels.as_ptr() as *const c_void,
                pixels.len(),
                to_c(width),
                to_c(height),
                to_c(bands),
                &mut out,
            )
        };
        if rc != 0 {
            return Err(take_error("from_pixels"));
        }
        let ptr = NonNull::new(out).ok_or_else(|| VipsError::new("from_pixels: no image"))?;
        Ok(Image {
            ptr,
            keep: Vec::new(),
            sequential: false,
        })
    }

    /// The pixels as raw 8-bit samples (cast if needed), row-major and interleaved: renders the
    /// whole pipeline. For quality metrics in benchmarks.
    pub fn to_pixels(&self) -> Result<Vec<u8>, VipsError> {
        let mut buf: *mut c_void = ptr::null_mut();
        let mut len: usize = 0;
        // SAFETY: live image; on success buf is a g_malloc'd block of len bytes we free below.
        let rc = unsafe { ffi::imgedge_to_pixels(self.raw(), &mut buf, &mut len) };
        if rc != 0 || buf.is_null() {
            return Err(take_error("write_to_memory"));
        }
        // SAFETY: buf holds len bytes.
        let v = unsafe { std::slice::from_raw_parts(buf as *const u8, len) }.to_vec();
        // SAFETY: allocated by libvips with g_malloc.
        unsafe { ffi::g_free(buf) };
        Ok(v)
    }

    // ---- metadata ------------------------------------------------------------------------

    pub fn width(&self) -> u32 {
        // SAFETY: live image.
        unsafe { ffi::imgedge_width(self.raw()) }.max(0) as u32
    }

    pub fn height(&self) -> u32 {
        // SAFETY: live image.
        unsafe { ffi::imgedge_height(self.raw()) }.max(0) as u32
    }

    pub fn bands(&self) -> u32 {
        // SAFETY: live image.
        unsafe { ffi::imgedge_bands(self.raw()) }.max(0) as u32
    }

    /// libvips `VipsBandFormat` (0 = uchar, 2 = ushort, …).
    pub fn band_format(&self) -> i32 {
        // SAFETY: live image.
        unsafe { ffi::imgedge_band_format(self.raw()) }
    }

    /// libvips' interpretation nickname: `srgb`, `b-w`, `cmyk`, `rgb16`, `grey16`, …
    pub fn interpretation(&self) -> String {
        // SAFETY: static string owned by GLib's enum class (or NULL).
        unsafe {
            let p = ffi::imgedge_interpretation(self.raw());
            if p.is_null() {
                String::from("unknown")
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    /// libvips' alpha test (used for processing).
    pub fn has_alpha(&self) -> bool {
        // SAFETY: live image.
        unsafe { ffi::imgedge_has_alpha(self.raw()) != 0 }
    }

    /// bimg's alpha test: 2 bands B_W, 4 bands non-CMYK, 5 bands CMYK (spec §7 /info).
    pub fn has_alpha_bimg(&self) -> bool {
        // SAFETY: live image.
        unsafe { ffi::imgedge_has_alpha_bimg(self.raw()) != 0 }
    }

    pub fn has_icc(&self) -> bool {
        // SAFETY: live image.
        unsafe { ffi::imgedge_has_icc(self.raw()) != 0 }
    }

    /// EXIF IFD0 Orientation as stored in the file (0 when absent), as bimg reports it.
    pub fn exif_orientation(&self) -> u32 {
        // SAFETY: live image.
        unsafe { ffi::imgedge_exif_orientation(self.raw()) }.clamp(0, 8) as u32
    }

    /// The orientation libvips honours: 1..=8, 1 when absent or reset.
    pub fn orientation(&self) -> u32 {
        // SAFETY: live image.
        let o = unsafe { ffi::imgedge_orientation(self.raw()) };
        if (1..=8).contains(&o) {
            o as u32
        } else {
            1
        }
    }

    /// The libvips loader that opened the image, e.g. `jpegload_buffer`.
    pub fn loader(&self) -> Option<String> {
        // SAFETY: string owned by the image's metadata, copied before returning.
        unsafe {
            let p = ffi::imgedge_loader(self.raw());
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        }
    }

    /// Whether reading this image out of order would fail (see [`Image::random_access`]).
    pub fn is_sequential(&self) -> bool {
        self.sequential
    }

    /// One pixel's band values (decodes the image region; for tests).
    pub fn pixel(&self, x: u32, y: u32) -> Result<Vec<f64>, VipsError> {
        let mut values = [0f64; 16];
        // SAFETY: values has room for 16 doubles, the shim writes at most `max`.
        let n =
            unsafe { ffi::imgedge_getpoint(self.raw(), to_c(x), to_c(y), values.as_mut_ptr(), 16) };
        if n < 0 {
            return Err(take_error("getpoint"));
        }
        Ok(values[..(n as usize).min(16)].to_vec())
    }

    // ---- operations ----------------------------------------------------------------------

    /// Renders the pipeline into memory so it can be read in any order. Free for images that
    /// are not sequential.
    pub fn random_access(&self) -> Result<Image, VipsError> {
        if !self.sequential {
            return Ok(self.clone());
        }
        let mut out = ptr::null_mut();
        // SAFETY: live image; out receives a new reference.
        let rc = unsafe { ffi::imgedge_copy_memory(self.raw(), &mut out) };
        let mut img = self.derived(None, rc, out, "copy_memory")?;
        img.sequential = false;
        // `keep` stays: the pixels now live in libvips memory, but metadata blobs are not
        // guaranteed to be copies, and the request ends soon anyway.
        Ok(img)
    }

    /// Clockwise rotation by 0, 90, 180 or 270 degrees. Needs random access.
    pub fn rotate(&self, angle: u32) -> Result<Image, VipsError> {
        let mut out = ptr::null_mut();
        // SAFETY: live image.
        let rc = unsafe { ffi::imgedge_rot(self.raw(), &mut out, to_c(angle)) };
        self.derived(None, rc, out, "rot")
    }

    /// Mirror: `vertical == false` swaps left and right, `true` top and bottom.
    pub fn flip(&self, vertical: bool) -> Result<Image, VipsError> {
        self.apply("flip", |im, out| {
            // SAFETY: live image.
            unsafe { ffi::imgedge_flip(im, out, vertical as c_int) }
        })
    }

    /// Applies the orientation tag and resets it (libvips autorot).
    pub fn autorot(&self) -> Result<Image, VipsError> {
        self.apply("autorot", |im, out| {
            // SAFETY: live image.
            unsafe { ffi::imgedge_autorot(im, out) }
        })
    }

    /// A copy whose orientation tag (written to EXIF on save) is `orientation`.
    pub fn with_orientation(&self, orientation: u32) -> Result<Image, VipsError> {
        self.apply("set_orientation", |im, out| {
            // SAFETY: live image; the shim changes metadata on a fresh copy only.
            unsafe { ffi::imgedge_set_orientation(im, out, to_c(orientation)) }
        })
    }

    /// Scales by `hscale`×`vscale` (Lanczos3 down, bicubic up, alpha premultiplied). Images in
    /// memory are reduced without libvips' box pre-shrink (see `imgedge_resize` in shim.c).
    pub fn resize(&self, hscale: f64, vscale: f64) -> Result<Image, VipsError> {
        if !(hscale.is_finite() && vscale.is_finite() && hscale > 0.0 && vscale > 0.0) {
            return Err(VipsError::new("resize: bad scale"));
        }
        let mut out = ptr::null_mut();
        // SAFETY: live image.
        let rc = unsafe {
            ffi::imgedge_resize(
                self.raw(),
                &mut out,
                hscale,
                vscale,
                self.sequential as c_int,
            )
        };
        self.derived(None, rc, out, "resize")
    }

    /// One pass of reduce.c alone (resize uses both for 8-bit reductions).
    #[cfg(test)]
    fn reduce_pass(&self, shrink: f64, horizontal: bool) -> Result<Image, VipsError> {
        self.apply("reduce", |im, out| {
            // SAFETY: live image.
            unsafe {
                if horizontal {
                    ffi::imgedge_reduceh_uchar(im, out, shrink)
                } else {
                    ffi::imgedge_reducev_uchar(im, out, shrink)
                }
            }
        })
    }

    /// Resizes to exactly `width`×`height`. libvips rounds each axis; a ±1 px miss is cut or
    /// edge-extended away so callers can rely on the size.
    pub fn resize_to(&self, width: u32, height: u32) -> Result<Image, VipsError> {
        let (w, h) = (width.max(1), height.max(1));
        if (w, h) == (self.width(), self.height()) {
            return Ok(self.clone());
        }
        let img = self.resize(
            w as f64 / self.width().max(1) as f64,
            h as f64 / self.height().max(1) as f64,
        )?;
        if (img.width(), img.height()) == (w, h) {
            return Ok(img);
        }
        if img.width() >= w && img.height() >= h {
            img.extract_area(0, 0, w, h)
        } else {
            img.embed(0, 0, w, h, Extend::Copy, &[])
        }
    }

    pub fn extract_area(
        &self,
        left: u32,
        top: u32,
        width: u32,
        height: u32,
    ) -> Result<Image, VipsError> {
        self.apply("extract_area", |im, out| {
            // SAFETY: live image; libvips checks the bounds.
            unsafe {
                ffi::imgedge_extract_area(im, out, to_c(left), to_c(top), to_c(width), to_c(height))
            }
        })
    }

    /// Places the image at (`left`, `top`) — negative offsets cut it — on a `width`×`height`
    /// canvas filled per `extend` (`background` values used with [`Extend::Background`]).
    pub fn embed(
        &self,
        left: i32,
        top: i32,
        width: u32,
        height: u32,
        extend: Extend,
        background: &[f64],
    ) -> Result<Image, VipsError> {
        self.apply("embed", |im, out| {
            // SAFETY: live image; background is read for `n` values only.
            unsafe {
                ffi::imgedge_embed(
                    im,
                    out,
                    left,
                    top,
                    to_c(width),
                    to_c(height),
                    extend as c_int,
                    if background.is_empty() {
                        ptr::null()
                    } else {
                        background.as_ptr()
                    },
                    background.len() as c_int,
                )
            }
        })
    }

    /// Attention-based smart crop to `width`×`height`. Needs random access.
    pub fn smartcrop(&self, width: u32, height: u32) -> Result<Image, VipsError> {
        self.apply("smartcrop", |im, out| {
            // SAFETY: live image.
            unsafe { ffi::imgedge_smartcrop(im, out, to_c(width), to_c(height)) }
        })
    }

    /// Nearest-neighbour replication: every pixel becomes `xfac`×`yfac` pixels.
    pub fn zoom(&self, xfac: u32, yfac: u32) -> Result<Image, VipsError> {
        self.apply("zoom", |im, out| {
            // SAFETY: live image.
            unsafe { ffi::imgedge_zoom(im, out, to_c(xfac), to_c(yfac)) }
        })
    }

    /// Gaussian blur; `min_ampl` `None` = libvips' default (0.2).
    pub fn gaussblur(&self, sigma: f64, min_ampl: Option<f64>) -> Result<Image, VipsError> {
        let mut out = ptr::null_mut();
        let min_ampl = min_ampl
            .filter(|a| (0.001..=1.0).contains(a))
            .unwrap_or(0.0);
        // SAFETY: live image.
        let rc = unsafe { ffi::imgedge_gaussblur(self.raw(), &mut out, sigma, min_ampl) };
        self.derived(None, rc, out, "gaussblur")
    }

    /// Removes the alpha band by compositing over the RGB colour.
    pub fn flatten(&self, rgb: [u8; 3]) -> Result<Image, VipsError> {
        self.apply("flatten", |im, out| {
            // SAFETY: live image.
            unsafe { ffi::imgedge_flatten(im, out, rgb[0] as f64, rgb[1] as f64, rgb[2] as f64) }
        })
    }

    /// To sRGB, or to B_W when `grey`; images libvips cannot convert are returned unchanged.
    pub fn colourspace(&self, grey: bool) -> Result<Image, VipsError> {
        self.apply("colourspace", |im, out| {
            // SAFETY: live image.
            unsafe { ffi::imgedge_colourspace(im, out, grey as c_int) }
        })
    }

    /// A copy without the embedded ICC profile (pixels untouched).
    pub fn without_icc(&self) -> Result<Image, VipsError> {
        self.apply("remove_icc", |im, out| {
            // SAFETY: live image; metadata changed on a fresh copy.
            unsafe { ffi::imgedge_remove_icc(im, out) }
        })
    }

    /// bimg's tiled text watermark (spec §7 /watermark); all values already resolved.
    #[allow(clippy::too_many_arguments)]
    pub fn text_watermark(
        &self,
        text: &str,
        font: &str,
        width: u32,
        dpi: u32,
        margin: u32,
        opacity: f64,
        replicate: bool,
        rgb: [u8; 3],
    ) -> Result<Image, VipsError> {
        let text = CString::new(text).map_err(|_| VipsError::new("text: contains NUL"))?;
        let font = CString::new(font).map_err(|_| VipsError::new("font: contains NUL"))?;
        let rgb = [rgb[0] as f64, rgb[1] as f64, rgb[2] as f64];
        self.apply("watermark", |im, out| {
            // SAFETY: live image, NUL-terminated strings and a 3-value array outliving the call.
            unsafe {
                ffi::imgedge_text_watermark(
                    im,
                    out,
                    text.as_ptr(),
                    font.as_ptr(),
                    to_c(width),
                    to_c(dpi),
                    to_c(margin),
                    opacity,
                    replicate as c_int,
                    rgb.as_ptr(),
                )
            }
        })
    }

    /// `overlay` composited over this image with its top-left at (`left`, `top`), its alpha
    /// scaled by `opacity`; the result has an alpha band.
    pub fn composite(
        &self,
        overlay: &Image,
        left: i32,
        top: i32,
        opacity: f64,
    ) -> Result<Image, VipsError> {
        let mut out = ptr::null_mut();
        // SAFETY: both images live.
        let rc = unsafe {
            ffi::imgedge_composite(self.raw(), overlay.raw(), &mut out, left, top, opacity)
        };
        self.derived(Some(overlay), rc, out, "composite")
    }

    // ---- saving --------------------------------------------------------------------------

    /// Encodes the image; `strip` drops all metadata (EXIF, XMP, IPTC, ICC).
    pub fn save(&self, saver: &Saver, strip: bool) -> Result<Vec<u8>, VipsError> {
        let mut buf: *mut c_void = ptr::null_mut();
        let mut len: usize = 0;
        let im = self.raw();
        let s = strip as c_int;
        // SAFETY: live image; on success buf is a g_malloc'd block of len bytes we free below.
        let (rc, context) = unsafe {
            match *saver {
                Saver::Jpeg { quality, interlace } => (
                    ffi::imgedge_save_jpeg(
                        im,
                        &mut buf,
                        &mut len,
                        to_c(quality),
                        interlace as c_int,
                        s,
                    ),
                    "jpegsave_buffer",
                ),
                Saver::Png {
                    compression,
                    interlace,
                    palette,
                    quality,
                    effort,
                } => (
                    ffi::imgedge_save_png(
                        im,
                        &mut buf,
                        &mut len,
                        to_c(compression),
                        to_c(zlib::png_level(compression)),
                        interlace as c_int,
                        palette as c_int,
                        to_c(quality),
                        to_c(effort),
                        s,
                    ),
                    "pngsave_buffer",
                ),
                Saver::Webp { quality, lossless } => (
                    ffi::imgedge_save_webp(
                        im,
                        &mut buf,
                        &mut len,
                        to_c(quality),
                        lossless as c_int,
                        s,
                    ),
                    "webpsave_buffer",
                ),
                Saver::Tiff => (
                    ffi::imgedge_save_tiff(im, &mut buf, &mut len, s),
                    "tiffsave_buffer",
                ),
                Saver::Gif => (
                    ffi::imgedge_save_gif(im, &mut buf, &mut len, s),
                    "gifsave_buffer",
                ),
                Saver::Heif { quality, lossless } => (
                    ffi::imgedge_save_heif(
                        im,
                        &mut buf,
                        &mut len,
                        to_c(quality),
                        0,
                        lossless as c_int,
                        s,
                    ),
                    "heifsave_buffer",
                ),
                Saver::Avif { quality, lossless } => (
                    ffi::imgedge_save_heif(
                        im,
                        &mut buf,
                        &mut len,
                        to_c(quality),
                        1,
                        lossless as c_int,
                        s,
                    ),
                    "heifsave_buffer",
                ),
                Saver::Jxl { quality, lossless } => (
                    ffi::imgedge_save_jxl(
                        im,
                        &mut buf,
                        &mut len,
                        to_c(quality),
                        lossless as c_int,
                        s,
                    ),
                    "jxlsave_buffer",
                ),
            }
        };
        // SAFETY: a saver's own result.
        unsafe { take_saved(rc, buf, len, context) }
    }
}

/// A saver's result: its bytes, copied out of the g_malloc'd buffer (then freed), or its error.
///
/// # Safety
/// `buf` and `len` are what a shim saver returning `rc` gave back: on success, `len` readable
/// bytes at `buf` that nothing else frees.
unsafe fn take_saved(
    rc: c_int,
    buf: *mut c_void,
    len: usize,
    context: &str,
) -> Result<Vec<u8>, VipsError> {
    if rc != 0 {
        return Err(take_error(context));
    }
    if buf.is_null() {
        return Err(VipsError(format!("{context}: no output")));
    }
    // SAFETY: per the contract above.
    let bytes = unsafe { std::slice::from_raw_parts(buf as *const u8, len).to_vec() };
    // SAFETY: ours to free, once.
    unsafe { ffi::g_free(buf) };
    Ok(bytes)
}

// ---- animations ----------------------------------------------------------------------------

/// Animated GIF and WebP as libvips holds them: every frame stacked top to bottom in one image
/// ("toilet roll"), the frame height in `page-height`, frame durations in `delay` (ms) and the
/// repeat count in `loop` (0 = forever). gifsave and webpsave write such an image as an
/// animation; every other saver writes the whole stack as one tall picture.
impl Image {
    /// Frames in the file according to its header (1 when the loader does not say). Read from
    /// the header alone: an image opened with [`Image::load`] (first frame only) knows it.
    pub fn n_pages(&self) -> u32 {
        // SAFETY: live image.
        unsafe { ffi::imgedge_n_pages(self.raw()) }.max(1) as u32
    }

    /// The frame height: `page-height` when set and dividing the height, else the height.
    pub fn page_height(&self) -> u32 {
        // SAFETY: live image.
        unsafe { ffi::imgedge_page_height(self.raw()) }.max(0) as u32
    }

    /// Frames in this image (height / page height; 1 for a still image).
    pub fn frames(&self) -> u32 {
        let ph = self.page_height();
        if ph == 0 || ph >= self.height() {
            1
        } else {
            self.height() / ph
        }
    }

    /// Opens every frame of a GIF or WebP (libvips `n=-1`), stacked. Only the header is read
    /// now. Other formats: libvips' error (their loaders may lack the `n` option).
    pub fn load_pages(buf: Bytes, access: Access, fail_on: FailOn) -> Result<Image, VipsError> {
        Image::open(buf, access, fail_on, true)
    }

    /// [`Image::thumbnail`] of every frame: each resampled to exactly `width`×`height`,
    /// stacked, `page-height` = `height`. Sequential.
    pub fn thumbnail_pages(
        buf: Bytes,
        width: u32,
        height: u32,
        fail_on: FailOn,
    ) -> Result<Image, VipsError> {
        Image::thumbnail_frames(buf, width, height, fail_on, true)
    }

    /// `frames` (same size each) stacked top to bottom with `page-height` and `n-pages` set;
    /// the rest of the metadata comes from the first frame.
    pub fn join_frames(frames: &[Image]) -> Result<Image, VipsError> {
        let Some(first) = frames.first() else {
            return Err(VipsError::new("join_frames: no frames"));
        };
        let mut raw: Vec<*mut VipsImage> = frames.iter().map(Image::raw).collect();
        let mut out = ptr::null_mut();
        // SAFETY: every pointer is a live image borrowed for the call; arrayjoin refs them.
        let rc =
            unsafe { ffi::imgedge_join_frames(raw.as_mut_ptr(), to_c(raw.len() as u32), &mut out) };
        let mut joined = first.derived(None, rc, out, "arrayjoin")?;
        for f in &frames[1..] {
            for b in &f.keep {
                if !joined.keep.iter().any(|k| same_buffer(k, b)) {
                    joined.keep.push(b.clone());
                }
            }
            joined.sequential |= f.sequential;
        }
        Ok(joined)
    }

    /// A copy whose `page-height` is `page_height`; the image's height makes it a still image
    /// whatever earlier operations left in the metadata (a turned or zoomed first frame keeps
    /// the old frame height, which savers would otherwise take for an animation).
    pub fn with_page_height(&self, page_height: u32) -> Result<Image, VipsError> {
        let mut out = ptr::null_mut();
        // SAFETY: live image; metadata set on a fresh copy.
        let rc = unsafe { ffi::imgedge_set_page_height(self.raw(), &mut out, to_c(page_height)) };
        self.derived(None, rc, out, "set_page_height")
    }

    /// A copy with the animation timing set: `delays` in ms, one per frame (left as they are
    /// when empty), and the repeat count (`None`: left as it is; 0 = forever).
    pub fn with_animation(
        &self,
        delays: &[i32],
        loop_count: Option<u32>,
    ) -> Result<Image, VipsError> {
        let mut out = ptr::null_mut();
        let n = delays.len().min(c_int::MAX as usize) as c_int;
        let lc = loop_count.map_or(-1, to_c);
        // SAFETY: live image; `delays` is read for `n` values; metadata set on a fresh copy.
        let rc = unsafe {
            ffi::imgedge_set_animation(
                self.raw(),
                &mut out,
                if delays.is_empty() {
                    ptr::null()
                } else {
                    delays.as_ptr()
                },
                n,
                lc,
            )
        };
        self.derived(None, rc, out, "set_animation")
    }

    /// Frame durations in ms (`delay`), empty when the image has none.
    pub fn delays(&self) -> Vec<i32> {
        // SAFETY: live image; the first call only counts.
        let n = unsafe { ffi::imgedge_get_delays(self.raw(), ptr::null_mut(), 0) };
        if n <= 0 {
            return Vec::new();
        }
        let mut v = vec![0 as c_int; n as usize];
        // SAFETY: v has room for n values.
        let n2 = unsafe { ffi::imgedge_get_delays(self.raw(), v.as_mut_ptr(), n) };
        v.truncate(n2.clamp(0, n) as usize);
        v
    }

    /// The repeat count (`loop`, 0 = forever), `None` when the image has none.
    pub fn loop_count(&self) -> Option<u32> {
        // SAFETY: live image.
        let l = unsafe { ffi::imgedge_get_loop(self.raw()) };
        (l >= 0).then_some(l as u32)
    }
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<Image>();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_of(img: &Image) -> Vec<u8> {
        img.save(
            &Saver::Jpeg {
                quality: 90,
                interlace: false,
            },
            false,
        )
        .unwrap()
    }

    fn decode(bytes: &[u8]) -> Image {
        Image::load_bytes(bytes, Access::Random).unwrap()
    }

    #[test]
    fn init_is_idempotent_and_reports_a_version() {
        init(1);
        init(4);
        let v = version();
        assert!(v.starts_with("8."), "{v}");
        assert!(has_operation("jpegsave_buffer"));
        assert!(!has_operation("no_such_operation_here"));
    }

    /// libvips' minor version (8.x), for the tests whose expectations differ between releases.
    fn libvips_minor() -> u32 {
        init(1);
        version()
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .expect("libvips reports 8.x.y")
    }

    #[test]
    fn orc_runs_only_behind_the_guard() {
        // libvips ≤ 8.14 JIT-compiles with liborc, whose code-memory list is unlocked before
        // 0.4.34 (shim.c, "orc"): concurrent resizes corrupted the heap. There, orc must either
        // be reached through the shim's lock or be off. From 8.15 on libvips does not use orc.
        extern "C" {
            fn vips_vector_isenabled() -> c_int;
        }
        init(1);
        let img = Image::test_pattern(400, 300, 3).unwrap();
        let small = img.resize(0.3, 0.3).unwrap();
        let _ = jpeg_of(&small);
        drop(small);
        let minor = libvips_minor();
        // SAFETY: a plain getter of libvips' global state, after vips_init.
        let enabled = unsafe { vips_vector_isenabled() };
        // SAFETY: an atomic read.
        let guarded = unsafe { ffi::imgedge_orc_guarded_calls() };
        if minor < 15 && enabled != 0 {
            assert!(
                guarded > 0,
                "libvips 8.{minor} compiled orc code outside the guard"
            );
        }
    }

    #[test]
    fn alpha_resize_rounds_premultiplied_values_to_nearest() {
        // The 8-bit alpha path (shim.c, imgedge_resize) premultiplies, rounds to 8 bits,
        // reduces, unpremultiplies and rounds again. On a flat image the reduce changes nothing,
        // so each pixel must be round(round(c·a/255)·255/a): truncating either step (or
        // rounding twice) gives another value for some of these.
        for (c, a) in [
            (200u8, 100u8),
            (201, 101),
            (37, 3),
            (255, 254),
            (1, 255),
            (90, 200),
            (255, 255),
            (0, 77),
            (128, 128),
            (254, 1),
        ] {
            // 64 px rows: the SSE2 path (four pixels at a time) does them all.
            let pixels = [c, c / 2, 255 - c, a].repeat(64 * 64);
            let img = Image::from_pixels(&pixels, 64, 64, 4).unwrap();
            let small = img.resize(0.25, 0.25).unwrap();
            drop(img); // the pipeline keeps what it reads from alive
            let premultiplied = (c as f64 * a as f64 / 255.0).round();
            let expected = (premultiplied * 255.0 / a as f64).round().min(255.0);
            let got = small.pixel(8, 8).unwrap();
            assert_eq!((got[0], got[3]), (expected, a as f64), "c {c}, alpha {a}");
        }
    }

    /// Lanczos3 horizontal reduction in f64, edges extended: what reduce.c approximates in
    /// 16-bit fixed point. Output pixel x is centred on input (x + 0.5)·shrink − 0.5.
    fn reduceh_reference(pixels: &[u8], width: usize, bands: usize, shrink: f64) -> Vec<u8> {
        let lanczos3 = |x: f64| {
            if x == 0.0 {
                1.0
            } else if x.abs() >= 3.0 {
                0.0
            } else {
                let px = std::f64::consts::PI * x;
                3.0 * px.sin() * (px / 3.0).sin() / (px * px)
            }
        };
        let height = pixels.len() / (width * bands);
        let out_width = ((width as f64 / shrink).round() as usize).max(1);
        let mut out = Vec::with_capacity(out_width * height * bands);
        for y in 0..height {
            for x in 0..out_width {
                let centre = (x as f64 + 0.5) * shrink - 0.5;
                let (first, last) = (
                    (centre - 3.0 * shrink).floor() as i64 + 1,
                    (centre + 3.0 * shrink).ceil() as i64 - 1,
                );
                for b in 0..bands {
                    let (mut sum, mut weights) = (0.0, 0.0);
                    for i in first..=last {
                        let w = lanczos3((i as f64 - centre) / shrink);
                        let column = i.clamp(0, width as i64 - 1) as usize;
                        sum += w * pixels[(y * width + column) * bands + b] as f64;
                        weights += w;
                    }
                    out.push((sum / weights).round().clamp(0.0, 255.0) as u8);
                }
            }
        }
        out
    }

    /// Rows to columns: a `width`-pixel-wide image becomes a `width`-pixel-tall one.
    fn transpose(pixels: &[u8], width: usize, bands: usize) -> Vec<u8> {
        let height = pixels.len() / (width * bands);
        let mut out = Vec::with_capacity(pixels.len());
        for x in 0..width {
            for y in 0..height {
                let i = (y * width + x) * bands;
                out.extend_from_slice(&pixels[i..i + bands]);
            }
        }
        out
    }

    #[test]
    fn both_reduce_passes_are_lanczos3_within_one_level() {
        // reduce.c replaces libvips' Lanczos3 for 8-bit reductions: both axes, every band
        // count, shrinks from 1 to almost 16 (1, 2 and 3 groups of 8 taps, and the general
        // loop), sizes that leave a tail after the SIMD groups, a single pixel, and a hard
        // 0/255 step whose ringing must clamp, not wrap around.
        let noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|i| ((i * 7919 + (i / 7) * 131) % 256) as u8)
                .collect()
        };
        for horizontal in [true, false] {
            for bands in 1..=4usize {
                for (size, shrink) in [
                    (97usize, 1.0),
                    (97, 1.25),
                    (100, 2.0),
                    (61, 3.2),
                    (203, 4.0),
                    (333, 7.3),
                    (500, 15.9),
                    (1, 1.0),
                    (5, 4.0),
                ] {
                    // `size` along the reduced axis, 3 (horizontal) or 19 (vertical, so that
                    // rows have a SIMD part and a tail) across it.
                    let across = if horizontal { 3 } else { 19 };
                    let step: Vec<u8> = (0..size * across * bands)
                        .map(|i| {
                            if (i / bands) % size < size / 2 {
                                0
                            } else {
                                255
                            }
                        })
                        .collect();
                    for (name, lines) in [("noise", noise(size * across * bands)), ("step", step)] {
                        // `lines` holds `across` lines of `size` pixels along the reduced axis.
                        let (pixels, w, h) = if horizontal {
                            (lines.clone(), size, across)
                        } else {
                            (transpose(&lines, size, bands), across, size)
                        };
                        let img =
                            Image::from_pixels(&pixels, w as u32, h as u32, bands as u32).unwrap();
                        let out = img.reduce_pass(shrink, horizontal).unwrap();
                        let exact = reduceh_reference(&lines, size, bands, shrink);
                        let reduced = exact.len() / (across * bands);
                        let expected = if horizontal {
                            exact
                        } else {
                            transpose(&exact, reduced, bands)
                        };
                        let got = out.to_pixels().unwrap();
                        let what = format!(
                            "{} {name} {size} px / {shrink}, {bands} bands",
                            if horizontal { "horizontal" } else { "vertical" }
                        );
                        let shape = if horizontal {
                            (reduced as u32, across as u32)
                        } else {
                            (across as u32, reduced as u32)
                        };
                        assert_eq!((out.width(), out.height()), shape, "{what}");
                        assert_eq!(got.len(), expected.len(), "{what}");
                        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                            assert!(g.abs_diff(*e) <= 1, "{what}: sample {i} is {g}, exact {e}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_simd_level_reduces_to_the_same_bytes() {
        // reduce.c picks AVX2 at run time where the CPU has it, else SSE2 (or C): the paths
        // must agree to the byte (integer sums are exact), on both axes, every band count, the
        // tap counts with loops of their own (8, 16, 24) and the general one, and lines that
        // leave a 16-sample step and a tail after the 32-sample ones.
        let levels = (1..=2)
            .filter(|&l| set_reduce_simd(l) == l)
            .collect::<Vec<_>>();
        set_reduce_simd(-1);
        if levels.len() < 2 {
            eprintln!("only SIMD level {levels:?} on this CPU: nothing to compare");
        }
        for horizontal in [true, false] {
            for bands in 1..=4u32 {
                for (size, across, shrink) in [
                    (301u32, 50u32, 1.25),
                    (301, 37, 2.0),
                    (640, 19, 3.7),
                    (999, 13, 6.5),
                    (7, 61, 1.0),
                ] {
                    let (w, h) = if horizontal {
                        (size, across)
                    } else {
                        (across, size)
                    };
                    let pixels: Vec<u8> = (0..(w * h * bands) as usize)
                        .map(|i| ((i * 7919 + (i / 13) * 131) % 256) as u8)
                        .collect();
                    let img = Image::from_pixels(&pixels, w, h, bands).unwrap();
                    let outs = levels
                        .iter()
                        .map(|&l| {
                            set_reduce_simd(l);
                            let out = img.reduce_pass(shrink, horizontal).unwrap().to_pixels();
                            set_reduce_simd(-1);
                            out.unwrap()
                        })
                        .collect::<Vec<_>>();
                    for (l, out) in levels.iter().zip(&outs).skip(1) {
                        assert!(
                            out == &outs[0],
                            "level {l} differs from level {}: {} {w}×{h} / {shrink}, {bands} bands",
                            levels[0],
                            if horizontal { "horizontal" } else { "vertical" }
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn reducing_a_part_equals_that_part_of_the_whole() {
        // Regions that start anywhere (an extract after the resize) read the input from the
        // first tap of their first pixel or row; the result must not depend on where a region
        // starts.
        let pixels: Vec<u8> = (0..400 * 4 * 3).map(|i| (i * 37 % 251) as u8).collect();
        let img = Image::from_pixels(&pixels, 400, 4, 3).unwrap();
        let whole = img.reduce_pass(2.5, true).unwrap();
        let all = whole.to_pixels().unwrap();
        for (left, width) in [(0, 7), (13, 20), (101, 59), (155, 5)] {
            let part = whole
                .extract_area(left, 0, width, 4)
                .unwrap()
                .to_pixels()
                .unwrap();
            for y in 0..4usize {
                let row = (y * 160 + left as usize) * 3;
                assert_eq!(
                    &part[y * width as usize * 3..(y + 1) * width as usize * 3],
                    &all[row..row + width as usize * 3],
                    "columns {left}..{} row {y}",
                    left + width
                );
            }
        }
        let tall = Image::from_pixels(&pixels, 4, 400, 3).unwrap();
        let whole = tall.reduce_pass(2.5, false).unwrap();
        let all = whole.to_pixels().unwrap();
        for (top, height) in [(0, 7), (13, 20), (101, 59), (155, 5)] {
            let part = whole
                .extract_area(0, top, 4, height)
                .unwrap()
                .to_pixels()
                .unwrap();
            let from = top as usize * 4 * 3;
            assert_eq!(
                &part[..],
                &all[from..from + part.len()],
                "rows {top}..{}",
                top + height
            );
        }
    }

    #[test]
    fn premultiply_rounds_every_colour_and_alpha_pair_to_nearest() {
        // shim.c's one-pass premultiply: SSE2 for four RGBA pixels at a time, C for the rest
        // of a row and for other band counts. Every (c, a) pair once, in rows of 259 pixels
        // (a tail after the groups of four), against round(c·a/255) in f64.
        for bands in [4usize, 2] {
            let (width, height) = (259usize, 254usize);
            let pair = |i: usize| ((i % 256) as u8, (i / 256) as u8); // (c, a) of pixel i
            let mut pixels = Vec::with_capacity(width * height * bands);
            for i in 0..width * height {
                let (c, a) = pair(i);
                pixels.extend_from_slice(&[c, 255 - c, c / 3][..bands - 1]);
                pixels.push(a);
            }
            let img =
                Image::from_pixels(&pixels, width as u32, height as u32, bands as u32).unwrap();
            let out = img
                .apply("premultiply", |im, out| {
                    // SAFETY: live image.
                    unsafe { ffi::imgedge_premultiply_uchar(im, out) }
                })
                .unwrap()
                .to_pixels()
                .unwrap();
            for (i, (got, given)) in out
                .chunks_exact(bands)
                .zip(pixels.chunks_exact(bands))
                .enumerate()
            {
                let a = given[bands - 1];
                for b in 0..bands - 1 {
                    let exact = (given[b] as f64 * a as f64 / 255.0).round() as u8;
                    assert_eq!(got[b], exact, "{bands} bands, pixel {i} {:?}", pair(i));
                }
                assert_eq!(got[bands - 1], a, "{bands} bands, alpha of pixel {i}");
            }
        }
    }

    #[test]
    fn test_pattern_has_the_requested_shape() {
        for bands in 1..=4 {
            let img = Image::test_pattern(40, 30, bands).unwrap();
            assert_eq!((img.width(), img.height(), img.bands()), (40, 30, bands));
            assert_eq!(img.has_alpha(), bands == 2 || bands == 4);
            assert_eq!(img.has_alpha_bimg(), bands == 2 || bands == 4);
        }
        let img = Image::test_pattern(40, 30, 3).unwrap();
        assert_eq!(img.interpretation(), "srgb");
        let p = img.pixel(39, 0).unwrap();
        assert!(
            p[0] > 240.0 && p[1] < 10.0 && (p[2] - 64.0).abs() < 0.5,
            "{p:?}"
        );
    }

    #[test]
    fn jpeg_round_trip_keeps_size_and_reports_loader() {
        let img = Image::test_pattern(64, 48, 3).unwrap();
        let bytes = jpeg_of(&img);
        assert_eq!(&bytes[..3], &[0xff, 0xd8, 0xff]);
        let back = decode(&bytes);
        assert_eq!((back.width(), back.height(), back.bands()), (64, 48, 3));
        assert_eq!(back.loader().as_deref(), Some("jpegload_buffer"));
        // libvips always writes an EXIF block with an Orientation on JPEG save
        assert_eq!(back.exif_orientation(), 1);
        assert_eq!(back.orientation(), 1);
    }

    #[test]
    fn orientation_tag_is_written_and_read_back() {
        let img = Image::test_pattern(64, 48, 3)
            .unwrap()
            .with_orientation(6)
            .unwrap();
        let back = decode(&jpeg_of(&img));
        assert_eq!(back.exif_orientation(), 6);
        assert_eq!(back.orientation(), 6);
        let upright = back.random_access().unwrap().autorot().unwrap();
        assert_eq!((upright.width(), upright.height()), (48, 64));
        assert_eq!(upright.orientation(), 1);
        let again = decode(&jpeg_of(&upright));
        assert_eq!(again.exif_orientation(), 1);
    }

    #[test]
    fn read_header_borrows_and_reports_metadata() {
        let _errors = crate::ops::vips::error_lock();
        let img = Image::test_pattern(64, 48, 4)
            .unwrap()
            .with_orientation(8)
            .unwrap();
        let png = img.save(&Saver::QUICK_PNG, false).unwrap();
        let h = read_header(&png).unwrap();
        assert_eq!((h.width, h.height, h.bands), (64, 48, 4));
        assert_eq!(h.interpretation, "srgb");
        assert!(h.has_alpha && !h.has_icc);
        assert_eq!(h.loader.as_deref(), Some("pngload_buffer"));
        let jpeg = jpeg_of(
            &Image::test_pattern(10, 10, 1)
                .unwrap()
                .with_orientation(6)
                .unwrap(),
        );
        let h = read_header(&jpeg).unwrap();
        assert_eq!((h.bands, h.interpretation.as_str()), (1, "b-w"));
        assert_eq!((h.exif_orientation, h.orientation), (6, 6));
        assert!(read_header(b"nope").is_err());
        assert!(read_header(&jpeg[..2]).is_err());
    }

    #[test]
    fn garbage_is_an_error_with_libvips_text() {
        let _errors = crate::ops::vips::error_lock();
        let err = Image::load_bytes(b"definitely not an image", Access::Sequential).unwrap_err();
        assert!(!err.message().is_empty());
        assert!(!err.message().contains('\n'));
        let err = Image::load_bytes(&[], Access::Random).unwrap_err();
        assert!(!err.message().is_empty());
    }

    #[test]
    fn truncated_jpeg_never_panics() {
        let _errors = crate::ops::vips::error_lock();
        let bytes = jpeg_of(&Image::test_pattern(64, 48, 3).unwrap());
        for cut in [3, 20, 100, bytes.len() / 2, bytes.len() - 2] {
            let r = Image::load_bytes(&bytes[..cut], Access::Sequential).and_then(|img| {
                img.save(
                    &Saver::Png {
                        compression: 6,
                        interlace: false,
                        palette: false,
                        quality: 75,
                        effort: 7,
                    },
                    false,
                )
            });
            // Either outcome is fine; it must not crash and errors must carry text.
            if let Err(e) = r {
                assert!(!e.message().is_empty());
            }
        }
    }

    #[test]
    fn extract_out_of_bounds_carries_libvips_message() {
        let _errors = crate::ops::vips::error_lock();
        let img = Image::test_pattern(20, 20, 3).unwrap();
        let err = img.extract_area(10, 10, 20, 20).unwrap_err();
        assert!(err.message().contains("extract_area"), "{err}");
        assert!(err.message().contains("bad extract area"), "{err}");
        // The buffer was cleared: a following success leaves no stale text behind.
        assert!(img.extract_area(0, 0, 5, 5).is_ok());
        let err2 = img.rotate(45).unwrap_err();
        assert!(!err2.message().contains("extract_area"), "{err2}");
    }

    #[test]
    fn rotate_flip_and_resize() {
        let img = Image::test_pattern(40, 20, 3).unwrap();
        let r = img.rotate(90).unwrap();
        assert_eq!((r.width(), r.height()), (20, 40));
        // After a clockwise quarter turn the old top-right corner (x high, y low) is bottom-right.
        let p = r.pixel(19, 39).unwrap();
        assert!(p[0] > 200.0 && p[1] < 20.0, "{p:?}");
        let f = img.flip(false).unwrap();
        assert!(f.pixel(0, 0).unwrap()[0] > 200.0);
        let v = img.flip(true).unwrap();
        assert!(v.pixel(0, 0).unwrap()[1] > 200.0);
        for (w, h) in [(10, 5), (7, 3), (81, 41), (40, 5), (3, 60)] {
            let s = img.resize_to(w, h).unwrap();
            assert_eq!((s.width(), s.height()), (w, h));
        }
    }

    #[test]
    fn embed_extends_and_zoom_replicates() {
        let img = Image::test_pattern(10, 10, 3).unwrap();
        let e = img
            .embed(5, 5, 20, 20, Extend::Background, &[255.0, 0.0, 0.0])
            .unwrap();
        assert_eq!((e.width(), e.height()), (20, 20));
        assert_eq!(e.pixel(0, 0).unwrap(), vec![255.0, 0.0, 0.0]);
        let w = img.embed(5, 5, 20, 20, Extend::White, &[]).unwrap();
        assert_eq!(w.pixel(0, 0).unwrap(), vec![255.0, 255.0, 255.0]);
        let z = img.zoom(3, 3).unwrap();
        assert_eq!((z.width(), z.height()), (30, 30));
        assert_eq!(z.pixel(29, 29).unwrap(), img.pixel(9, 9).unwrap());
    }

    #[test]
    fn savers_produce_their_formats() {
        let img = Image::test_pattern(32, 24, 3).unwrap();
        let cases: Vec<(Saver, &[u8])> = vec![
            (
                Saver::Jpeg {
                    quality: 75,
                    interlace: true,
                },
                &[0xff, 0xd8],
            ),
            (
                Saver::Png {
                    compression: 6,
                    interlace: true,
                    palette: true,
                    quality: 75,
                    effort: 3,
                },
                &[0x89, b'P', b'N', b'G'],
            ),
            (
                Saver::Webp {
                    quality: 75,
                    lossless: false,
                },
                b"RIFF",
            ),
            (Saver::Tiff, &[]),
            (Saver::Gif, b"GIF8"),
        ];
        for (saver, magic) in cases {
            let bytes = img.save(&saver, true).unwrap();
            assert!(bytes.starts_with(magic), "{saver:?}");
            let back = decode(&bytes);
            assert_eq!((back.width(), back.height()), (32, 24), "{saver:?}");
        }
        for saver in [
            Saver::Heif {
                quality: 50,
                lossless: false,
            },
            Saver::Avif {
                quality: 50,
                lossless: false,
            },
            Saver::Jxl {
                quality: 75,
                lossless: false,
            },
        ] {
            if !saver.available() {
                continue;
            }
            match img.save(&saver, true) {
                Ok(bytes) => {
                    let back = decode(&bytes);
                    assert_eq!((back.width(), back.height()), (32, 24), "{saver:?}");
                }
                // An encoder plugin may be missing even when the saver exists.
                Err(e) => assert!(!e.message().is_empty()),
            }
        }
    }

    #[test]
    fn save_errors_carry_the_encoder_message() {
        let _errors = crate::ops::vips::error_lock();
        let img = Image::test_pattern(17000, 2, 3).unwrap();
        let err = img
            .save(
                &Saver::Webp {
                    quality: 75,
                    lossless: false,
                },
                false,
            )
            .unwrap_err();
        assert!(err.message().contains("webpsave"), "{err}");
    }

    #[test]
    fn sequential_images_become_random_access_on_demand() {
        let bytes = jpeg_of(&Image::test_pattern(64, 48, 3).unwrap());
        let img = Image::load_bytes(&bytes, Access::Sequential).unwrap();
        assert!(img.is_sequential());
        let mem = img.random_access().unwrap();
        assert!(!mem.is_sequential());
        let r = mem.rotate(270).unwrap().smartcrop(20, 20).unwrap();
        assert_eq!((r.width(), r.height()), (20, 20));
    }

    #[test]
    fn shrink_on_load_paths_hit_exact_sizes() {
        let bytes = jpeg_of(&Image::test_pattern(640, 480, 3).unwrap());
        let buf: Bytes = Bytes::copy_from_slice(&bytes);
        let j = Image::load_jpeg_shrunk(buf.clone(), 4, FailOn::None).unwrap();
        assert_eq!((j.width(), j.height()), (160, 120));
        let t = Image::thumbnail(buf.clone(), 101, 37, FailOn::None).unwrap();
        assert_eq!((t.width(), t.height()), (101, 37));
        drop(buf);
        // The thumbnail still reads the input buffer: it must have been kept alive.
        let out = t.save(&Saver::QUICK_PNG, false).unwrap();
        assert_eq!(decode(&out).width(), 101);
    }

    #[test]
    fn baseline_jpeg_pixels_are_the_bytes_libvips_decodes() {
        // jpegpixels.c decodes the pixels of baseline JPEGs loaded with FailOn::None; any other
        // fail_on takes libvips' decoder. Same libjpeg settings, so the same bytes: RGB and
        // grey, every DCT scale, odd sizes.
        // SAFETY: reads a counter.
        let used_before = unsafe { ffi::imgedge_jpeg_pixels_used() };
        for bands in [3, 1] {
            let bytes = jpeg_of(&Image::test_pattern(333, 211, bands).unwrap());
            let buf: Bytes = Bytes::copy_from_slice(&bytes);
            for shrink in [1, 2, 4, 8] {
                let ours = Image::load_jpeg_shrunk(buf.clone(), shrink, FailOn::None).unwrap();
                let libvips =
                    Image::load_jpeg_shrunk(buf.clone(), shrink, FailOn::Truncated).unwrap();
                let shape = |i: &Image| (i.width(), i.height(), i.bands(), i.interpretation());
                assert_eq!(shape(&ours), shape(&libvips), "{bands} bands, 1/{shrink}");
                assert!(
                    ours.to_pixels().unwrap() == libvips.to_pixels().unwrap(),
                    "{bands} bands, 1/{shrink}: pixels differ"
                );
            }
        }
        // SAFETY: reads a counter.
        let used = unsafe { ffi::imgedge_jpeg_pixels_used() } - used_before;
        assert!(
            used >= 8,
            "jpegpixels.c decoded {used} of the 8 FailOn::None loads"
        );
    }

    /// `jpeg` with `markers` (marker byte, payload) inserted after its SOI.
    fn with_markers(jpeg: &[u8], markers: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        for (marker, payload) in markers {
            out.extend_from_slice(&[0xff, *marker]);
            out.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
            out.extend_from_slice(payload);
        }
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    /// What a shim saver (`save(&mut buf, &mut len)`, 0 on success) wrote.
    fn saved_by(
        context: &str,
        save: impl FnOnce(&mut *mut c_void, &mut usize) -> c_int,
    ) -> Result<Vec<u8>, VipsError> {
        let mut buf: *mut c_void = ptr::null_mut();
        let mut len = 0;
        let rc = save(&mut buf, &mut len);
        // SAFETY: the result goes to take_saved as the saver left it.
        unsafe { take_saved(rc, buf, len, context) }
    }

    /// A `w`×`h` JPEG with `markers` (and the EXIF libvips writes), decoded, and what the
    /// savers' tests write from it: as loaded, resized, re-oriented (EXIF rebuilt), grey.
    fn saver_inputs(w: u32, h: u32, bands: u32, markers: &[(u8, Vec<u8>)]) -> Vec<Image> {
        let jpeg = jpeg_of(&Image::test_pattern(w, h, bands).unwrap());
        let loaded = decode(&with_markers(&jpeg, markers));
        assert!(
            loaded.has_icc(),
            "{w}×{h}: the test's ICC profile was not read"
        );
        vec![
            loaded.clone(),
            loaded.resize(0.6, 0.6).unwrap_or_else(|_| loaded.clone()),
            loaded.with_orientation(6).unwrap(),
            loaded.colourspace(true).unwrap(),
        ]
    }

    /// An RGB display profile of `len` bytes: a header lcms accepts, no tags, then bytes that
    /// do not compress (libpng cannot read an iCCP chunk shorter than its keyword buffer back:
    /// "too short"). With `d50` the PCS illuminant is D50, without which libpng refuses to
    /// write it (and libvips drops it).
    fn display_profile(len: usize, d50: bool) -> Vec<u8> {
        let mut icc = vec![0u8; len];
        icc[..4].copy_from_slice(&(len as u32).to_be_bytes());
        icc[8..12].copy_from_slice(&[2, 0x10, 0, 0]);
        icc[12..16].copy_from_slice(b"mntr");
        icc[16..20].copy_from_slice(b"RGB ");
        icc[20..24].copy_from_slice(b"XYZ ");
        icc[36..40].copy_from_slice(b"acsp");
        if d50 {
            icc[68..80].copy_from_slice(&[0, 0, 0xf6, 0xd6, 0, 1, 0, 0, 0, 0, 0xd3, 0x2d]);
        }
        let mut x = 1u32;
        for b in &mut icc[132..] {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *b = (x >> 24) as u8;
        }
        icc
    }

    /// JPEG APP markers of an XMP packet and, in one marker, `profile`.
    fn xmp_and_icc_markers(profile: &[u8]) -> [(u8, Vec<u8>); 2] {
        let mut xmp = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
        xmp.extend_from_slice(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF/></x:xmpmeta>");
        let mut icc = b"ICC_PROFILE\0\x01\x01".to_vec();
        icc.extend_from_slice(profile);
        [(0xe1, xmp), (0xe2, icc)]
    }

    /// libvips' own jpegsave, whatever jpegwrite.c would do.
    fn save_jpeg_libvips(img: &Image, quality: u32, strip: bool) -> Result<Vec<u8>, VipsError> {
        // SAFETY: a live image.
        saved_by("jpegsave_buffer", |buf, len| unsafe {
            ffi::imgedge_save_jpeg_libvips(img.raw(), buf, len, to_c(quality), 0, strip as c_int)
        })
    }

    #[test]
    fn jpegs_are_the_bytes_libvips_writes() {
        // jpegwrite.c writes baseline 8-bit sRGB and one-band JPEGs from the calling thread
        // (any libvips built with libexif); the bytes must be libvips' own: markers (EXIF
        // rebuilt, XMP, IPTC, an ICC profile over two markers), 4:2:0 and 4:4:4, every strip
        // height, stripped or not.
        let xmp = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF/></x:xmpmeta>".to_vec();
        let mut iptc = b"Photoshop 3.0\0".to_vec();
        iptc.extend_from_slice(b"8BIM\x04\x04\0\0\0\0\0\x05\x1c\x02\x05\0\0");
        // A profile too big for one marker: libvips reassembles it on load and splits it again
        // on save; grey images drop it.
        let icc = display_profile(70_000, false);
        let mut icc_markers = vec![];
        for (n, part) in icc.chunks(65_519).enumerate() {
            let mut m = b"ICC_PROFILE\0".to_vec();
            m.extend_from_slice(&[n as u8 + 1, 2]);
            m.extend_from_slice(part);
            icc_markers.push((0xe2, m));
        }
        let mut xmp_marker = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
        xmp_marker.extend_from_slice(&xmp);
        let mut markers = vec![(0xe1, xmp_marker), (0xed, iptc)];
        markers.extend(icc_markers);
        // SAFETY: reads a counter.
        let used_before = unsafe { ffi::imgedge_jpeg_write_used() };
        let mut saves = 0;
        for (w, h, bands) in [(333, 211, 3), (1, 1, 3), (17, 1000, 1), (640, 33, 3)] {
            let variants = saver_inputs(w, h, bands, &markers);
            for img in &variants {
                for (quality, strip) in [
                    (75, false),
                    (75, true),
                    (90, false),
                    (1, false),
                    (100, true),
                ] {
                    let ours = img
                        .save(
                            &Saver::Jpeg {
                                quality,
                                interlace: false,
                            },
                            strip,
                        )
                        .unwrap();
                    let libvips = save_jpeg_libvips(img, quality, strip).unwrap();
                    let icc_markers = ours.windows(12).filter(|w| w == b"ICC_PROFILE\0").count();
                    let expected = if strip || img.bands() == 1 { 0 } else { 2 };
                    assert_eq!(
                        icc_markers,
                        expected,
                        "{w}×{h}×{} strip {strip}",
                        img.bands()
                    );
                    assert!(
                        ours == libvips,
                        "{w}×{h}×{} Q{quality} strip {strip}: {} bytes, libvips {}",
                        img.bands(),
                        ours.len(),
                        libvips.len()
                    );
                    saves += 1;
                }
            }
        }
        // SAFETY: reads a counter.
        let used = unsafe { ffi::imgedge_jpeg_write_used() } - used_before;
        assert!(
            used >= saves,
            "jpegwrite.c wrote {used} of the {saves} JPEGs"
        );
    }

    /// libvips' own webpsave, whatever webpwrite.c would do.
    fn save_webp_libvips(img: &Image, quality: u32, lossless: bool, strip: bool) -> Vec<u8> {
        // SAFETY: a live image.
        saved_by("webpsave_buffer", |buf, len| unsafe {
            let (q, lossless, strip) = (to_c(quality), lossless as c_int, strip as c_int);
            ffi::imgedge_save_webp_libvips(img.raw(), buf, len, q, lossless, strip)
        })
        .unwrap()
    }

    /// A WebP file's chunks (RIFF: fourcc, little-endian size, data padded to even).
    fn riff_chunks(webp: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
        assert!(webp.starts_with(b"RIFF") && &webp[8..12] == b"WEBP");
        let (mut at, mut out) = (12, vec![]);
        while at + 8 <= webp.len() {
            let name: [u8; 4] = webp[at..at + 4].try_into().unwrap();
            let size = u32::from_le_bytes(webp[at + 4..at + 8].try_into().unwrap()) as usize;
            out.push((name, webp[at + 8..at + 8 + size].to_vec()));
            at += 8 + size + size % 2;
        }
        assert_eq!(at, webp.len(), "trailing bytes");
        out
    }

    #[test]
    fn webps_are_the_bytes_libvips_writes() {
        // webpwrite.c encodes single-frame lossy 8-bit sRGB (3 or 4 bands) from the calling
        // thread (any libvips built with libexif); the bytes must be libvips' own: the ICC
        // profile, the EXIF block rebuilt (orientation changed) and XMP as chunks unless
        // stripped, RGB and RGBA, every strip height, the qualities at both ends. Grey and
        // lossless stay libvips'.
        let markers = xmp_and_icc_markers(&display_profile(600, false));
        // SAFETY: reads a counter.
        let used_before = unsafe { ffi::imgedge_webp_write_used() };
        let mut ours_expected = 0;
        for (w, h) in [(333, 211), (1, 1), (17, 1000), (640, 33)] {
            let mut variants = saver_inputs(w, h, 3, &markers);
            variants.push(Image::test_pattern(w, h, 4).unwrap());
            for img in &variants {
                for (quality, lossless, strip) in [
                    (75, false, false),
                    (75, false, true),
                    (0, false, false),
                    (100, false, true),
                    (80, true, false),
                ] {
                    let ours = img.save(&Saver::Webp { quality, lossless }, strip).unwrap();
                    let libvips = save_webp_libvips(img, quality, lossless, strip);
                    let shown = format!(
                        "{w}×{h}×{} Q{quality} lossless {lossless} strip {strip}: {} bytes, libvips {}",
                        img.bands(),
                        ours.len(),
                        libvips.len()
                    );
                    let names: Vec<_> = riff_chunks(&ours).into_iter().map(|(n, _)| n).collect();
                    if strip {
                        // libvips 8.14.1 ignores `strip` in webpsave (fixed in 8.14.2) and
                        // writes the metadata anyway: the image chunks must be its own.
                        let image = |b: &[u8]| -> Vec<_> {
                            riff_chunks(b)
                                .into_iter()
                                .filter(|(n, _)| matches!(n, b"VP8 " | b"VP8L" | b"ALPH"))
                                .collect()
                        };
                        assert!(image(&ours) == image(&libvips), "{shown}");
                        for meta in [b"ICCP", b"EXIF", b"XMP "] {
                            assert!(!names.contains(meta), "{shown}: {names:?}");
                        }
                    } else {
                        assert!(ours == libvips, "{shown}");
                        if img.has_icc() {
                            for meta in [b"ICCP", b"EXIF", b"XMP "] {
                                assert!(names.contains(meta), "{shown}: {names:?}");
                            }
                        }
                    }
                    if !lossless && img.bands() != 1 {
                        ours_expected += 1;
                    }
                }
            }
        }
        // SAFETY: reads a counter.
        let used = unsafe { ffi::imgedge_webp_write_used() } - used_before;
        assert_eq!(used, ours_expected, "webpwrite.c wrote {used} WebPs");
    }

    /// libvips' own pngsave, whatever pngwrite.c would do.
    fn save_png_libvips(img: &Image, compression: u32, strip: bool) -> Vec<u8> {
        // SAFETY: a live image.
        saved_by("pngsave_buffer", |buf, len| unsafe {
            let (c, strip) = (to_c(compression), strip as c_int);
            ffi::imgedge_save_png_libvips(img.raw(), buf, len, c, 0, 0, 75, 7, strip)
        })
        .unwrap()
    }

    /// A PNG file's chunks, each CRC checked, with the data of zTXt and iCCP inflated.
    fn png_chunks(png: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        let (mut at, mut out) = (8, vec![]);
        while at + 12 <= png.len() {
            let size = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let typed = &png[at + 4..at + 8 + size];
            let crc = u32::from_be_bytes(png[at + 8 + size..at + 12 + size].try_into().unwrap());
            // SAFETY: a slice's pointer and length.
            let computed = unsafe { libz_rs_sys::crc32(0, typed.as_ptr(), typed.len() as u32) };
            assert_eq!(
                computed as u32,
                crc,
                "CRC of {:?}",
                String::from_utf8_lossy(&typed[..4])
            );
            let name: [u8; 4] = typed[..4].try_into().unwrap();
            let mut data = typed[4..].to_vec();
            if matches!(&name, b"zTXt" | b"iCCP") {
                let key = data.iter().position(|&b| b == 0).unwrap();
                assert_eq!(data[key + 1], 0, "compression method");
                let inflated = zlib::inflate(&data[key + 2..]);
                data.truncate(key + 1);
                data.extend_from_slice(&inflated);
            }
            out.push((name, data));
            at += 12 + size;
        }
        assert_eq!(at, png.len(), "trailing bytes");
        out
    }

    /// An RGB PNG of the test pattern with `extra` chunks after IHDR.
    fn png_with_chunks(w: u32, h: u32, extra: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
        let pixels = Image::test_pattern(w, h, 3).unwrap().to_pixels().unwrap();
        let (w, h) = (w as usize, h as usize);
        png_file_with(
            w,
            h,
            2,
            8,
            extra,
            &zlib(&png_rows(&pixels, w, h, 3, &[0])),
            0,
        )
    }

    #[test]
    fn pngs_read_back_as_the_pngs_libvips_writes() {
        // pngwrite.c writes 8-bit RGB(A) and grey(+alpha) PNGs from the calling thread, deflated
        // by libdeflate: the bytes differ from libvips', what they hold must not. Read back by
        // libvips, every pixel and every metadata field (EXIF rebuilt after a rotation, XMP, the
        // ICC profile where libpng takes it, comments, resolution) must be libvips' own; on
        // 8.14 the chunks too, in libvips' order (libpng's second eXIf after the image data
        // aside). Strip heights, 1×1, every compression, stripped or not.
        let commented = decode(&png_with_chunks(
            50,
            40,
            &[
                (b"tEXt", b"Comment\0hello".to_vec()),
                (b"zTXt", [&b"Title\0\0"[..], &zlib(b"title")].concat()),
            ],
        ));
        assert!(commented
            .fields()
            .iter()
            .any(|f| f.starts_with("png-comment-1-Title=title")));
        // SAFETY: reads a counter.
        let used_before = unsafe { ffi::imgedge_png_write_used() };
        let mut saves = 0;
        let mut icc_written = 0;
        for (w, h, d50) in [
            (333, 211, true),
            (1, 1, true),
            (17, 1000, false),
            (640, 33, false),
        ] {
            // libpng writes the profile with the D50 PCS illuminant, and refuses it (so libvips
            // drops it) without, or on grey images.
            let markers = xmp_and_icc_markers(&display_profile(600, d50));
            let mut variants = saver_inputs(w, h, 3, &markers);
            for bands in [4, 2, 1] {
                variants.push(Image::test_pattern(w, h, bands).unwrap());
            }
            if w == 333 {
                variants.push(commented.clone());
            }
            for img in &variants {
                for (compression, strip) in
                    [(6, false), (6, true), (0, false), (1, false), (9, true)]
                {
                    let png = |compression| Saver::Png {
                        compression,
                        interlace: false,
                        palette: false,
                        quality: 75,
                        effort: 7,
                    };
                    let ours = img.save(&png(compression), strip).unwrap();
                    let libvips = save_png_libvips(img, compression, strip);
                    let shown = format!(
                        "{}×{}×{} compression {compression} strip {strip}: {} bytes, libvips {}",
                        img.width(),
                        img.height(),
                        img.bands(),
                        ours.len(),
                        libvips.len()
                    );
                    let (a, b) = (decode(&ours), decode(&libvips));
                    // Comments as a set: libvips 8.16's saver (libspng) writes them in reverse
                    // order, so they read back with each other's numbers; ours keep the order.
                    let fields = |img: &Image| {
                        let mut f: Vec<String> = img
                            .fields()
                            .into_iter()
                            .map(|f| match f.strip_prefix("png-comment-") {
                                Some(c) => format!("png-comment-{}", &c[c.find('-').unwrap()..]),
                                None => f,
                            })
                            .collect();
                        f.sort();
                        f
                    };
                    assert_eq!(fields(&a), fields(&b), "{shown}");
                    assert!(a.to_pixels().unwrap() == b.to_pixels().unwrap(), "{shown}");
                    let chunks = png_chunks(&ours);
                    let count = |name: &[u8; 4]| chunks.iter().filter(|(n, _)| n == name).count();
                    assert!(count(b"eXIf") <= 1, "{shown}");
                    assert_eq!(count(b"iCCP"), a.has_icc() as usize, "{shown}");
                    icc_written += count(b"iCCP");
                    if libvips_minor() == 14 {
                        // libpng's rows: every row filtered as libpng filters it.
                        let rows = |png: &[u8]| zlib::png_image_data(png).1;
                        assert!(rows(&ours) == rows(&libvips), "{shown}: rows");
                        // libvips' chunks, but one run of IDATs, and without libpng 1.6.39's
                        // eXIf repeated after them.
                        let of = |chunks: Vec<([u8; 4], Vec<u8>)>| -> Vec<_> {
                            let mut seen_idat = false;
                            chunks
                                .into_iter()
                                .filter(|(n, _)| {
                                    let keep = !seen_idat || !matches!(n, b"IDAT" | b"eXIf");
                                    seen_idat |= n == b"IDAT";
                                    keep
                                })
                                .map(|(n, d)| (n, if &n == b"IDAT" { vec![] } else { d }))
                                .collect()
                        };
                        let (a, b) = (of(chunks), of(png_chunks(&libvips)));
                        let list = |c: &[([u8; 4], Vec<u8>)]| -> Vec<String> {
                            c.iter()
                                .map(|(n, d)| format!("{} {}", String::from_utf8_lossy(n), d.len()))
                                .collect()
                        };
                        assert!(a == b, "{shown}: {:?}, libvips {:?}", list(&a), list(&b));
                    }
                    // 8 and 9 are libvips' (pngwrite.c: zlib's long chains beat libdeflate).
                    saves += (compression <= 7) as i32;
                }
            }
        }
        // SAFETY: reads a counter.
        let used = unsafe { ffi::imgedge_png_write_used() } - used_before;
        assert_eq!(used, saves, "pngwrite.c wrote {used} of the {saves} PNGs");
        assert!(icc_written > 0, "no PNG carried the profile");
    }

    #[test]
    fn pngs_pngwrite_does_not_take_are_libvips_own() {
        // Adam7, palettes, compression 8 and 9, 16-bit and images above 32 MiB of filtered rows
        // (held whole by pngwrite.c; libpng streams them) are written by libvips' saver.
        let png = |compression, interlace, palette| Saver::Png {
            compression,
            interlace,
            palette,
            quality: 75,
            effort: 7,
        };
        let small = Image::test_pattern(64, 48, 4).unwrap();
        let big = Image::test_pattern(2900, 2900, 4).unwrap();
        let wide = decode(&png16(40, 30));
        assert_eq!(wide.band_format(), 2, "VIPS_FORMAT_USHORT");
        for (img, saver, what) in [
            (&small, png(6, true, false), "Adam7"),
            (&small, png(6, false, true), "palette"),
            (&small, png(8, false, false), "compression 8"),
            (&wide, png(6, false, false), "16-bit"),
            (&big, png(0, false, false), "2900×2900 RGBA"),
        ] {
            // SAFETY: reads a counter.
            let before = unsafe { ffi::imgedge_png_write_used() };
            let bytes = img.save(&saver, true).unwrap();
            // SAFETY: reads a counter.
            assert_eq!(unsafe { ffi::imgedge_png_write_used() }, before, "{what}");
            let names = png_chunks(&bytes);
            let ihdr = &names[0].1;
            assert_eq!(ihdr[12], interlaced(&saver), "{what}");
            let back = decode(&bytes);
            assert_eq!(
                (back.width(), back.height()),
                (img.width(), img.height()),
                "{what}"
            );
            if matches!(saver, Saver::Png { palette: true, .. }) {
                assert!(names.iter().any(|(n, _)| n == b"PLTE"), "{what}");
            }
        }
        // Once below the bound, the same image is ours.
        // SAFETY: reads a counter.
        let before = unsafe { ffi::imgedge_png_write_used() };
        small.save(&png(6, false, false), true).unwrap();
        // SAFETY: reads a counter.
        assert_eq!(unsafe { ffi::imgedge_png_write_used() }, before + 1);
    }

    /// A 16-bit RGB PNG, unfiltered rows of a gradient.
    fn png16(w: usize, h: usize) -> Vec<u8> {
        let mut rows = vec![];
        for y in 0..h {
            rows.push(0u8);
            for x in 0..w {
                for v in [x * 1500, y * 2000, 40_000] {
                    rows.extend_from_slice(&(v as u16).to_be_bytes());
                }
            }
        }
        png_file_with(w, h, 2, 16, &[], &zlib(&rows), 0)
    }

    fn interlaced(saver: &Saver) -> u8 {
        matches!(
            saver,
            Saver::Png {
                interlace: true,
                ..
            }
        ) as u8
    }

    #[test]
    fn jpegs_jpegwrite_does_not_apply_to_or_cannot_write_fail_as_libvips_fails() {
        // RGBA (flattened by libvips' saver) and progressive stay libvips'; so do qualities out of
        // range, with libvips' error. Pixels that fail to compute and images libjpeg refuses are
        // errors from either writer, never a crash or a partial file.
        let _errors = crate::ops::vips::error_lock();
        let jpeg = |quality, interlace| Saver::Jpeg { quality, interlace };
        let rgba = Image::test_pattern(40, 30, 4).unwrap();
        assert!(
            rgba.save(&jpeg(75, false), false).unwrap()
                == save_jpeg_libvips(&rgba, 75, false).unwrap()
        );
        let img = Image::test_pattern(40, 30, 3).unwrap();
        // libvips ignores an out-of-range Q (with a GLib warning): encode.rs refuses it first.
        assert!(
            img.save(&jpeg(0, false), false).unwrap() == save_jpeg_libvips(&img, 0, false).unwrap()
        );
        let progressive = img.save(&jpeg(75, true), false).unwrap();
        assert_eq!(decode(&progressive).width(), 40);
        let wide = Image::test_pattern(70_000, 2, 3).unwrap();
        let err = wide
            .save(
                &Saver::Jpeg {
                    quality: 75,
                    interlace: false,
                },
                false,
            )
            .unwrap_err();
        assert!(err.message().contains("65500"), "{err}");
        assert!(save_jpeg_libvips(&wide, 75, false).is_err());
        // A JPEG cut in half, read with errors failing the load: the pixels fail mid-write.
        let whole = jpeg_of(&Image::test_pattern(300, 400, 3).unwrap());
        let cut: Bytes = Bytes::copy_from_slice(&whole[..whole.len() / 2]);
        for save in [true, false] {
            let img = Image::load(cut.clone(), Access::Sequential, FailOn::Truncated).unwrap();
            let result = if save {
                img.save(
                    &Saver::Jpeg {
                        quality: 75,
                        interlace: false,
                    },
                    false,
                )
            } else {
                save_jpeg_libvips(&img, 75, false)
            };
            assert!(result.is_err(), "a truncated source saved (ours: {save})");
        }
    }

    #[test]
    fn shrunk_jpeg_headers_made_from_the_full_one_are_libvips_own() {
        // `jpeg_shrunk` makes the 1/shrink header from the request's full-size one instead of
        // parsing the file again: every field (size rounded down, resolution, EXIF tags, ICC,
        // XMP, loader, chroma) and every pixel must be what libvips' shrunk load gives.
        let mut xmp = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
        xmp.extend_from_slice(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>");
        let mut icc = vec![0u8; 600];
        icc[..4].copy_from_slice(&600u32.to_be_bytes());
        icc[12..20].copy_from_slice(b"mntrRGB ");
        icc[20..24].copy_from_slice(b"XYZ ");
        icc[36..40].copy_from_slice(b"acsp");
        let mut icc_marker = b"ICC_PROFILE\0\x01\x01".to_vec();
        icc_marker.extend_from_slice(&icc);
        // SAFETY: reads a counter.
        let reused_before = unsafe { ffi::imgedge_jpeg_headers_reused() };
        let mut shrunk = 0;
        for (w, h, bands) in [(1001, 777, 3), (333, 211, 1), (64, 48, 3)] {
            let plain = jpeg_of(&Image::test_pattern(w, h, bands).unwrap());
            let marked = with_markers(&plain, &[(0xe1, xmp.clone()), (0xe2, icc_marker.clone())]);
            for bytes in [plain, marked] {
                let buf = Bytes::from(bytes);
                for shrink in [2, 4, 8] {
                    let full = Image::load(buf.clone(), Access::Sequential, FailOn::None).unwrap();
                    let ours = full.jpeg_shrunk(buf.clone(), shrink).unwrap();
                    let libvips =
                        Image::load_jpeg_shrunk(buf.clone(), shrink, FailOn::None).unwrap();
                    assert_eq!(
                        ours.fields(),
                        libvips.fields(),
                        "{w}×{h}×{bands} 1/{shrink}"
                    );
                    assert!(
                        ours.to_pixels().unwrap() == libvips.to_pixels().unwrap(),
                        "{w}×{h}×{bands} 1/{shrink}: pixels differ"
                    );
                    shrunk += 1;
                }
            }
        }
        // SAFETY: reads a counter.
        let reused = unsafe { ffi::imgedge_jpeg_headers_reused() } - reused_before;
        assert_eq!(reused, shrunk, "headers made from the full one");
        // A progressive JPEG is not the shim reader's: opened again, same answer.
        let img = Image::test_pattern(200, 100, 3).unwrap();
        let progressive = Bytes::from(
            img.save(
                &Saver::Jpeg {
                    quality: 75,
                    interlace: true,
                },
                false,
            )
            .unwrap(),
        );
        let full = Image::load(progressive.clone(), Access::Sequential, FailOn::None).unwrap();
        let ours = full.jpeg_shrunk(progressive.clone(), 2).unwrap();
        let libvips = Image::load_jpeg_shrunk(progressive, 2, FailOn::None).unwrap();
        assert_eq!(ours.fields(), libvips.fields());
        // SAFETY: reads a counter.
        assert_eq!(
            unsafe { ffi::imgedge_jpeg_headers_reused() } - reused_before,
            shrunk
        );
    }

    #[test]
    fn damaged_baseline_jpegs_decode_as_libvips_decodes_them() {
        // Truncated (libjpeg fills the rest with grey, warns, no error with FailOn::None), or
        // with garbage in the middle of the scan (corrupt-data warnings): the same pixels as
        // libvips' own decoder gives with FailOn::None, or an error where it errs.
        let bytes = jpeg_of(&Image::test_pattern(320, 240, 3).unwrap());
        let truncated = bytes[..bytes.len() * 2 / 3].to_vec();
        let mut garbage = bytes.clone();
        let middle = garbage.len() / 2;
        for (i, b) in garbage[middle..middle + 200].iter_mut().enumerate() {
            *b = (i * 37 % 251) as u8;
        }
        let header_only = bytes[..bytes.len() / 10].to_vec();
        for (name, damaged) in [
            ("truncated", truncated),
            ("garbage", garbage),
            ("header only", header_only),
        ] {
            let buf: Bytes = Bytes::copy_from_slice(&damaged);
            let ours =
                Image::load_jpeg_shrunk(buf.clone(), 1, FailOn::None).and_then(|i| i.to_pixels());
            let libvips =
                Image::load(buf, Access::Sequential, FailOn::None).and_then(|i| i.to_pixels());
            match (ours, libvips) {
                (Ok(a), Ok(b)) => assert!(a == b, "{name}: pixels differ"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!(
                    "{name}: ours {:?}, libvips {:?}",
                    a.map(|_| ()),
                    b.map(|_| ())
                ),
            }
        }
    }

    /// libvips' own loader, none of the shim's pixel readers in front.
    fn load_libvips(buf: &[u8]) -> Result<Image, VipsError> {
        let buf = Bytes::copy_from_slice(buf);
        // SAFETY: buf stays alive inside the returned Image.
        let mut img = unsafe { load_libvips_unkept(&buf)? };
        img.keep.push(buf);
        Ok(img)
    }

    fn load_ours(buf: &[u8]) -> Result<Image, VipsError> {
        Image::load(
            Bytes::copy_from_slice(buf),
            Access::Sequential,
            FailOn::None,
        )
    }

    /// Pixels with structure (gradients) and noise, so that every PNG predictor wins somewhere.
    fn pixels_for_png(w: usize, h: usize, bpp: usize) -> Vec<u8> {
        let mut seed = 0x2545_f491_u32;
        let mut out = Vec::with_capacity(w * h * bpp);
        for y in 0..h {
            for x in 0..w {
                for c in 0..bpp {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let noise = (seed >> 16) as usize % 24;
                    out.push(((x * 7 + y * 5 + c * 60 + noise) % 256) as u8);
                }
            }
        }
        out
    }

    fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut typed = kind.to_vec();
        typed.extend_from_slice(data);
        // SAFETY: a valid buffer of the given length.
        let crc = unsafe { libz_rs_sys::crc32(0, typed.as_ptr(), typed.len() as u32) };
        out.extend_from_slice(&(crc as u32).to_be_bytes());
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; data.len() * 2 + 64];
        let mut len = out.len() as std::ffi::c_ulong;
        // SAFETY: out holds len bytes, data data.len().
        let rc = unsafe {
            libz_rs_sys::compress2(
                out.as_mut_ptr(),
                &mut len,
                data.as_ptr(),
                data.len() as std::ffi::c_ulong,
                6,
            )
        };
        assert_eq!(rc, 0);
        out.truncate(len as usize);
        out
    }

    /// PNG image data: each row filtered with `filters[y % filters.len()]` (a type PNG does
    /// not have, such as 5, writes the row as it is under that type byte).
    fn png_rows(pixels: &[u8], w: usize, h: usize, bpp: usize, filters: &[u8]) -> Vec<u8> {
        let n = w * bpp;
        let mut out = Vec::with_capacity(h * (n + 1));
        for y in 0..h {
            let row = &pixels[y * n..(y + 1) * n];
            let up = |i: usize| {
                if y > 0 {
                    pixels[(y - 1) * n + i] as i32
                } else {
                    0
                }
            };
            let kind = filters[y % filters.len()];
            out.push(kind);
            for i in 0..n {
                let a = if i >= bpp { row[i - bpp] as i32 } else { 0 };
                let (b, c) = (up(i), if i >= bpp { up(i - bpp) } else { 0 });
                let predicted = match kind {
                    1 => a,
                    2 => b,
                    3 => (a + b) >> 1,
                    4 => {
                        let (pa, pb, pc) = ((b - c).abs(), (a - c).abs(), (a + b - 2 * c).abs());
                        if pa <= pb && pa <= pc {
                            a
                        } else if pb <= pc {
                            b
                        } else {
                            c
                        }
                    }
                    _ => 0,
                };
                out.push((row[i] as i32 - predicted) as u8);
            }
        }
        out
    }

    /// A PNG file: IHDR (8 bits unless `depth`, not interlaced), `extra` chunks, the zlib
    /// stream in IDAT chunks of `split` bytes (0: one chunk), IEND.
    fn png_file(w: usize, h: usize, colour: u8, stream: &[u8], split: usize) -> Vec<u8> {
        png_file_with(w, h, colour, 8, &[], stream, split)
    }

    fn png_file_with(
        w: usize,
        h: usize,
        colour: u8,
        depth: u8,
        extra: &[(&[u8; 4], Vec<u8>)],
        stream: &[u8],
        split: usize,
    ) -> Vec<u8> {
        let mut out = vec![137, 80, 78, 71, 13, 10, 26, 10];
        let mut ihdr = (w as u32).to_be_bytes().to_vec();
        ihdr.extend_from_slice(&(h as u32).to_be_bytes());
        ihdr.extend_from_slice(&[depth, colour, 0, 0, 0]);
        png_chunk(&mut out, b"IHDR", &ihdr);
        for (kind, data) in extra {
            png_chunk(&mut out, kind, data);
        }
        for part in stream.chunks(if split == 0 { stream.len() } else { split }) {
            png_chunk(&mut out, b"IDAT", part);
        }
        png_chunk(&mut out, b"IEND", &[]);
        out
    }

    #[test]
    fn png_pixels_are_the_bytes_written() {
        // pngpixels.c reads 8-bit grey, grey+alpha, RGB and RGBA PNGs loaded with
        // FailOn::None: each filter type alone and all mixed, in one IDAT or many, must give
        // back exactly the pixels written, as libvips' own loader does.
        let (w, h) = (37, 23);
        // SAFETY: reads a counter.
        let used_before = unsafe { ffi::imgedge_png_pixels_used() };
        let mut loads = 0;
        for (colour, bpp) in [(0u8, 1usize), (4, 2), (2, 3), (6, 4)] {
            let pixels = pixels_for_png(w, h, bpp);
            for filters in [&[0u8][..], &[1], &[2], &[3], &[4], &[0, 1, 2, 3, 4, 4, 3]] {
                for split in [0, 97] {
                    let stream = zlib(&png_rows(&pixels, w, h, bpp, filters));
                    let file = png_file(w, h, colour, &stream, split);
                    let what = format!("{bpp} bands, filters {filters:?}, split {split}");
                    let ours = load_ours(&file).unwrap();
                    assert_eq!(
                        (ours.width(), ours.height(), ours.bands()),
                        (37, 23, bpp as u32)
                    );
                    assert!(ours.to_pixels().unwrap() == pixels, "{what}: pixels differ");
                    let libvips = load_libvips(&file).unwrap().to_pixels().unwrap();
                    assert!(libvips == pixels, "{what}: libvips reads it otherwise");
                    loads += 1;
                }
            }
            // A part of the image, not starting at the left edge.
            let stream = zlib(&png_rows(&pixels, w, h, bpp, &[4, 3]));
            let part = load_ours(&png_file(w, h, colour, &stream, 0))
                .and_then(|i| i.extract_area(5, 3, 10, 7))
                .and_then(|i| i.to_pixels())
                .unwrap();
            let expected: Vec<u8> = (3..10)
                .flat_map(|y| pixels[(y * w + 5) * bpp..(y * w + 15) * bpp].to_vec())
                .collect();
            assert!(part == expected, "{bpp} bands: the area differs");
            loads += 1;
        }
        // SAFETY: reads a counter.
        let used = unsafe { ffi::imgedge_png_pixels_used() } - used_before;
        assert!(
            used >= loads,
            "pngpixels.c read {used} of the {loads} loads"
        );
    }

    #[test]
    fn damaged_or_unusual_pngs_read_as_libvips_reads_them() {
        let (w, h, bpp) = (40, 30, 4);
        let pixels = pixels_for_png(w, h, bpp);
        let rows = png_rows(&pixels, w, h, bpp, &[0, 1, 2, 3, 4]);
        let stream = zlib(&rows);
        let first_rows = |img: &[u8], n: usize| img[..n * w * bpp] == pixels[..n * w * bpp];

        // Read in full by both: a wrong Adler-32 (libvips tells libpng or libspng to ignore it),
        // and more image data than the image has (libpng stops at the last row). libvips 8.17
        // went back to libpng, and Debian's (sid, libvips 8.18) checks the checksum anyway: there
        // libvips' pixels differ, while ours stay the ones 8.14 to 8.16 read.
        let mut adler = stream.clone();
        let end = adler.len() - 1;
        adler[end] ^= 0x55;
        let mut extra_row = rows.clone();
        extra_row.extend_from_slice(&rows[..w * bpp + 1]);
        let minor = libvips_minor();
        for (name, file) in [
            ("bad adler32", png_file(w, h, 6, &adler, 0)),
            ("too much data", png_file(w, h, 6, &zlib(&extra_row), 64)),
        ] {
            for (reader, img) in [("ours", load_ours(&file)), ("libvips", load_libvips(&file))] {
                if name == "bad adler32" && reader == "libvips" && minor >= 17 {
                    continue;
                }
                let img = img.and_then(|i| i.to_pixels());
                assert!(img.unwrap() == pixels, "{name}, {reader}: pixels differ");
            }
        }

        // Damaged: ours answers as libvips (FailOn::None) does — an image of the right size or
        // an error — and nothing crashes. Which rows come out right depends on libvips' PNG
        // library: libpng (libvips 8.14) gives the rows before the damage (none for a file cut
        // inside its only IDAT: it reads a chunk in pieces of up to 8 KB); libspng (8.15 and
        // later) none on a bad filter byte. So ours must have every row right that libvips
        // has right.
        let bad_filter = zlib(&png_rows(
            &pixels,
            w,
            h,
            bpp,
            &[1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 9],
        ));
        let short = stream[..stream.len() / 2].to_vec();
        let mut bad_crc = png_file(w, h, 6, &stream, 100);
        bad_crc[33 + 8 + 150] ^= 1;
        let mut cut = png_file(w, h, 6, &stream, 0);
        cut.truncate(cut.len() * 2 / 3);
        for (name, file, good_rows) in [
            (
                "bad filter type in row 10",
                png_file(w, h, 6, &bad_filter, 0),
                10,
            ),
            ("stream ends early", png_file(w, h, 6, &short, 0), 1),
            ("bad IDAT CRC", bad_crc, 0),
            ("file cut in an IDAT", cut, 0),
        ] {
            let libvips = load_libvips(&file).and_then(|i| i.to_pixels());
            let ours = load_ours(&file).and_then(|i| i.to_pixels());
            match (ours, libvips) {
                (Ok(ours), Ok(libvips)) => {
                    assert_eq!(ours.len(), pixels.len(), "{name}");
                    if first_rows(&libvips, good_rows) {
                        assert!(first_rows(&ours, good_rows), "{name}: first rows differ");
                    }
                }
                // libspng (8.15+) refuses a file cut inside its IDAT even with FailOn::None.
                (Err(_), Err(_)) => {}
                (a, b) => panic!(
                    "{name}: ours {:?}, libvips {:?}",
                    a.map(|_| ()),
                    b.map(|_| ())
                ),
            }
        }

        // Not for pngpixels.c, read by libvips: a palette, 16 bits, tRNS (an alpha band).
        let grey16: Vec<u8> = pixels.iter().take(w * h * 2).copied().collect();
        let palette_rows = png_rows(&pixels[..w * h], w, h, 1, &[0]);
        let rgb = pixels_for_png(w, h, 3);
        let plte: Vec<u8> = (0..=255u8).flat_map(|i| [i, 255 - i, i / 2]).collect();
        for (name, file, bands) in [
            (
                "palette",
                png_file_with(w, h, 3, 8, &[(b"PLTE", plte)], &zlib(&palette_rows), 0),
                3,
            ),
            (
                "16-bit grey",
                png_file_with(
                    w,
                    h,
                    0,
                    16,
                    &[],
                    &zlib(&png_rows(&grey16, w, h, 2, &[1])),
                    0,
                ),
                1,
            ),
            (
                "RGB with tRNS",
                png_file_with(
                    w,
                    h,
                    2,
                    8,
                    &[(b"tRNS", vec![0, 7, 0, 67, 0, 120])],
                    &zlib(&png_rows(&rgb, w, h, 3, &[2])),
                    0,
                ),
                4,
            ),
        ] {
            let ours = load_ours(&file).unwrap();
            let libvips = load_libvips(&file).unwrap();
            assert_eq!(ours.bands(), bands, "{name}");
            assert!(
                ours.to_pixels().unwrap() == libvips.to_pixels().unwrap(),
                "{name}: pixels differ"
            );
        }
    }

    #[test]
    fn watermarks_keep_the_size() {
        let img = Image::test_pattern(120, 80, 3).unwrap();
        let t = img
            .text_watermark("Hello", "sans 10", 100, 150, 100, 0.5, true, [255, 0, 0])
            .unwrap();
        assert_eq!((t.width(), t.height(), t.bands()), (120, 80, 3));
        let t = img
            .text_watermark("Hello", "sans 10", 500, 150, 500, 1.0, false, [0, 0, 0])
            .unwrap();
        assert_eq!((t.width(), t.height()), (120, 80));
        let mark = Image::test_pattern(30, 30, 3).unwrap();
        let c = img.composite(&mark, 100, 70, 0.5).unwrap();
        assert_eq!((c.width(), c.height(), c.bands()), (120, 80, 4));
        assert_eq!(c.band_format(), 0);
        // Evaluate to be sure the pipelines run.
        jpeg_of(&c.flatten([255, 255, 255]).unwrap());
    }

    #[test]
    fn colourspace_flatten_blur_and_icc() {
        let img = Image::test_pattern(16, 16, 4).unwrap();
        let g = img.colourspace(true).unwrap();
        assert_eq!(g.interpretation(), "b-w");
        assert_eq!(g.bands(), 2);
        let f = img.flatten([255, 255, 255]).unwrap();
        assert_eq!(f.bands(), 3);
        let b = img.gaussblur(2.0, Some(0.2)).unwrap();
        assert_eq!((b.width(), b.height()), (16, 16));
        assert!(!img.without_icc().unwrap().has_icc());
    }

    /// Three different 40×30 frames (the pattern, mirrored, upside down), 100/200/300 ms,
    /// looping forever, written with `saver`.
    fn animation(saver: Saver) -> Vec<u8> {
        let a = Image::test_pattern(40, 30, 3).unwrap();
        let frames = [a.clone(), a.flip(false).unwrap(), a.flip(true).unwrap()];
        Image::join_frames(&frames)
            .unwrap()
            .with_animation(&[100, 200, 300], Some(0))
            .unwrap()
            .save(&saver, false)
            .unwrap()
    }

    #[test]
    fn animations_round_trip_through_gif_and_webp() {
        let webp = Saver::Webp {
            quality: 75,
            lossless: false,
        };
        for saver in [Saver::Gif, webp] {
            let bytes = animation(saver);
            // the header (first frame only) knows how many frames there are
            let first = decode(&bytes);
            assert_eq!((first.width(), first.height()), (40, 30), "{saver:?}");
            assert_eq!(first.n_pages(), 3, "{saver:?}");
            assert_eq!(first.frames(), 1, "{saver:?}");
            let all = Image::load_pages(
                Bytes::copy_from_slice(&bytes),
                Access::Sequential,
                FailOn::None,
            )
            .unwrap();
            assert_eq!((all.width(), all.height()), (40, 90), "{saver:?}");
            assert_eq!((all.page_height(), all.frames()), (30, 3), "{saver:?}");
            assert_eq!(all.delays(), vec![100, 200, 300], "{saver:?}");
            assert_eq!(all.loop_count(), Some(0), "{saver:?}");
            let t = Image::thumbnail_pages(Bytes::copy_from_slice(&bytes), 21, 13, FailOn::None)
                .unwrap();
            assert_eq!(
                (t.width(), t.height(), t.page_height()),
                (21, 39, 13),
                "{saver:?}"
            );
            assert_eq!(t.delays(), vec![100, 200, 300], "{saver:?}");
        }
    }

    #[test]
    fn still_images_are_one_frame() {
        let img = Image::test_pattern(40, 20, 3).unwrap();
        assert_eq!((img.n_pages(), img.frames(), img.page_height()), (1, 1, 20));
        assert!(img.delays().is_empty());
        assert_eq!(img.loop_count(), None);
        let gif = decode(&img.save(&Saver::Gif, false).unwrap());
        assert_eq!((gif.n_pages(), gif.frames()), (1, 1));
        let tall = gif.rotate(90).unwrap();
        // whatever the loader left in page-height, a fresh value makes it one frame again
        let still = tall.with_page_height(tall.height()).unwrap();
        assert_eq!(still.frames(), 1);
    }

    #[test]
    fn clean_message_joins_lines() {
        assert_eq!(clean_message("a: x\nb: y\n", "c"), "a: x b: y");
        assert_eq!(clean_message("\n  \n", "ctx"), "ctx: libvips error");
    }
}
