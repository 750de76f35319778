//! The last steps (spec §8.3, §9.1 step 10): colour, metadata, and the encoder with imaginary's
//! (bimg v1.1.7's) defaults.
//!
//! | Output | settings |
//! |---|---|
//! | JPEG | Q = quality (75), optimised Huffman tables, progressive = interlace |
//! | PNG | zlib compression (6; written with the libdeflate level, or through libvips with the zlib-rs level, that writes files no larger than zlib 1.2's at that level: `pngwrite.c`, `vips::zlib::png_level`), every row filter, Adam7 = interlace, palette, Q (palette only), effort = 10 − speed (speed forced to 3 with palette) |
//! | WebP | Q (75), lossy |
//! | TIFF | libvips defaults |
//! | GIF | cgif, libvips defaults |
//! | HEIF / AVIF | Q (75), HEVC / AV1, 8 bits |
//! | JPEG XL | Q (75), when this libvips has it |
//!
//! `stripmeta` drops all metadata on every format. Range errors (quality outside 1–100,
//! compression above 9, speed of 10 or more) are reported as errors, as the spec has them; left to
//! libvips they would be ignored with a GLib warning on stderr.

use super::format::ImageType;
use super::options::Options;
use super::vips::{Image, Saver, VipsError};

/// imaginary's default quality (README says 80; bimg uses 75).
pub(crate) const DEFAULT_QUALITY: u32 = 75;
/// bimg's default PNG compression.
pub(crate) const DEFAULT_COMPRESSION: u32 = 6;
/// bimg's error when the output format cannot be written (PDF, SVG, or missing in libvips).
pub(crate) const UNSUPPORTED_OUTPUT: &str = "Unsupported image output type";

/// How to write one output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Encoding {
    pub format: ImageType,
    pub quality: u32,
    pub compression: u32,
    pub interlace: bool,
    pub palette: bool,
    pub speed: u32,
    pub strip: bool,
}

impl Encoding {
    /// From a step's options, writing `format` (already resolved: `type`, or the input's).
    pub fn from_options(format: ImageType, o: &Options) -> Encoding {
        Encoding {
            format,
            quality: if o.quality == 0 {
                DEFAULT_QUALITY
            } else {
                o.quality
            },
            compression: if o.compression == 0 {
                DEFAULT_COMPRESSION
            } else {
                o.compression
            },
            interlace: o.interlace,
            palette: o.palette,
            // bimg: "Default value of effort in libvips is 7."
            speed: if o.palette { 3 } else { o.speed },
            strip: o.strip_metadata,
        }
    }

    /// `/autorotate`: every param ignored, bimg's defaults.
    pub fn defaults(format: ImageType) -> Encoding {
        Encoding {
            format,
            quality: DEFAULT_QUALITY,
            compression: DEFAULT_COMPRESSION,
            interlace: false,
            palette: false,
            speed: 0,
            strip: false,
        }
    }

