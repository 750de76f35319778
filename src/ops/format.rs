//! Image formats: input sniffing (spec §5), the `type` param (spec §8.1), `type=auto`
//! negotiation (spec §8.2) and Content-Types (spec §8.3).
//!
//! Everything here reads a few bytes or a header string and must never panic on hostile input:
//! every slice access goes through `get`/`starts_with`.

/// A format libvips can load and/or save.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageType {
    Jpeg,
    Png,
    Webp,
    Tiff,
    Gif,
    Pdf,
    Svg,
    Heif,
    Avif,
    Jxl,
}

impl ImageType {
    /// imaginary's name for the format: the `type` param value and `/info`'s `type` field.
    pub fn name(self) -> &'static str {
        match self {
            ImageType::Jpeg => "jpeg",
            ImageType::Png => "png",
            ImageType::Webp => "webp",
            ImageType::Tiff => "tiff",
            ImageType::Gif => "gif",
            ImageType::Pdf => "pdf",
            ImageType::Svg => "svg",
            ImageType::Heif => "heif",
            ImageType::Avif => "avif",
            ImageType::Jxl => "jxl",
        }
    }

    /// The response `Content-Type` for an image of this format (spec §8.3).
    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Jpeg => "image/jpeg",
            ImageType::Png => "image/png",
            ImageType::Webp => "image/webp",
            ImageType::Tiff => "image/tiff",
            ImageType::Gif => "image/gif",
            ImageType::Pdf => "application/pdf",
            ImageType::Svg => "image/svg+xml",
            // FIX: imaginary labels HEIF output `image/jpeg` (spec §8.3, §14.9).
            ImageType::Heif => "image/heif",
            ImageType::Avif => "image/avif",
            ImageType::Jxl => "image/jxl",
        }
    }

    /// Whether libvips can write this format. PDF and SVG are load-only: asking for them passes
    /// `type` validation but fails at encode (spec §8.1).
    pub fn can_save(self) -> bool {
        !matches!(self, ImageType::Pdf | ImageType::Svg)
    }
}

// ---------------------------------------------------------------------------------------------
// The `type` param (spec §8.1)

/// What the `type` param asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TypeParam {
    /// `type=auto`: pick from the `Accept` header (spec §8.2).
    Auto,
    /// A named output format.
    Fixed(ImageType),
}

/// Parses the `type` param: `""` → `Ok(None)` (keep the input format), exactly-lower-case
/// `auto` → [`TypeParam::Auto`], a known format name in any case → [`TypeParam::Fixed`],
/// anything else (`jpg`, `AUTO`, `bmp`…) → `Err(())` (400 `Unsupported output image format`).
// The error carries nothing: every caller maps it to one fixed imaginary error.
#[allow(clippy::result_unit_err)]
pub fn parse_type(s: &str) -> Result<Option<TypeParam>, ()> {
    if s.is_empty() {
        return Ok(None);
    }
    // imaginary compares `auto` before lower-casing, so `AUTO` is not auto (spec §8.1).
    if s == "auto" {
        return Ok(Some(TypeParam::Auto));
    }
    let format = match s.to_ascii_lowercase().as_str() {
        "jpeg" => ImageType::Jpeg,
        "png" => ImageType::Png,
        "webp" => ImageType::Webp,
        "tiff" => ImageType::Tiff,
        "gif" => ImageType::Gif,
        "svg" => ImageType::Svg,
        "pdf" => ImageType::Pdf,
        // FIX: imaginary rejects these names; we can write HEIF, AVIF and JPEG XL (spec §14.9).
        "heif" => ImageType::Heif,
        "avif" => ImageType::Avif,
        "jxl" => ImageType::Jxl,
        _ => return Err(()),
    };
    Ok(Some(TypeParam::Fixed(format)))
}

// ---------------------------------------------------------------------------------------------
// Input detection (spec §5)

