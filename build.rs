//! Compiles the libvips shim (`src/ops/vips/shim.c`, with `reduce.c`, `jpegpixels.c`,
//! `jpegwrite.c`, `webpwrite.c`, `pngwrite.c`, `saveready.c` and `pngpixels.c`).
//!
//! libvips' API is varargs (`vips_resize(in, &out, scale, "vscale", v, NULL)`), which Rust can
//! call but not check; option names also change between releases (`strip` became `keep` in 8.15).
//! The shim gives every call a fixed C signature, compiled against the headers of the libvips
//! actually installed, so a renamed option is a compile-time `#if`, not a run-time failure.
//! Include paths and link flags come from `pkg-config vips`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/ops/vips/shim.c");
    println!("cargo:rerun-if-changed=src/ops/vips/reduce.c");
    println!("cargo:rerun-if-changed=src/ops/vips/jpegpixels.c");
    println!("cargo:rerun-if-changed=src/ops/vips/jpegwrite.c");
    println!("cargo:rerun-if-changed=src/ops/vips/webpwrite.c");
    println!("cargo:rerun-if-changed=src/ops/vips/pngwrite.c");
    println!("cargo:rerun-if-changed=src/ops/vips/saveready.c");
    println!("cargo:rerun-if-changed=src/ops/vips/jpegerror.h");
    println!("cargo:rerun-if-changed=src/ops/vips/pngpixels.c");
    println!("cargo:rerun-if-changed=src/ops/vips/shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Link flags are printed after the shim is compiled so that the static shim archive comes
    // before `-lvips` on the linker command line (order matters with `--as-needed`).
    let vips = match pkg_config::Config::new()
        .atleast_version("8.14")
        .cargo_metadata(false)
        .probe("vips")
    {
        Ok(lib) => lib,
        Err(e) => panic!(
            "libvips >= 8.14 not found through pkg-config ({e}).\n\
             Install it (Debian/Ubuntu: `apt-get install libvips-dev`) or set PKG_CONFIG_PATH."
        ),
    };

    // jpegpixels.c and jpegwrite.c call libjpeg themselves: the same libjpeg libvips links
    // (libvips-dev pulls in libjpeg-dev on Debian and Ubuntu).
    let jpeg = pkg_config::Config::new()
        .cargo_metadata(false)
        .probe("libjpeg")
        .unwrap_or_else(|e| {
            panic!("libjpeg not found through pkg-config ({e}): apt-get install libjpeg-dev")
        });

    // pngpixels.c inflates and pngwrite.c deflates PNG image data with libdeflate (libtiff's,
    // so already installed wherever libvips is; the headers are libdeflate-dev).
    let deflate = pkg_config::Config::new()
        .cargo_metadata(false)
        .probe("libdeflate")
        .unwrap_or_else(|e| {
            panic!("libdeflate not found through pkg-config ({e}): apt-get install libdeflate-dev")
        });

    // pngwrite.c asks libpng (libvips 8.14's PNG writer) whether it would write an ICC profile.
    let png = pkg_config::Config::new()
        .cargo_metadata(false)
        .probe("libpng")
        .unwrap_or_else(|e| {
            panic!("libpng not found through pkg-config ({e}): apt-get install libpng-dev")
        });

    // webpwrite.c encodes with the libwebp libvips links (libvips-dev pulls in libwebp-dev) and
    // assembles with libwebpmux. Both are named: Debian 13's libwebpmux.pc only lists libwebp
    // as a private requirement.
    let [webp, webpmux] = ["libwebp", "libwebpmux"].map(|name| {
        pkg_config::Config::new()
            .cargo_metadata(false)
            .probe(name)
            .unwrap_or_else(|e| {
                panic!("{name} not found through pkg-config ({e}): apt-get install libwebp-dev")
            })
    });

    let mut build = cc::Build::new();
    build
        .file("src/ops/vips/shim.c")
        .file("src/ops/vips/reduce.c")
        .file("src/ops/vips/jpegpixels.c")
        .file("src/ops/vips/jpegwrite.c")
        .file("src/ops/vips/webpwrite.c")
        .file("src/ops/vips/pngwrite.c")
        .file("src/ops/vips/saveready.c")
        .file("src/ops/vips/pngpixels.c")
        .include("src/ops/vips")
        .warnings(true)
        .extra_warnings(true)
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-std=gnu11");
    let deps = [&jpeg, &deflate, &png, &webp, &webpmux];
    for path in vips
        .include_paths
        .iter()
        .chain(deps.iter().flat_map(|d| &d.include_paths))
    {
        build.include(path);
    }
    for (name, value) in &vips.defines {
        build.define(name, value.as_deref());
    }
    build.compile("imgedge_vips_shim");

    // libvips <= 8.14 calls orc through these two; the shim's guarded versions must be the
    // ones the dynamic linker finds first (shim.c, "orc"). Harmless where nothing calls them.
    for symbol in ["orc_program_compile", "orc_program_free"] {
        println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol={symbol}");
    }
    // zlib-rs (the `libz-rs-sys` dependency) defines zlib's API under zlib's names, exported
    // from the binary; the dynamic linker looks in the executable before any shared library, so
    // libpng (inside libvips) and every other library inflate and deflate with it instead of the
    // system's libz.so.1 (src/ops/vips/zlib.rs). All of zlib's functions go together: a stream
    // begun by one implementation must never be continued by the other. rustc already exports
    // `#[no_mangle]` functions from an executable; the flags say so explicitly, and `--undefined`
    // pulls each one in although no Rust code calls it.
    for symbol in ZLIB_API {
        println!("cargo:rustc-link-arg=-Wl,--undefined={symbol}");
        println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol={symbol}");
    }
    for path in vips
        .link_paths
        .iter()
        .chain(deps.iter().flat_map(|d| &d.link_paths))
    {
        println!("cargo:rustc-link-search=native={}", path.display());
    }
    for lib in vips.libs.iter().chain(deps.iter().flat_map(|d| &d.libs)) {
        println!("cargo:rustc-link-lib={lib}");
    }
}