    /// The libvips saver, after checking the format can be written and the values are in range.
    pub fn saver(&self) -> Result<Saver, VipsError> {
        let quality = || -> Result<u32, VipsError> {
            if (1..=100).contains(&self.quality) {
                Ok(self.quality)
            } else {
                Err(VipsError::new(format!(
                    "{}save: quality {} out of range 1-100",
                    self.format.name(),
                    self.quality
                )))
            }
        };
        let saver = match self.format {
            ImageType::Jpeg => Saver::Jpeg {
                quality: quality()?,
                interlace: self.interlace,
            },
            ImageType::Png => {
                if self.compression > 9 {
                    return Err(VipsError::new(format!(
                        "pngsave: compression {} out of range 0-9",
                        self.compression
                    )));
                }
                if self.speed >= 10 {
                    return Err(VipsError::new(format!(
                        "pngsave: effort {} out of range 1-10",
                        10i64 - self.speed as i64
                    )));
                }
                Saver::Png {
                    compression: self.compression,
                    interlace: self.interlace,
                    palette: self.palette,
                    quality: if self.palette {
                        quality()?
                    } else {
                        self.quality.clamp(1, 100)
                    },
                    effort: 10 - self.speed,
                }
            }
            ImageType::Webp => Saver::Webp {
                quality: quality()?,
                lossless: false,
            },
            ImageType::Tiff => Saver::Tiff,
            ImageType::Gif => Saver::Gif,
            ImageType::Heif => Saver::Heif {
                quality: quality()?,
                lossless: false,
            },
            ImageType::Avif => Saver::Avif {
                quality: quality()?,
                lossless: false,
            },
            ImageType::Jxl => Saver::Jxl {
                quality: quality()?,
                lossless: false,
            },
            ImageType::Pdf | ImageType::Svg => return Err(VipsError::new(UNSUPPORTED_OUTPUT)),
        };
        if !self.format.can_save() || !saver.available() {
            return Err(VipsError::new(UNSUPPORTED_OUTPUT));
        }
        Ok(saver)
    }
}

/// Colour before encoding (bimg's `vipsPreSave`): `noprofile` drops the ICC profile (no
/// transform), then sRGB — or B_W with `colorspace=bw` — when libvips can convert the image.
pub(crate) fn prepare(img: &Image, no_profile: bool, grey: bool) -> Result<Image, VipsError> {
    let img = if no_profile && img.has_icc() {
        img.without_icc()?
    } else {
        img.clone()
    };
    img.colourspace(grey)
}

/// Encodes `img`.
pub(crate) fn save(img: &Image, enc: &Encoding) -> Result<Vec<u8>, VipsError> {
    let saver = enc.saver()?;
    img.save(&saver, enc.strip)
}