/// Detects a supported input format from the first bytes of `buf`; `None` means 406
/// `Unsupported media type`.
///
/// Binary formats are recognised by their magic numbers; text is treated the way imaginary's
/// WHATWG sniffer plus bimg's SVG test treat it (see [`sniff_text`]). BMP, ICO, JPEG 2000,
/// Canon CR2 and anything unknown are rejected as imaginary rejects them.
pub fn sniff(buf: &[u8]) -> Option<ImageType> {
    sniff_binary(buf).or_else(|| sniff_text(buf))
}

fn sniff_binary(buf: &[u8]) -> Option<ImageType> {
    if buf.starts_with(b"\xFF\xD8\xFF") {
        Some(ImageType::Jpeg)
    } else if buf.starts_with(b"\x89PNG") {
        Some(ImageType::Png)
    } else if buf.starts_with(b"GIF87a") || buf.starts_with(b"GIF89a") {
        Some(ImageType::Gif)
    } else if is_webp(buf) {
        Some(ImageType::Webp)
    } else if buf.starts_with(b"%PDF-") {
        Some(ImageType::Pdf)
    } else if is_tiff(buf) {
        Some(ImageType::Tiff)
    } else if let Some(format) = iso_bmff_image(buf) {
        Some(format)
    } else if is_jpeg_xl(buf) {
        Some(ImageType::Jxl)
    } else {
        None
    }
}

/// `RIFF....WEBPVP`: the WHATWG pattern, which requires a VP8/VP8L/VP8X chunk first.
fn is_webp(buf: &[u8]) -> bool {
    buf.starts_with(b"RIFF") && buf.get(8..14) == Some(b"WEBPVP".as_slice())
}

/// Little- or big-endian TIFF header, except Canon CR2 raw files, which share it and carry
/// `CR` at offset 8 (imaginary's magic-number matcher excludes them).
fn is_tiff(buf: &[u8]) -> bool {
    let tiff_header = buf.starts_with(b"II*\0") || buf.starts_with(b"MM\0*");
    let canon_raw = buf.get(8..10) == Some(b"CR".as_slice());
    tiff_header && !canon_raw
}

/// JPEG XL: a bare codestream (`FF 0A`) or the ISO-BMFF-style container signature.
fn is_jpeg_xl(buf: &[u8]) -> bool {
    buf.starts_with(b"\xFF\x0A") || buf.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n")
}