/// Every function libz.so.1 (zlib 1.2.13) exports. zlib-rs defines all of them but `gzprintf`
/// and `gzvprintf` (C varargs, which stable Rust cannot define): those two are in shim.c.
const ZLIB_API: &[&str] = &[
    "adler32",
    "adler32_combine",
    "adler32_combine64",
    "adler32_z",
    "compress",
    "compress2",
    "compressBound",
    "crc32",
    "crc32_combine",
    "crc32_combine64",
    "crc32_combine_gen",
    "crc32_combine_gen64",
    "crc32_combine_op",
    "crc32_z",
    "deflate",
    "deflateBound",
    "deflateCopy",
    "deflateEnd",
    "deflateGetDictionary",
    "deflateInit2_",
    "deflateInit_",
    "deflateParams",
    "deflatePending",
    "deflatePrime",
    "deflateReset",
    "deflateResetKeep",
    "deflateSetDictionary",
    "deflateSetHeader",
    "deflateTune",
    "get_crc_table",
    "gzbuffer",
    "gzclearerr",
    "gzclose",
    "gzclose_r",
    "gzclose_w",
    "gzdirect",
    "gzdopen",
    "gzeof",
    "gzerror",
    "gzflush",
    "gzfread",
    "gzfwrite",
    "gzgetc",
    "gzgetc_",
    "gzgets",
    "gzoffset",
    "gzoffset64",
    "gzopen",
    "gzopen64",
    "gzprintf",
    "gzputc",
    "gzputs",
    "gzread",
    "gzrewind",
    "gzseek",
    "gzseek64",
    "gzsetparams",
    "gztell",
    "gztell64",
    "gzungetc",
    "gzvprintf",
    "gzwrite",
    "inflate",
    "inflateBack",
    "inflateBackEnd",
    "inflateBackInit_",
    "inflateCodesUsed",
    "inflateCopy",
    "inflateEnd",
    "inflateGetDictionary",
    "inflateGetHeader",
    "inflateInit2_",
    "inflateInit_",
    "inflateMark",
    "inflatePrime",
    "inflateReset",
    "inflateReset2",
    "inflateResetKeep",
    "inflateSetDictionary",
    "inflateSync",
    "inflateSyncPoint",
    "inflateUndermine",
    "inflateValidate",
    "uncompress",
    "uncompress2",
    "zError",
    "zlibCompileFlags",
    "zlibVersion",
];