/// imaginary's retry rule (spec §8.3): a WebP or HEIF (here also AVIF) encode failure whose
/// message contains `encode` (case-sensitive, as Go's `strings.Contains`) is retried as JPEG.
/// (imaginary applies it only when `type` names the format; we apply it whatever chose it.)
pub(crate) fn retry_as_jpeg(format: ImageType, err: &VipsError) -> bool {
    matches!(format, ImageType::Webp | ImageType::Heif | ImageType::Avif)
        && err.message().contains("encode")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::format::sniff;
    use crate::ops::vips::Access;
    use std::ffi::{c_int, c_ulong};

    #[test]
    fn defaults_fill_zero_values() {
        let e = Encoding::from_options(ImageType::Jpeg, &Options::default());
        assert_eq!((e.quality, e.compression, e.speed), (75, 6, 0));
        let p = Encoding::from_options(
            ImageType::Png,
            &Options {
                palette: true,
                speed: 8,
                ..Options::imaginary()
            },
        );
        assert_eq!(p.speed, 3);
        assert_eq!(Encoding::defaults(ImageType::Webp).quality, 75);
    }

    #[test]
    fn savers_follow_bimg_settings() {
        let e = Encoding::from_options(
            ImageType::Png,
            &Options {
                interlace: true,
                compression: 9,
                ..Options::imaginary()
            },
        );
        assert_eq!(
            e.saver().unwrap(),
            Saver::Png {
                compression: 9,
                interlace: true,
                palette: false,
                quality: 75,
                effort: 10
            }
        );
        let j = Encoding::from_options(
            ImageType::Jpeg,
            &Options {
                quality: 90,
                interlace: true,
                ..Options::imaginary()
            },
        );
        assert_eq!(
            j.saver().unwrap(),
            Saver::Jpeg {
                quality: 90,
                interlace: true
            }
        );
    }

    /// The system's zlib itself (zlib 1.2 on Debian 12), though zlib-rs answers to zlib's names
    /// in this process (`vips::zlib`): a private copy of the library, its own symbols bound
    /// first, so that its compress2 runs its own deflate.
    type Compress2 =
        unsafe extern "C" fn(*mut u8, *mut c_ulong, *const u8, c_ulong, c_int) -> c_int;

    struct SystemZlib {
        compress2: Compress2,
    }

    impl SystemZlib {
        fn open(dir: &std::path::Path) -> SystemZlib {
            // SAFETY: dlopen/dlsym/dladdr with NUL-terminated names; the symbols looked up are
            // zlib's, with the signatures zlib.h gives them.
            unsafe {
                let loaded = libc::dlopen(c"libz.so.1".as_ptr(), libc::RTLD_NOW);
                assert!(!loaded.is_null(), "libz.so.1 not found");
                let version = libc::dlsym(loaded, c"zlibVersion".as_ptr());
                let mut info: libc::Dl_info = std::mem::zeroed();
                assert!(libc::dladdr(version, &mut info) != 0);
                let path = std::ffi::CStr::from_ptr(info.dli_fname).to_str().unwrap();
                let copy = dir.join("libz-system.so");
                std::fs::copy(path, &copy).unwrap();
                let copy = std::ffi::CString::new(copy.to_str().unwrap()).unwrap();
                let own = libc::dlopen(
                    copy.as_ptr(),
                    libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_DEEPBIND,
                );
                assert!(!own.is_null(), "{path} copied");
                let version = std::mem::transmute::<
                    *mut libc::c_void,
                    unsafe extern "C" fn() -> *const std::ffi::c_char,
                >(libc::dlsym(own, c"zlibVersion".as_ptr()));
                let version = std::ffi::CStr::from_ptr(version()).to_string_lossy();
                assert!(!version.contains("zlib-rs"), "{version}");
                let compress2 = libc::dlsym(own, c"compress2".as_ptr());
                assert!(!compress2.is_null());
                SystemZlib {
                    compress2: std::mem::transmute::<*mut libc::c_void, Compress2>(compress2),
                }
            }
        }

        fn compressed_len(&self, data: &[u8], level: u32) -> usize {
            let mut out = vec![0u8; data.len() + data.len() / 100 + 1024];
            let mut len = out.len() as c_ulong;
            // SAFETY: buffers of the lengths given.
            let rc = unsafe {
                (self.compress2)(
                    out.as_mut_ptr(),
                    &mut len,
                    data.as_ptr(),
                    data.len() as c_ulong,
                    level as c_int,
                )
            };
            assert_eq!(rc, 0, "compress2");
            len as usize
        }
    }

    #[test]
    fn pngs_are_no_larger_than_the_systems_zlib_writes_them() {
        // compression=N asks for zlib 1.2's level N (what imaginary's libpng writes on the
        // system's zlib). pngwrite.c deflates with libdeflate, libvips' saver (here: Adam7)
        // with zlib-rs, each at the level of its own that writes no more: checked against
        // the system's zlib on the same filtered rows, a photo and an RGBA drawing.
        let dir = tempfile::tempdir().unwrap();
        let zlib = SystemZlib::open(dir.path());
        let read = |name: &str| {
            let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
            Image::load_bytes(&std::fs::read(path).unwrap(), Access::Random).unwrap()
        };
        for (name, img) in [
            ("scene.jpg", read("scene.jpg")),
            ("badge.png", read("badge.png")),
        ] {
            for compression in 1..=9 {
                for interlace in [false, true] {
                    let saver = Encoding {
                        compression,
                        interlace,
                        ..Encoding::defaults(ImageType::Png)
                    }
                    .saver()
                    .unwrap();
                    let png = img.save(&saver, false).unwrap();
                    let (ours, rows) = crate::ops::vips::zlib::png_image_data(&png);
                    let system = zlib.compressed_len(&rows, compression);
                    assert!(
                        ours <= system,
                        "{name} compression {compression} interlace {interlace}: {ours} bytes, the system's zlib {system}"
                    );
                }
            }
        }
    }

    #[test]
    fn out_of_range_values_are_errors() {
        let q = Encoding::from_options(
            ImageType::Jpeg,
            &Options {
                quality: 101,
                ..Options::imaginary()
            },
        );
        assert!(q.saver().unwrap_err().message().contains("quality 101"));
        let c = Encoding::from_options(
            ImageType::Png,
            &Options {
                compression: 10,
                ..Options::imaginary()
            },
        );
        assert!(c.saver().is_err());
        let s = Encoding::from_options(
            ImageType::Png,
            &Options {
                speed: 10,
                ..Options::imaginary()
            },
        );
        assert!(s.saver().is_err());
        // quality only matters to PNG with a palette
        let pq = Encoding::from_options(
            ImageType::Png,
            &Options {
                quality: 500,
                ..Options::imaginary()
            },
        );
        assert!(pq.saver().is_ok());
        // TIFF and GIF ignore quality
        let t = Encoding::from_options(
            ImageType::Tiff,
            &Options {
                quality: 500,
                ..Options::imaginary()
            },
        );
        assert!(t.saver().is_ok());
    }

    #[test]
    fn pdf_and_svg_cannot_be_written() {
        for f in [ImageType::Pdf, ImageType::Svg] {
            assert_eq!(
                Encoding::defaults(f).saver().unwrap_err().message(),
                UNSUPPORTED_OUTPUT
            );
        }
    }

    #[test]
    fn every_writable_format_round_trips() {
        let img = prepare(&Image::test_pattern(24, 16, 4).unwrap(), true, false).unwrap();
        for f in [
            ImageType::Jpeg,
            ImageType::Png,
            ImageType::Webp,
            ImageType::Tiff,
            ImageType::Gif,
            ImageType::Heif,
            ImageType::Avif,
            ImageType::Jxl,
        ] {
            let enc = Encoding::defaults(f);
            match save(&img, &enc) {
                Ok(bytes) => {
                    assert_eq!(sniff(&bytes), Some(f), "{f:?}");
                    let back = Image::load_bytes(&bytes, Access::Random).unwrap();
                    assert_eq!((back.width(), back.height()), (24, 16), "{f:?}");
                }
                Err(e) => {
                    // only acceptable when this libvips lacks the encoder
                    assert!(
                        matches!(f, ImageType::Heif | ImageType::Avif | ImageType::Jxl),
                        "{f:?}: {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn grey_output_has_one_band() {
        let img = prepare(&Image::test_pattern(24, 16, 3).unwrap(), false, true).unwrap();
        let bytes = save(&img, &Encoding::defaults(ImageType::Jpeg)).unwrap();
        let back = Image::load_bytes(&bytes, Access::Random).unwrap();
        assert_eq!((back.bands(), back.interpretation().as_str()), (1, "b-w"));
    }

    #[test]
    fn strip_removes_exif() {
        let img = Image::test_pattern(24, 16, 3)
            .unwrap()
            .with_orientation(3)
            .unwrap();
        let mut enc = Encoding::defaults(ImageType::Jpeg);
        let kept = Image::load_bytes(&save(&img, &enc).unwrap(), Access::Random).unwrap();
        assert_eq!(kept.exif_orientation(), 3);
        enc.strip = true;
        let gone = Image::load_bytes(&save(&img, &enc).unwrap(), Access::Random).unwrap();
        assert_eq!(gone.exif_orientation(), 0);
    }

    #[test]
    fn retry_rule() {
        let e = VipsError::new("webpsave: unable to encode");
        assert!(retry_as_jpeg(ImageType::Webp, &e));
        assert!(retry_as_jpeg(ImageType::Heif, &e));
        assert!(!retry_as_jpeg(ImageType::Png, &e));
        assert!(!retry_as_jpeg(
            ImageType::Heif,
            &VipsError::new("heif: Encoder plugin generated an error")
        ));
    }
}