/// HEIF brands: HEVC-coded stills and sequences, and the generic MIAF/HEIF brands.
const HEIF_BRANDS: [&[u8; 4]; 6] = [b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1"];
/// AVIF still and sequence brands.
const AVIF_BRANDS: [&[u8; 4]; 2] = [b"avif", b"avis"];
/// Brands that only say "some HEIF file": the compatible brands tell what is inside.
const GENERIC_HEIF_BRANDS: [&[u8; 4]; 2] = [b"mif1", b"msf1"];

/// HEIF or AVIF from the ISO-BMFF `ftyp` box: size (4 bytes), `ftyp`, major brand, minor
/// version, then compatible brands up to the box size.
///
/// FIX: imaginary only accepts major brand `heic` (or `mif1`/`msf1` listing `heic`) and never
/// AVIF (spec §5, §14.9, issue #432). We accept every HEIF brand, and AVIF.
fn iso_bmff_image(buf: &[u8]) -> Option<ImageType> {
    if buf.get(4..8) != Some(b"ftyp".as_slice()) {
        return None;
    }
    let major: &[u8] = buf.get(8..12)?;
    let box_size = buf
        .get(0..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes) as usize;
    let compatible: Vec<&[u8]> = buf
        .get(16..box_size.min(buf.len()))
        .unwrap_or_default()
        .chunks_exact(4)
        .collect();
    let is_one_of = |brand: &[u8], set: &[&[u8; 4]]| set.iter().any(|b| b.as_slice() == brand);

    if is_one_of(major, &AVIF_BRANDS) {
        return Some(ImageType::Avif);
    }
    if is_one_of(major, &GENERIC_HEIF_BRANDS) {
        // Early AVIF encoders wrote major brand `mif1` with `avif` among the compatible ones.
        let avif_inside = compatible.iter().any(|b| is_one_of(b, &AVIF_BRANDS));
        return Some(if avif_inside {
            ImageType::Avif
        } else {
            ImageType::Heif
        });
    }
    if is_one_of(major, &HEIF_BRANDS) {
        return Some(ImageType::Heif);
    }
    None
}

/// How many leading bytes the WHATWG sniffer looks at.
const SNIFF_LEN: usize = 512;

/// Text inputs, as imaginary sees them (spec §5): Go's `http.DetectContentType` first, then
/// bimg's SVG test when that said `text/plain`.
///
/// * `<?xml` after optional whitespace is `text/xml`, which imaginary counts as SVG (QUIRK: any
///   XML passes here and fails later in libvips with a 400).
/// * HTML openers (`<html `, `<!-- `, …) are `text/html`: rejected, so an SVG starting with a
///   comment is a 406 (QUIRK).
/// * A binary byte in the first 512 bytes makes it `application/octet-stream`: rejected.
/// * Otherwise it is `text/plain`, and an SVG iff longer than 8 bytes and [`is_svg_text`].
fn sniff_text(buf: &[u8]) -> Option<ImageType> {
    let head = &buf[..buf.len().min(SNIFF_LEN)];
    let first_non_ws = head.iter().position(|b| !is_ws(*b)).unwrap_or(head.len());
    let rest = &head[first_non_ws..];
    if rest.starts_with(b"<?xml") {
        return Some(ImageType::Svg);
    }
    if is_html(rest) || rest.iter().any(|b| is_binary_byte(*b)) {
        return None;
    }
    (buf.len() > 8 && is_svg_text(buf)).then_some(ImageType::Svg)
}

/// Whitespace for both the WHATWG sniffer and Go's regexp `\s`.
fn is_ws(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

/// WHATWG "binary data byte": its presence rules out `text/plain`.
fn is_binary_byte(b: u8) -> bool {
    matches!(b, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F)
}

/// Go's `htmlSig` list: case-insensitive tag opener followed by a space or `>`.
fn is_html(data: &[u8]) -> bool {
    const HTML_OPENERS: [&[u8]; 17] = [
        b"<!DOCTYPE HTML",
        b"<HTML",
        b"<HEAD",
        b"<SCRIPT",
        b"<IFRAME",
        b"<H1",
        b"<DIV",
        b"<FONT",
        b"<TABLE",
        b"<A",
        b"<STYLE",
        b"<TITLE",
        b"<B",
        b"<BODY",
        b"<BR",
        b"<P",
        b"<!--",
    ];
    HTML_OPENERS.iter().any(|opener| {
        strip_prefix_ignore_case(data, opener)
            .and_then(|after| after.first())
            .is_some_and(|b| matches!(b, b' ' | b'>'))
    })
}

/// bimg's `IsSVGImage`: after removing HTML comments the text must match
/// `(?i)^\s*(?:<\?xml[^>]*>\s*)?(?:<!doctype svg[^>]*>\s*)?<svg[^>]*>[^*]*</svg>\s*$`.
///
/// QUIRK (replicated): a `*` anywhere between `<svg…>` and the final `</svg>` (CSS selectors,
/// `calc()`) fails the test. bimg also rejects a byte ≤ 0x08 in the first 24 bytes; the caller's
/// binary-byte check already covers that.
fn is_svg_text(buf: &[u8]) -> bool {
    matches_svg_pattern(&without_html_comments(buf)).is_some()
}

/// The regex above, as a hand-written matcher (no regex crate); `Some(())` on a match.
/// Every optional group is deterministic: `[^>]*>` can only stop at the first `>`.
fn matches_svg_pattern(text: &[u8]) -> Option<()> {
    let mut rest = skip_ws(text);
    if let Some(after) = strip_prefix_ignore_case(rest, b"<?xml") {
        rest = skip_ws(after_tag_end(after)?);
    }
    if let Some(after) = strip_prefix_ignore_case(rest, b"<!doctype svg") {
        rest = skip_ws(after_tag_end(after)?);
    }
    let body = after_tag_end(strip_prefix_ignore_case(rest, b"<svg")?)?;
    let body = trim_end_ws(body);
    let split = body.len().checked_sub(b"</svg>".len())?;
    let (inner, close) = body.split_at(split);
    (close.eq_ignore_ascii_case(b"</svg>") && !inner.contains(&b'*')).then_some(())
}

/// Go's `(?i)<!--[\s\S]*?-->` replaced by nothing: shortest comments, left to right.
fn without_html_comments(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = find(rest, b"<!--") {
        let after_open = &rest[open + 4..];
        let Some(close) = find(after_open, b"-->") else {
            break;
        };
        out.extend_from_slice(&rest[..open]);
        rest = &after_open[close + 3..];
    }
    out.extend_from_slice(rest);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The bytes after the first `>` (`[^>]*>`), or `None` when there is none.
fn after_tag_end(text: &[u8]) -> Option<&[u8]> {
    let end = text.iter().position(|b| *b == b'>')?;
    text.get(end + 1..)
}

fn skip_ws(text: &[u8]) -> &[u8] {
    let start = text.iter().position(|b| !is_ws(*b)).unwrap_or(text.len());
    &text[start..]
}

fn trim_end_ws(text: &[u8]) -> &[u8] {
    let end = text.iter().rposition(|b| !is_ws(*b)).map_or(0, |i| i + 1);
    &text[..end]
}

fn strip_prefix_ignore_case<'a>(text: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

// ---------------------------------------------------------------------------------------------
// `type=auto` negotiation (spec §8.2)

/// The formats `type=auto` may pick, by their `Accept` media type.
const NEGOTIABLE: [(&str, ImageType); 3] = [
    ("image/webp", ImageType::Webp),
    ("image/png", ImageType::Png),
    ("image/jpeg", ImageType::Jpeg),
];

/// Picks the output format for `type=auto` from an `Accept` header; `None` keeps the input
/// format.
///
/// Only `image/webp`, `image/png` and `image/jpeg` are candidates; wildcards (`image/*`, `*/*`)
/// never pick one. FIX: imaginary takes the first candidate in header order and ignores
/// q-values; we honour them (spec §8.2): `q=0` excludes a type, the highest q wins, ties go to
/// the type listed first. A type listed twice counts with its first entry. A malformed q-value
/// counts as 1 (the entry is kept, as imaginary would keep it).
pub fn negotiate(accept: Option<&str>) -> Option<ImageType> {
    let mut seen: Vec<ImageType> = Vec::new();
    let mut best: Option<(f64, ImageType)> = None;
    for entry in accept?.split(',') {
        let mut parts = entry.split(';');
        let media_type = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let Some(&(_, format)) = NEGOTIABLE.iter().find(|(name, _)| *name == media_type) else {
            continue;
        };
        if seen.contains(&format) {
            continue;
        }
        seen.push(format);
        let q = q_value(parts);
        if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
            best = Some((q, format));
        }
    }
    best.map(|(_, format)| format)
}

/// The `q` parameter of one `Accept` entry, clamped to 0..=1; absent or malformed → 1.
fn q_value<'a>(params: impl Iterator<Item = &'a str>) -> f64 {
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        let value = value.trim();
        // RFC 9110 qvalue: digits and one dot. Rejecting other forms keeps `inf`/`nan` out.
        let well_formed =
            !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        return match value.parse::<f64>() {
            Ok(q) if well_formed => q.clamp(0.0, 1.0),
            _ => 1.0,
        };
    }
    1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    // --- names and Content-Types ---

    #[test]
    fn names_are_imaginarys() {
        let all = [
            (ImageType::Jpeg, "jpeg"),
            (ImageType::Png, "png"),
            (ImageType::Webp, "webp"),
            (ImageType::Tiff, "tiff"),
            (ImageType::Gif, "gif"),
            (ImageType::Pdf, "pdf"),
            (ImageType::Svg, "svg"),
            (ImageType::Heif, "heif"),
            (ImageType::Avif, "avif"),
            (ImageType::Jxl, "jxl"),
        ];
        for (format, name) in all {
            assert_eq!(format.name(), name);
            // Every name round-trips through the `type` param.
            assert_eq!(parse_type(name), Ok(Some(TypeParam::Fixed(format))));
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(ImageType::Jpeg.mime(), "image/jpeg");
        assert_eq!(ImageType::Png.mime(), "image/png");
        assert_eq!(ImageType::Webp.mime(), "image/webp");
        assert_eq!(ImageType::Tiff.mime(), "image/tiff");
        assert_eq!(ImageType::Gif.mime(), "image/gif");
        assert_eq!(ImageType::Pdf.mime(), "application/pdf");
        assert_eq!(ImageType::Svg.mime(), "image/svg+xml");
        assert_eq!(ImageType::Avif.mime(), "image/avif");
        assert_eq!(ImageType::Jxl.mime(), "image/jxl");
    }

    #[test]
    fn fix_heif_is_labelled_heif_not_jpeg() {
        assert_eq!(ImageType::Heif.mime(), "image/heif");
    }

    #[test]
    fn pdf_and_svg_cannot_be_written() {
        assert!(!ImageType::Pdf.can_save());
        assert!(!ImageType::Svg.can_save());
        for format in [
            ImageType::Jpeg,
            ImageType::Png,
            ImageType::Webp,
            ImageType::Tiff,
            ImageType::Gif,
            ImageType::Heif,
            ImageType::Avif,
            ImageType::Jxl,
        ] {
            assert!(format.can_save(), "{format:?}");
        }
    }

    // --- the `type` param ---

    #[test]
    fn empty_type_keeps_the_input_format() {
        assert_eq!(parse_type(""), Ok(None));
    }

    #[test]
    fn auto_only_in_lower_case() {
        assert_eq!(parse_type("auto"), Ok(Some(TypeParam::Auto)));
        assert_eq!(parse_type("AUTO"), Err(()));
        assert_eq!(parse_type("Auto"), Err(()));
    }

    #[test]
    fn format_names_are_case_insensitive() {
        assert_eq!(
            parse_type("JPEG"),
            Ok(Some(TypeParam::Fixed(ImageType::Jpeg)))
        );
        assert_eq!(
            parse_type("WebP"),
            Ok(Some(TypeParam::Fixed(ImageType::Webp)))
        );
        assert_eq!(
            parse_type("Svg"),
            Ok(Some(TypeParam::Fixed(ImageType::Svg)))
        );
        assert_eq!(
            parse_type("PDF"),
            Ok(Some(TypeParam::Fixed(ImageType::Pdf)))
        );
    }

    #[test]
    fn fix_heif_avif_jxl_are_output_names() {
        assert_eq!(
            parse_type("HEIF"),
            Ok(Some(TypeParam::Fixed(ImageType::Heif)))
        );
        assert_eq!(
            parse_type("avif"),
            Ok(Some(TypeParam::Fixed(ImageType::Avif)))
        );
        assert_eq!(
            parse_type("JXL"),
            Ok(Some(TypeParam::Fixed(ImageType::Jxl)))
        );
    }

    #[test]
    fn unknown_type_names_are_errors() {
        for bad in [
            "jpg",
            "bmp",
            " jpeg",
            "jpeg ",
            "image/jpeg",
            "heic",
            "magick",
        ] {
            assert_eq!(parse_type(bad), Err(()), "{bad:?}");
        }
    }

    // --- sniffing binary formats ---

    #[test]
    fn sniffs_jpeg_png_gif_pdf() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0\0\x10JFIF"), Some(ImageType::Jpeg));
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(ImageType::Png)
        );
        assert_eq!(sniff(b"GIF87a\x01\0\x01\0"), Some(ImageType::Gif));
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), Some(ImageType::Gif));
        assert_eq!(sniff(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3"), Some(ImageType::Pdf));
    }

    #[test]
    fn sniffs_webp_only_with_a_vp8_chunk() {
        assert_eq!(
            sniff(b"RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0"),
            Some(ImageType::Webp)
        );
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8L"), Some(ImageType::Webp));
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8X"), Some(ImageType::Webp));
        assert_eq!(sniff(b"RIFF\x24\0\0\0WAVEfmt "), None);
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBP"), None);
    }

    #[test]
    fn sniffs_tiff_but_not_canon_raw() {
        assert_eq!(sniff(b"II*\0\x08\0\0\0\x10\0"), Some(ImageType::Tiff));
        assert_eq!(sniff(b"MM\0*\0\0\0\x08\0\x10"), Some(ImageType::Tiff));
        assert_eq!(sniff(b"II*\0\x10\0\0\0CR\x02\0"), None);
        // A truncated TIFF header is still TIFF: it cannot be a CR2.
        assert_eq!(sniff(b"II*\0"), Some(ImageType::Tiff));
    }

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compatible.len();
        let mut b = (size as u32).to_be_bytes().to_vec();
        b.extend_from_slice(b"ftyp");
        b.extend_from_slice(major);
        b.extend_from_slice(&[0, 0, 0, 0]);
        for brand in compatible {
            b.extend_from_slice(*brand);
        }
        b.extend_from_slice(b"\0\0\0\x20meta");
        b
    }

    #[test]
    fn sniffs_heic_as_imaginary_does() {
        assert_eq!(
            sniff(&ftyp(b"heic", &[b"mif1", b"heic"])),
            Some(ImageType::Heif)
        );
        assert_eq!(
            sniff(&ftyp(b"mif1", &[b"mif1", b"heic"])),
            Some(ImageType::Heif)
        );
        assert_eq!(
            sniff(&ftyp(b"msf1", &[b"msf1", b"heic"])),
            Some(ImageType::Heif)
        );
    }

    #[test]
    fn fix_sniffs_every_heif_brand() {
        for brand in [b"heix", b"hevc", b"hevx", b"mif1", b"msf1"] {
            assert_eq!(sniff(&ftyp(brand, &[])), Some(ImageType::Heif), "{brand:?}");
        }
    }

    #[test]
    fn fix_sniffs_avif() {
        assert_eq!(
            sniff(&ftyp(b"avif", &[b"avif", b"mif1", b"miaf"])),
            Some(ImageType::Avif)
        );
        assert_eq!(
            sniff(&ftyp(b"avis", &[b"avis", b"msf1"])),
            Some(ImageType::Avif)
        );
        // Early encoders: generic major brand, `avif` among the compatible brands.
        assert_eq!(
            sniff(&ftyp(b"mif1", &[b"avif", b"miaf"])),
            Some(ImageType::Avif)
        );
    }

    #[test]
    fn other_iso_bmff_files_are_not_images() {
        assert_eq!(sniff(&ftyp(b"isom", &[b"isom", b"mp41"])), None);
        assert_eq!(sniff(&ftyp(b"qt  ", &[])), None);
        // `avif` among the compatible brands of a video does not make it an image.
        assert_eq!(sniff(&ftyp(b"mp42", &[b"avif"])), None);
    }

    #[test]
    fn ftyp_box_sizes_that_lie_do_not_panic() {
        let mut b = ftyp(b"mif1", &[b"avif"]);
        b[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(sniff(&b), Some(ImageType::Avif));
        b[0..4].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(sniff(&b), Some(ImageType::Heif));
        assert_eq!(sniff(b"\0\0\0\x18ftypavi"), None);
        assert_eq!(sniff(b"\0\0\0\x18ftyp"), None);
    }

    #[test]
    fn sniffs_jpeg_xl() {
        assert_eq!(sniff(b"\xFF\x0A\xFA\x7F\x01"), Some(ImageType::Jxl));
        assert_eq!(
            sniff(b"\0\0\0\x0cJXL \r\n\x87\n\0\0\0\x14ftypjxl "),
            Some(ImageType::Jxl)
        );
    }

    #[test]
    fn rejects_bmp_ico_jpeg2000_and_garbage() {
        assert_eq!(sniff(b"BM\x36\0\x0c\0\0\0\0\0\x36\0\0\0"), None);
        assert_eq!(sniff(b"\0\0\x01\0\x01\0\x10\x10\0\0"), None);
        assert_eq!(sniff(b"\0\0\0\x0cjP  \r\n\x87\n\0\0\0\x14ftypjp2 "), None);
        assert_eq!(sniff(b"\xFF\x4F\xFF\x51\0\x2f"), None);
        assert_eq!(sniff(b"hello world, this is text"), None);
        assert_eq!(sniff(b"\0\x01\x02\x03\x04\x05\x06\x07\x08\x09"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn short_prefixes_never_panic() {
        let samples: [&[u8]; 6] = [
            b"\xFF\xD8\xFF\xE0",
            b"\0\0\0\x0cJXL \r\n\x87\n",
            b"RIFF\x24\0\0\0WEBPVP8 ",
            b"\0\0\0\x1cftypavif\0\0\0\0avifmif1",
            b"<?xml version=\"1.0\"?><svg></svg>",
            b"  <svg xmlns=\"http://www.w3.org/2000/svg\"></svg>  ",
        ];
        for sample in samples {
            for end in 0..=sample.len() {
                let _ = sniff(&sample[..end]);
            }
        }
    }

    // --- sniffing SVG and other text ---

    #[test]
    fn sniffs_plain_svg() {
        let svg =
            br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>"#;
        assert_eq!(sniff(svg), Some(ImageType::Svg));
        assert_eq!(
            sniff(b"\n  <SVG width=\"1\"></SVG>\n\n"),
            Some(ImageType::Svg)
        );
    }

    #[test]
    fn sniffs_svg_with_doctype() {
        let svg = b"<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\">\n<svg></svg>";
        assert_eq!(sniff(svg), Some(ImageType::Svg));
    }

    #[test]
    fn quirk_any_xml_counts_as_svg() {
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?><svg></svg>"),
            Some(ImageType::Svg)
        );
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?><feed></feed>"),
            Some(ImageType::Svg)
        );
        assert_eq!(
            sniff(b"\r\n <?xml version=\"1.0\"?><a/>"),
            Some(ImageType::Svg)
        );
    }

    #[test]
    fn quirk_an_svg_starting_with_a_comment_is_html() {
        assert_eq!(sniff(b"<!-- made by hand --><svg></svg>"), None);
        assert_eq!(sniff(b"<html><svg></svg></html>"), None);
    }

    #[test]
    fn comments_inside_an_svg_are_ignored() {
        let svg = b"<svg><!-- a * star in a comment --><rect/></svg><!-- trailer -->";
        assert_eq!(sniff(svg), Some(ImageType::Svg));
    }

    #[test]
    fn quirk_a_star_inside_the_svg_rejects_it() {
        assert_eq!(sniff(b"<svg><style>* { fill: red }</style></svg>"), None);
    }

    #[test]
    fn svg_needs_its_closing_tag_and_nothing_after_it() {
        assert_eq!(sniff(b"<svg width=\"10\">"), None);
        assert_eq!(sniff(b"<svg></svg> trailing"), None);
        assert_eq!(sniff(b"<svg/>          "), None);
    }

    #[test]
    fn quirk_a_bom_before_svg_rejects_it() {
        assert_eq!(sniff(b"\xEF\xBB\xBF<svg></svg>"), None);
    }

    #[test]
    fn binary_bytes_reject_svg_text() {
        assert_eq!(sniff(b"<svg>\x01</svg>"), None);
        assert_eq!(sniff(b"<svg>\x1b</svg>"), Some(ImageType::Svg)); // ESC is not binary
    }

    #[test]
    fn svg_must_be_longer_than_eight_bytes() {
        assert_eq!(sniff(b"<svg></svg>"), Some(ImageType::Svg));
        assert_eq!(sniff(b"<svg>"), None);
    }

    #[test]
    fn unterminated_comments_and_tags_do_not_panic() {
        assert_eq!(
            sniff(b"<svg><!-- never closed </svg>"),
            Some(ImageType::Svg)
        );
        assert_eq!(sniff(b"<?xml never closed"), Some(ImageType::Svg));
        assert_eq!(sniff(b"<!doctype svg never closed"), None);
        assert_eq!(sniff(b"<svg never closed........"), None);
    }

    // --- negotiation ---

    #[test]
    fn no_accept_header_keeps_the_input_format() {
        assert_eq!(negotiate(None), None);
        assert_eq!(negotiate(Some("")), None);
    }

    #[test]
    fn first_listed_candidate_wins_without_q_values() {
        assert_eq!(
            negotiate(Some("image/png, image/webp")),
            Some(ImageType::Png)
        );
        assert_eq!(
            negotiate(Some("image/avif,image/webp,*/*")),
            Some(ImageType::Webp)
        );
        assert_eq!(
            negotiate(Some("text/html, IMAGE/JPEG ;charset=x")),
            Some(ImageType::Jpeg)
        );
    }

    #[test]
    fn wildcards_and_other_types_never_pick() {
        assert_eq!(negotiate(Some("image/avif, image/*, */*")), None);
        assert_eq!(negotiate(Some("image/jpg, image/gif")), None);
    }

    #[test]
    fn fix_q_values_are_honoured() {
        assert_eq!(
            negotiate(Some("image/webp;q=0.5, image/png")),
            Some(ImageType::Png)
        );
        assert_eq!(
            negotiate(Some("image/webp;q=0, image/jpeg;q=0.1")),
            Some(ImageType::Jpeg)
        );
        assert_eq!(negotiate(Some("image/webp;q=0")), None);
        assert_eq!(
            negotiate(Some("image/png; Q = 0.8, image/webp;q=0.9")),
            Some(ImageType::Webp)
        );
    }

    #[test]
    fn q_ties_go_to_the_first_listed() {
        assert_eq!(
            negotiate(Some("image/jpeg;q=0.8, image/webp;q=0.8")),
            Some(ImageType::Jpeg)
        );
    }

    #[test]
    fn the_first_entry_of_a_repeated_type_counts() {
        assert_eq!(
            negotiate(Some("image/webp;q=0, image/webp, image/png;q=0.5")),
            Some(ImageType::Png)
        );
    }

    #[test]
    fn malformed_q_values_count_as_one() {
        assert_eq!(
            negotiate(Some("image/png;q=0.5, image/webp;q=abc")),
            Some(ImageType::Webp)
        );
        assert_eq!(
            negotiate(Some("image/png;q=0.5, image/webp;q=nan")),
            Some(ImageType::Webp)
        );
        assert_eq!(
            negotiate(Some("image/png;q=0.5, image/webp;q=7")),
            Some(ImageType::Webp)
        );
    }

    /// Random buffers built from magic-number fragments and SVG syntax: sniffing returns
    /// something or nothing, but never panics.
    #[test]
    fn random_buffers_never_panic() {
        const PIECES: [&[u8]; 24] = [
            b"<",
            b">",
            b"<svg",
            b"</svg>",
            b"<?xml",
            b"<!--",
            b"-->",
            b"<!doctype svg",
            b"*",
            b" ",
            b"\n",
            b"\0",
            b"\x01",
            b"\xFF",
            b"\xD8",
            b"ftyp",
            b"mif1",
            b"avif",
            b"heic",
            b"\0\0\0\x0c",
            b"RIFF",
            b"WEBPVP",
            b"II*\0",
            b"CR",
        ];
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let length = next() % 10;
            let buf: Vec<u8> = (0..length)
                .flat_map(|_| PIECES[(next() % 24) as usize].iter().copied())
                .collect();
            let _ = sniff(&buf);
        }
    }
}
