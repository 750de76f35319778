//! imaginary's query params (spec §6), typed and validated once at the boundary.
//!
//! [`Params::from_query`] reads the URL query of an image request; [`Params::from_operation`]
//! reads the `params` object of one `/pipeline` operation (spec §9.6). Both go through one
//! table-ordered reader ([`read_params`]) so every endpoint and every pipeline step sees the same
//! rules; they differ only in how a raw value turns into a number or flag ([`Raw`]).
//!
//! imaginary checks params in random order (Go map iteration), so which of several bad params
//! it reports is arbitrary. We check them in the order of the spec §6.2 table, which makes the
//! reported error deterministic: width, height, areawidth, areaheight, top, left, quality,
//! compression, rotate, factor, margin, dpi, textwidth, opacity, sigma, minampl, speed, flip,
//! flop, force, embed, nocrop, noreplicate, norotation, noprofile, stripmeta, interlace, palette,
//! text, font, image, type, color, background, colorspace, gravity, extend, aspectratio,
//! operations — and only then `type`'s validity (400 `Unsupported output image format`), as
//! imaginary checks it after parsing (spec §3 steps 5–6).

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::format::{parse_type, TypeParam};
use super::options::{Extend, Gravity};
use super::pipeline;
use super::OpError;

/// Largest magnitude accepted for an integer param.
///
/// FIX: imaginary converts any float64 to Go `int`, so `width=1e300` or `width=inf` become
/// platform-defined sizes (spec §6.1, §16). Every integer param imaginary knows is a size, an
/// offset, a factor or a small setting, so one generous bound serves them all.
pub const MAX_INT_PARAM: i64 = 100_000;

const UNSUPPORTED: &str = "unsupported value";
const OUT_OF_RANGE: &str = "value out of range";

/// `aspectratio=W:H` (spec §6.3), both parts positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AspectRatio {
    pub width: u32,
    pub height: u32,
}

/// Every param of the spec §6.2 table, parsed with imaginary's rules. A param that is absent
/// has its default (0, false, empty); query ints are never negative (imaginary takes `abs`), but
/// ints from `/pipeline` JSON numbers keep their sign (spec §9.6).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    pub width: i64,
    pub height: i64,
    pub areawidth: i64,
    pub areaheight: i64,
    pub top: i64,
    pub left: i64,
    /// 0 → 75 is applied by the plan, not here.
    pub quality: i64,
    /// 0 → 6 is applied by the plan, not here.
    pub compression: i64,
    /// As given; the plan normalises it to 0/90/180/270.
    pub rotate: i64,
    pub factor: i64,
    pub margin: i64,
    pub dpi: i64,
    pub textwidth: i64,
    pub opacity: f64,
    pub sigma: f64,
    pub minampl: f64,
    pub speed: i64,
    pub flip: bool,
    pub flop: bool,
    pub force: bool,
    pub embed: bool,
    /// `Some` whenever the param is present, even empty (`nocrop=` is `Some(false)`): /resize and
    /// /zoom only touch `crop` when it is (spec §6.2, §7).
    pub nocrop: Option<bool>,
    pub noreplicate: bool,
    pub norotation: bool,
    pub noprofile: bool,
    pub stripmeta: bool,
    pub interlace: bool,
    /// QUIRK (replicated): the presence of a parseable value enables it, `palette=false`
    /// included (spec §6.2).
    pub palette: bool,
    pub text: String,
    pub font: String,
    /// The watermark image URL of /watermarkimage.
    pub image: String,
    /// `type` as parsed; `None` when absent or empty. In a pipeline operation an unknown name is
    /// also `None` (imaginary keeps the input format there, spec §8.1).
    pub type_: Option<TypeParam>,
    /// `type` exactly as given, for `Invalid image type: <t>` in pipeline `convert` steps.
    pub type_raw: String,
    /// Text watermark colour, every comma-separated item (spec §6.1 color rule).
    pub color: Option<Vec<u8>>,
    /// RGB from `background`; `None` when absent or empty.
    pub background: Option<[u8; 3]>,
    /// `colorspace=bw` (exactly): grayscale output.
    pub grayscale: bool,
    pub gravity: Gravity,
    /// Copy when absent, Mirror for any unknown value (spec §9.5).
    pub extend: Extend,
    /// A well-formed `aspectratio`; see [`Params::aspect_ratio_applied`].
    pub aspectratio: Option<AspectRatio>,
    /// The `operations` JSON text as given (already checked to decode).
    pub operations: Option<String>,
}

impl Params {
    /// Parses an image request's raw URL query (without `?`) with Go's decoding rules
    /// (spec §6.1): pairs split on `&`, a pair containing `;` or a bad `%` escape is dropped,
    /// `+` is a space, and the first value of a repeated name wins.
    ///
    /// Errors: a bad value → [`OpError::Param`] naming the param, the value and imaginary's
    /// cause; a bad `type` → [`OpError::OutputFormat`].
    pub fn from_query(raw_query: &str) -> Result<Params, OpError> {
        let pairs = query_pairs(raw_query);
        let first = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let mut params =
            read_params(|name| first(name).map(Raw::Text)).map_err(Invalid::into_query_error)?;

        // `operations` is decoded on every endpoint, so bad JSON is a 400 anywhere (spec §6.2).
        if let Some(json) = first("operations") {
            pipeline::decode(json).map_err(|cause| OpError::Param {
                name: "operations".into(),
                value: json.into(),
                cause,
            })?;
            params.operations = Some(json.to_string());
        }
        if parse_type(&params.type_raw).is_err() {
            return Err(OpError::OutputFormat);
        }
        Ok(params)
    }

    /// Parses the `params` object of one `/pipeline` operation with the JSON typing rules of
    /// spec §9.6. Unknown names are ignored, names are case-sensitive, and an unknown `type` means
    /// "keep the input format". Errors are [`OpError::Process`]:
    /// `error while processing parameter "<k>" with value <Go %q>, error: <cause>`.
    pub fn from_operation(params: &Map<String, Value>) -> Result<Params, OpError> {
        read_params(|name| params.get(name).map(Raw::Json)).map_err(Invalid::into_operation_error)
    }

    /// `(width, height)` after `aspectratio` (spec §6.3): only when exactly one of them is
    /// non-zero, the other is derived with imaginary's truncating integer arithmetic —
    /// `height = width / W * H` — so `width=300&aspectratio=16:9` gives 162, not 169.
    pub fn aspect_ratio_applied(&self) -> (i64, i64) {
        match self.aspectratio {
            Some(ratio) => apply_aspect_ratio(self.width, self.height, ratio),
            None => (self.width, self.height),
        }
    }
}

fn apply_aspect_ratio(width: i64, height: i64, ratio: AspectRatio) -> (i64, i64) {
    let (w, h) = (i64::from(ratio.width), i64::from(ratio.height));
    match (width != 0, height != 0) {
        (true, false) => (width, (width / w).saturating_mul(h)),
        (false, true) => ((height / h).saturating_mul(w), height),
        _ => (width, height),
    }
}

// ---------------------------------------------------------------------------------------------
// Query decoding (spec §6.1)

/// Go's `url.ParseQuery`: decoded `(name, value)` pairs in request order. A pair containing `;`
/// or an invalid `%` escape is dropped; `+` decodes to a space. Invalid UTF-8 is replaced by
/// U+FFFD (Go keeps the raw bytes).
pub fn query_pairs(raw_query: &str) -> Vec<(String, String)> {
    raw_query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.contains(';'))
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((query_unescape(key)?, query_unescape(value)?))
        })
        .collect()
}

/// Go's `QueryUnescape`; `None` when a `%` is not followed by two hex digits.
fn query_unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_digit(*bytes.get(i + 1)?)?;
                let lo = hex_digit(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

// ---------------------------------------------------------------------------------------------
// One reader for query and pipeline params

/// A param's value as the client sent it.
#[derive(Clone, Copy, Debug)]
enum Raw<'a> {
    /// From the URL query: always text.
    Text(&'a str),
    /// From a `/pipeline` operation's `params`: any JSON value.
    Json(&'a Value),
}

impl<'a> Raw<'a> {
    /// The value as text, when it is text (query) or a JSON string.
    fn text(self) -> Option<&'a str> {
        match self {
            Raw::Text(text) => Some(text),
            Raw::Json(Value::String(text)) => Some(text),
            Raw::Json(_) => None,
        }
    }
}

/// A param that failed to parse: its name, its raw value and imaginary's cause.
#[derive(Debug)]
struct Invalid<'a> {
    name: &'static str,
    raw: Raw<'a>,
    cause: String,
}

impl Invalid<'_> {
    /// 400 `Error while processing parameters, error while processing parameter …`.
    fn into_query_error(self) -> OpError {
        let value = match self.raw {
            Raw::Text(text) => text.to_string(),
            Raw::Json(json) => json.to_string(),
        };
        OpError::Param {
            name: self.name.into(),
            value,
            cause: self.cause,
        }
    }

    /// 400 `Error while processing the image: error while processing parameter …` (spec §9.6).
    fn into_operation_error(self) -> OpError {
        let value = match self.raw {
            Raw::Text(text) => go_quote(text),
            Raw::Json(json) => go_q_verb(json),
        };
        OpError::Process(format!(
            "error while processing parameter \"{}\" with value {}, error: {}",
            self.name, value, self.cause
        ))
    }
}

/// Looks params up by name and parses them with one kind rule each.
struct Reader<F> {
    lookup: F,
}

impl<'a, F: Fn(&str) -> Option<Raw<'a>>> Reader<F> {
    /// The param parsed by `kind`, or `default` when absent.
    fn read<T>(
        &self,
        name: &'static str,
        default: T,
        kind: impl FnOnce(Raw<'a>) -> Result<T, String>,
    ) -> Result<T, Invalid<'a>> {
        match (self.lookup)(name) {
            None => Ok(default),
            Some(raw) => kind(raw).map_err(|cause| Invalid { name, raw, cause }),
        }
    }

    /// The param parsed by `kind` when present (even empty), for params whose presence matters.
    fn read_present<T>(
        &self,
        name: &'static str,
        kind: impl FnOnce(Raw<'a>) -> Result<T, String>,
    ) -> Result<Option<T>, Invalid<'a>> {
        self.read(name, None, |raw| kind(raw).map(Some))
    }
}

/// Every §6.2 param but `operations`, in table order (see the module docs).
fn read_params<'a>(lookup: impl Fn(&str) -> Option<Raw<'a>>) -> Result<Params, Invalid<'a>> {
    let r = Reader { lookup };
    let width = r.read("width", 0, int)?;
    let height = r.read("height", 0, int)?;
    Ok(Params {
        width,
        height,
        areawidth: r.read("areawidth", 0, int)?,
        areaheight: r.read("areaheight", 0, int)?,
        top: r.read("top", 0, int)?,
        left: r.read("left", 0, int)?,
        quality: r.read("quality", 0, int)?,
        compression: r.read("compression", 0, int)?,
        rotate: r.read("rotate", 0, int)?,
        factor: r.read("factor", 0, int)?,
        margin: r.read("margin", 0, int)?,
        dpi: r.read("dpi", 0, int)?,
        textwidth: r.read("textwidth", 0, int)?,
        opacity: r.read("opacity", 0.0, float)?,
        sigma: r.read("sigma", 0.0, float)?,
        minampl: r.read("minampl", 0.0, float)?,
        speed: r.read("speed", 0, int)?,
        flip: r.read("flip", false, boolean)?,
        flop: r.read("flop", false, boolean)?,
        force: r.read("force", false, boolean)?,
        embed: r.read("embed", false, boolean)?,
        nocrop: r.read_present("nocrop", boolean)?,
        noreplicate: r.read("noreplicate", false, boolean)?,
        norotation: r.read("norotation", false, boolean)?,
        noprofile: r.read("noprofile", false, boolean)?,
        stripmeta: r.read("stripmeta", false, boolean)?,
        interlace: r.read("interlace", false, boolean)?,
        // QUIRK: presence enables, whatever the (parseable) value says.
        palette: r.read_present("palette", boolean)?.is_some(),
        text: r.read("text", String::new(), string)?,
        font: r.read("font", String::new(), string)?,
        image: r.read("image", String::new(), string)?,
        type_raw: r.read("type", String::new(), string)?,
        // Filled in below from `type_raw`.
        type_: None,
        color: r.read_present("color", |raw| string(raw).map(|t| parse_color(&t)))?,
        background: r.read("background", None, background)?,
        grayscale: r.read("colorspace", false, |raw| Ok(string(raw)? == "bw"))?,
        gravity: r.read("gravity", Gravity::Centre, |raw| {
            string(raw).map(|t| gravity(&t))
        })?,
        extend: r.read("extend", Extend::Copy, |raw| {
            string(raw).map(|t| extend(&t))
        })?,
        aspectratio: r.read("aspectratio", None, |raw| aspect_ratio(raw, width, height))?,
        operations: None,
    })
    .map(|mut params| {
        // Strict validation of `type` is the query's business (it errors, §8.1); a pipeline
        // operation keeps the input format for a name it does not know.
        params.type_ = parse_type(&params.type_raw).unwrap_or(None);
        params
    })
}

// ---------------------------------------------------------------------------------------------
// Kind rules (spec §6.1, §9.6)

/// int: query text and JSON strings use [`parse_int`]; a JSON number is truncated toward zero
/// and keeps its sign (spec §9.6); anything else is `unsupported value`.
fn int(raw: Raw) -> Result<i64, String> {
    match raw {
        Raw::Json(Value::Number(number)) => {
            let value = number.as_f64().ok_or(OUT_OF_RANGE)?.trunc();
            bounded(value).map_err(Into::into)
        }
        _ => parse_int(raw.text().ok_or(UNSUPPORTED)?),
    }
}

/// Parses an int param as imaginary does (spec §6.1): empty → 0; otherwise Go's
/// `strconv.ParseFloat` syntax (exponents, hex floats, `_` separators, `inf`…), absolute value,
/// rounded half up (`floor(x + 0.5)`): `-90` → 90, `2.5` → 3, `1e2` → 100.
///
/// FIX: non-finite values and values above [`MAX_INT_PARAM`] are `value out of range`.
pub fn parse_int(text: &str) -> Result<i64, String> {
    if text.is_empty() {
        return Ok(0);
    }
    let value = go_parse_float(text).map_err(|e| e.cause(text))?;
    bounded((value.abs() + 0.5).floor()).map_err(Into::into)
}

/// FIX: see [`MAX_INT_PARAM`]. `value` is already integral.
fn bounded(value: f64) -> Result<i64, &'static str> {
    if value.is_finite() && value.abs() <= MAX_INT_PARAM as f64 {
        Ok(value as i64)
    } else {
        Err(OUT_OF_RANGE)
    }
}

/// float: query text and JSON strings use [`parse_float`]; a JSON number is taken as is (sign
/// kept, spec §9.6).
fn float(raw: Raw) -> Result<f64, String> {
    match raw {
        Raw::Json(Value::Number(number)) => number.as_f64().ok_or_else(|| OUT_OF_RANGE.into()),
        _ => parse_float(raw.text().ok_or(UNSUPPORTED)?),
    }
}

/// Parses a float param (spec §6.1): empty → 0; Go float syntax; absolute value. A syntax or
/// overflow error is `unsupported value`.
///
/// FIX: `inf` and `nan`, which Go accepts, are `value out of range`.
pub fn parse_float(text: &str) -> Result<f64, String> {
    if text.is_empty() {
        return Ok(0.0);
    }
    let value = go_parse_float(text).map_err(|_| UNSUPPORTED.to_string())?;
    if value.is_finite() {
        Ok(value.abs())
    } else {
        Err(OUT_OF_RANGE.into())
    }
}

/// bool: a JSON bool, or text with Go's `strconv.ParseBool` spellings (empty → false).
fn boolean(raw: Raw) -> Result<bool, String> {
    match raw {
        Raw::Json(Value::Bool(flag)) => Ok(*flag),
        _ => parse_bool(raw.text().ok_or(UNSUPPORTED)?),
    }
}

/// `1 t T TRUE true True` → true, `0 f F FALSE false False` and empty → false (spec §6.1).
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "" | "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(UNSUPPORTED.into()),
    }
}

/// string-like kinds (string, color, gravity, extend, colorspace, type, aspectratio): query
/// text as is; in JSON only strings (spec §9.6).
fn string(raw: Raw) -> Result<String, String> {
    raw.text()
        .map(str::to_string)
        .ok_or_else(|| UNSUPPORTED.into())
}

/// The color rule (spec §6.1): split on `,`; each item trimmed of spaces and read as an
/// unsigned decimal; a syntax error gives 0, a value above 255 gives 255. Never fails.
pub fn parse_color(text: &str) -> Vec<u8> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split(',').map(color_component).collect()
}

fn color_component(item: &str) -> u8 {
    let digits = item.trim_matches(' ');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    // All digits: only the size can be wrong, and Go's ParseUint then saturates.
    digits.parse::<u8>().unwrap_or(u8::MAX)
}

/// `background`: the first three color items.
///
/// FIX: one or two items crash imaginary's request (index out of range, spec §14.5); they are
/// a param error here.
fn background(raw: Raw) -> Result<Option<[u8; 3]>, String> {
    match parse_color(&string(raw)?)[..] {
        [] => Ok(None),
        [r, g, b, ..] => Ok(Some([r, g, b])),
        ref short => Err(format!(
            "expected three comma-separated values R,G,B, got {}",
            short.len()
        )),
    }
}

/// Trimmed, lower-cased; unknown names (`centre`, `center` included) are centre.
fn gravity(text: &str) -> Gravity {
    match text.trim().to_ascii_lowercase().as_str() {
        "north" => Gravity::North,
        "south" => Gravity::South,
        "east" => Gravity::East,
        "west" => Gravity::West,
        "smart" => Gravity::Smart,
        _ => Gravity::Centre,
    }
}

/// Trimmed, lower-cased. QUIRK (replicated, issue #313): any unknown value — empty and
/// `mirror` included — is mirror; `lastpixel` behaves as background (spec §6.2).
fn extend(text: &str) -> Extend {
    match text.trim().to_ascii_lowercase().as_str() {
        "white" => Extend::White,
        "black" => Extend::Black,
        "copy" => Extend::Copy,
        "background" | "lastpixel" => Extend::Background,
        _ => Extend::Mirror,
    }
}

/// `aspectratio` (spec §6.3): imaginary only uses it when exactly one of width/height is
/// non-zero, so only then is a malformed value an error; otherwise it is ignored, as there.
///
/// FIX: a value without `:`, a non-integer or zero part crashes imaginary's request (division
/// by zero, spec §14.5); here it is a param error, and so is a derived size above
/// [`MAX_INT_PARAM`].
fn aspect_ratio(raw: Raw, width: i64, height: i64) -> Result<Option<AspectRatio>, String> {
    let text = string(raw)?;
    let applies = !text.is_empty() && ((width != 0) != (height != 0));
    match parse_aspect_ratio(&text) {
        Some(ratio) if applies => {
            let (w, h) = apply_aspect_ratio(width, height, ratio);
            bounded(w as f64).and(bounded(h as f64))?;
            Ok(Some(ratio))
        }
        None if applies => Err("expected W:H with two positive integers, e.g. 16:9".into()),
        parsed => Ok(parsed),
    }
}

/// `W:H` after trimming and lower-casing; parts after the second `:` are ignored, as in
/// imaginary.
fn parse_aspect_ratio(text: &str) -> Option<AspectRatio> {
    let text = text.trim().to_ascii_lowercase();
    let mut parts = text.split(':');
    let width = parts.next()?.parse::<u32>().ok()?;
    let height = parts.next()?.parse::<u32>().ok()?;
    (width > 0 && height > 0).then_some(AspectRatio { width, height })
}

// ---------------------------------------------------------------------------------------------
// Go's strconv.ParseFloat

/// Why Go's `strconv.ParseFloat` refused a value.
#[derive(Clone, Copy, Debug, PartialEq)]
enum FloatError {
    Syntax,
    Range,
}

impl FloatError {
    /// The `NumError` text imaginary reports as the cause of a bad int param.
    fn cause(self, text: &str) -> String {
        let why = match self {
            FloatError::Syntax => "invalid syntax",
            FloatError::Range => "value out of range",
        };
        format!("strconv.ParseFloat: parsing {}: {why}", go_quote(text))
    }
}

/// `strconv.ParseFloat(text, 64)`: decimal (`1`, `.5`, `1e3`, `1_000`), hexadecimal with a
/// binary exponent (`0x1p4`), and `inf`/`infinity`/`nan` in any case. No surrounding spaces.
/// Overflow is [`FloatError::Range`]; underflow rounds to zero.
fn go_parse_float(text: &str) -> Result<f64, FloatError> {
    if let Some(special) = go_special_float(text) {
        return Ok(special);
    }
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if text.contains('_') && !go_underscores_ok(text) {
        return Err(FloatError::Syntax);
    }
    let magnitude = match unsigned.get(..2) {
        Some("0x" | "0X") if unsigned.len() > 2 => parse_hex_float(&unsigned[2..])?,
        _ => parse_decimal_float(unsigned)?,
    };
    if magnitude.is_infinite() {
        return Err(FloatError::Range);
    }
    Ok(if negative { -magnitude } else { magnitude })
}

/// Go's `special`: `[+-]inf`, `[+-]infinity`, `nan`, case-insensitive, the whole text.
fn go_special_float(text: &str) -> Option<f64> {
    let lower = text.to_ascii_lowercase();
    let (sign, unsigned) = match lower.as_bytes().first() {
        Some(b'-') => (-1.0, &lower[1..]),
        Some(b'+') => (1.0, &lower[1..]),
        _ => (1.0, lower.as_str()),
    };
    match unsigned {
        "inf" | "infinity" => Some(sign * f64::INFINITY),
        "nan" if unsigned.len() == lower.len() => Some(f64::NAN),
        _ => None,
    }
}

/// Decimal mantissa `digits[.digits]` (at least one digit, `_` allowed) and an optional
/// `e[+-]digits` exponent.
fn parse_decimal_float(text: &str) -> Result<f64, FloatError> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let mantissa_ok = mantissa.bytes().any(|b| b.is_ascii_digit())
        && mantissa
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'_')
        && mantissa.bytes().filter(|b| *b == b'.').count() <= 1;
    if !mantissa_ok || !exponent.is_none_or(go_exponent_ok) {
        return Err(FloatError::Syntax);
    }
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    cleaned.parse::<f64>().map_err(|_| FloatError::Syntax)
}

/// `[+-]digit[digits_]*`: Go requires a digit right after the sign.
fn go_exponent_ok(exponent: &str) -> bool {
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    digits.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
}

/// Hexadecimal mantissa `hex[.hex]` followed by a mandatory `p[+-]digits` binary exponent.
fn parse_hex_float(text: &str) -> Result<f64, FloatError> {
    let at = text.find(['p', 'P']).ok_or(FloatError::Syntax)?;
    let (mantissa, exponent) = (&text[..at], &text[at + 1..]);
    if !go_exponent_ok(exponent) {
        return Err(FloatError::Syntax);
    }
    let mut value = 0.0_f64;
    let mut fraction_digits: i64 = 0;
    let mut seen_dot = false;
    let mut seen_digit = false;
    for c in mantissa.chars().filter(|c| *c != '_') {
        if c == '.' && !seen_dot {
            seen_dot = true;
        } else if let Some(digit) = c.to_digit(16) {
            seen_digit = true;
            value = value * 16.0 + f64::from(digit);
            fraction_digits += i64::from(seen_dot);
        } else {
            return Err(FloatError::Syntax);
        }
    }
    if !seen_digit {
        return Err(FloatError::Syntax);
    }
    if value == 0.0 {
        return Ok(0.0);
    }
    let exponent: String = exponent.chars().filter(|c| *c != '_').collect();
    // Clamp like Go (which stops counting at 10000): far beyond f64's range either way.
    let exponent = exponent.parse::<i64>().unwrap_or(0).clamp(-10_000, 10_000);
    let power = (exponent - 4 * fraction_digits).clamp(-10_000, 10_000) as i32;
    // Two steps so an intermediate power of two does not overflow before the mantissa scales.
    Ok(value * 2f64.powi(power / 2) * 2f64.powi(power - power / 2))
}

/// Go's `underscoreOK`: `_` only between digits, or between a base prefix and a digit.
fn go_underscores_ok(text: &str) -> bool {
    let mut bytes = text.as_bytes();
    if let Some((b'+' | b'-', rest)) = bytes.split_first() {
        bytes = rest;
    }
    // What came last: '^' start, '0' digit or prefix, '_' underscore, '!' anything else.
    let mut saw = b'^';
    let mut hex = false;
    if bytes.len() >= 2 && bytes[0] == b'0' && matches!(bytes[1] | 0x20, b'b' | b'o' | b'x') {
        hex = bytes[1] | 0x20 == b'x';
        saw = b'0';
        bytes = &bytes[2..];
    }
    for &b in bytes {
        if b.is_ascii_digit() || (hex && b.is_ascii_hexdigit()) {
            saw = b'0';
        } else if b == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

// ---------------------------------------------------------------------------------------------
// Go's quoting, for error messages

/// Go's `strconv.Quote`: `"`, `\` and non-printable characters escaped.
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if !c.is_control() && (c == ' ' || !c.is_whitespace()) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a decoded JSON value (an `interface{}`): strings are quoted, other kinds print
/// Go's bad-verb form, e.g. `%!q(bool=true)`.
fn go_q_verb(value: &Value) -> String {
    match value {
        Value::String(text) => go_quote(text),
        Value::Number(number) => format!("%!q(float64={number})"),
        Value::Bool(flag) => format!("%!q(bool={flag})"),
        Value::Null => "%!q(<nil>)".into(),
        other => format!("%!q({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::ImageType;

    fn query(q: &str) -> Params {
        Params::from_query(q).unwrap_or_else(|e| panic!("{q:?}: {e}"))
    }

    fn param_error(q: &str) -> (String, String, String) {
        match Params::from_query(q) {
            Err(OpError::Param { name, value, cause }) => (name, value, cause),
            other => panic!("{q:?}: expected a param error, got {other:?}"),
        }
    }

    fn json_params(json: &str) -> Result<Params, OpError> {
        let value: Value = serde_json::from_str(json).expect("test JSON");
        Params::from_operation(value.as_object().expect("object"))
    }

    // --- query decoding ---

    #[test]
    fn empty_query_gives_defaults() {
        let p = query("");
        assert_eq!(p, Params::default());
        assert_eq!(p.extend, Extend::Copy);
        assert_eq!(p.gravity, Gravity::Centre);
        assert_eq!(p.nocrop, None);
    }

    #[test]
    fn first_value_wins() {
        assert_eq!(query("width=100&width=200").width, 100);
    }

    #[test]
    fn pairs_with_a_semicolon_are_dropped() {
        assert_eq!(query("width=100;height=5&height=7").width, 0);
        assert_eq!(query("width=100;height=5&height=7").height, 7);
    }

    #[test]
    fn pairs_with_a_bad_escape_are_dropped() {
        // The bad pair is dropped entirely, so the later valid one is the first value.
        assert_eq!(query("width=1%zz&width=300").width, 300);
        assert_eq!(query("text=100%").text, "");
        assert_eq!(query("text=100%25").text, "100%");
    }

    #[test]
    fn plus_is_a_space() {
        assert_eq!(
            query("text=Hello+World&font=sans%20bold+12").text,
            "Hello World"
        );
        assert_eq!(query("font=sans%20bold+12").font, "sans bold 12");
    }

    #[test]
    fn unknown_names_are_ignored() {
        assert_eq!(
            query("url=http%3A%2F%2Fx&key=k&sign=s&field=f&norotate=1"),
            Params::default()
        );
    }

    #[test]
    fn query_pairs_keep_order_and_repeats() {
        let pairs = query_pairs("b=2&a=1&b=3&&c&d=x%2By");
        let expected = [("b", "2"), ("a", "1"), ("b", "3"), ("c", ""), ("d", "x+y")];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs, expected);
    }

    // --- int kind ---

    #[test]
    fn ints_take_abs_and_round_half_up() {
        assert_eq!(query("width=300").width, 300);
        assert_eq!(query("rotate=-90").rotate, 90);
        assert_eq!(query("width=2.5").width, 3);
        assert_eq!(query("width=2.49").width, 2);
        assert_eq!(query("width=-2.5").width, 3);
        assert_eq!(query("width=0300").width, 300);
        assert_eq!(query("width=").width, 0);
    }

    #[test]
    fn ints_accept_go_float_syntax() {
        assert_eq!(query("width=1e2").width, 100);
        assert_eq!(query("width=1E%2B2").width, 100);
        assert_eq!(query("width=.5").width, 1);
        assert_eq!(query("width=5.").width, 5);
        assert_eq!(query("width=1_000").width, 1000);
        assert_eq!(query("width=0x1p4").width, 16);
        assert_eq!(query("width=0x1.8p1").width, 3);
        assert_eq!(query("width=%2B300").width, 300); // %2B is a literal '+'
        assert_eq!(query("width=1e-400").width, 0); // underflow is zero, not an error
    }

    #[test]
    fn int_syntax_errors_name_the_param_value_and_cause() {
        assert_eq!(
            param_error("width=abc"),
            (
                "width".into(),
                "abc".into(),
                r#"strconv.ParseFloat: parsing "abc": invalid syntax"#.into()
            )
        );
        // '+' is a space, and Go allows no spaces.
        assert_eq!(
            param_error("height=+300").2,
            r#"strconv.ParseFloat: parsing " 300": invalid syntax"#
        );
        for bad in [
            "1_", "_1", "1__0", "1e", "e5", ".", "0x10", "1.2.3", "infinit", "+nan", "1e+_5",
        ] {
            let q = format!("width={}", bad.replace('+', "%2B"));
            assert!(param_error(&q).2.ends_with("invalid syntax"), "{bad}");
        }
    }

    #[test]
    fn int_overflow_is_go_range_error() {
        assert_eq!(
            param_error("width=1e400").2,
            r#"strconv.ParseFloat: parsing "1e400": value out of range"#
        );
    }

    #[test]
    fn fix_non_finite_ints_are_out_of_range() {
        for bad in ["inf", "-Inf", "infinity", "NaN"] {
            let (name, value, cause) = param_error(&format!("height={bad}"));
            assert_eq!(
                (name.as_str(), value.as_str(), cause.as_str()),
                ("height", bad, OUT_OF_RANGE)
            );
        }
    }

    #[test]
    fn fix_ints_above_100000_are_out_of_range() {
        assert_eq!(query("width=100000").width, 100_000);
        assert_eq!(query("width=100000.4").width, 100_000);
        assert_eq!(param_error("width=100001").2, OUT_OF_RANGE);
        assert_eq!(param_error("factor=1e9").2, OUT_OF_RANGE);
        assert_eq!(param_error("rotate=-1e10").2, OUT_OF_RANGE);
    }

    #[test]
    fn quoted_values_escape_like_go() {
        assert_eq!(
            param_error("width=%22a%5C%0A%01").2,
            r#"strconv.ParseFloat: parsing "\"a\\\n\x01": invalid syntax"#
        );
        assert_eq!(go_quote("é\u{85}"), "\"é\\u0085\"");
    }

    // --- float kind ---

    #[test]
    fn floats_take_abs() {
        assert_eq!(query("opacity=0.5").opacity, 0.5);
        assert_eq!(query("sigma=-2.5").sigma, 2.5);
        assert_eq!(query("minampl=1e-1").minampl, 0.1);
        assert_eq!(query("sigma=").sigma, 0.0);
    }

    #[test]
    fn float_errors_are_unsupported_value() {
        assert_eq!(
            param_error("sigma=abc"),
            ("sigma".into(), "abc".into(), UNSUPPORTED.into())
        );
        assert_eq!(param_error("opacity=1e400").2, UNSUPPORTED);
    }

    #[test]
    fn fix_non_finite_floats_are_out_of_range() {
        assert_eq!(param_error("sigma=inf").2, OUT_OF_RANGE);
        assert_eq!(param_error("opacity=nan").2, OUT_OF_RANGE);
    }

    // --- bool kind ---

    #[test]
    fn bools_use_go_spellings() {
        for yes in ["1", "t", "T", "TRUE", "true", "True"] {
            assert!(query(&format!("flip={yes}")).flip, "{yes}");
        }
        for no in ["", "0", "f", "F", "FALSE", "false", "False"] {
            assert!(!query(&format!("flip={no}")).flip, "{no}");
        }
        assert_eq!(
            param_error("force=yes"),
            ("force".into(), "yes".into(), UNSUPPORTED.into())
        );
        assert_eq!(param_error("force=tRUE").2, UNSUPPORTED);
    }

    #[test]
    fn nocrop_remembers_presence() {
        assert_eq!(query("").nocrop, None);
        assert_eq!(query("nocrop=").nocrop, Some(false));
        assert_eq!(query("nocrop=false").nocrop, Some(false));
        assert_eq!(query("nocrop=1").nocrop, Some(true));
    }

    #[test]
    fn quirk_any_parseable_palette_enables_it() {
        assert!(!query("").palette);
        assert!(query("palette=true").palette);
        assert!(query("palette=false").palette);
        assert!(query("palette=").palette);
        assert_eq!(param_error("palette=nope").2, UNSUPPORTED);
    }

    // --- strings and colors ---

    #[test]
    fn strings_are_verbatim() {
        let p = query("text=%3Cb%3EHi%3C%2Fb%3E&font=&image=http%3A%2F%2Fh%2Fw.png");
        assert_eq!(p.text, "<b>Hi</b>");
        assert_eq!(p.font, "");
        assert_eq!(p.image, "http://h/w.png");
    }

    #[test]
    fn color_rule_never_fails() {
        assert_eq!(parse_color(""), Vec::<u8>::new());
        assert_eq!(parse_color("255,200,50"), vec![255, 200, 50]);
        assert_eq!(parse_color(" 1 , 2,3 "), vec![1, 2, 3]);
        assert_eq!(parse_color("300,-5,x,,1e2,+7"), vec![255, 0, 0, 0, 0, 0]);
        assert_eq!(parse_color("99999999999999999999999"), vec![255]);
        assert_eq!(parse_color("\t5"), vec![0]); // only spaces are trimmed
        assert_eq!(query("color=1,2").color, Some(vec![1, 2]));
        assert_eq!(query("").color, None);
    }

    #[test]
    fn background_uses_the_first_three_items() {
        assert_eq!(
            query("background=255,255,255").background,
            Some([255, 255, 255])
        );
        assert_eq!(query("background=1,2,3,4").background, Some([1, 2, 3]));
        assert_eq!(query("background=").background, None);
    }

    #[test]
    fn fix_background_with_one_or_two_items_is_an_error() {
        let (name, value, cause) = param_error("background=255,0");
        assert_eq!((name.as_str(), value.as_str()), ("background", "255,0"));
        assert!(cause.contains("got 2"), "{cause}");
        assert_eq!(param_error("background=9").0, "background");
    }

    #[test]
    fn colorspace_is_bw_exactly() {
        assert!(query("colorspace=bw").grayscale);
        assert!(!query("colorspace=BW").grayscale);
        assert!(!query("colorspace=srgb").grayscale);
    }

    #[test]
    fn gravity_names() {
        assert_eq!(query("gravity=north").gravity, Gravity::North);
        assert_eq!(query("gravity=%20SOUTH%20").gravity, Gravity::South);
        assert_eq!(query("gravity=East").gravity, Gravity::East);
        assert_eq!(query("gravity=west").gravity, Gravity::West);
        assert_eq!(query("gravity=smart").gravity, Gravity::Smart);
        assert_eq!(query("gravity=center").gravity, Gravity::Centre);
        assert_eq!(query("gravity=nowhere").gravity, Gravity::Centre);
    }

    #[test]
    fn extend_is_copy_when_absent() {
        assert_eq!(query("").extend, Extend::Copy);
        assert_eq!(query("extend=copy").extend, Extend::Copy);
        assert_eq!(query("extend=White").extend, Extend::White);
        assert_eq!(query("extend=black").extend, Extend::Black);
        assert_eq!(query("extend=background").extend, Extend::Background);
    }

    #[test]
    fn quirk_extend_present_but_unknown_is_mirror() {
        assert_eq!(query("extend=").extend, Extend::Mirror);
        assert_eq!(query("extend=mirror").extend, Extend::Mirror);
        assert_eq!(query("extend=repeat").extend, Extend::Mirror);
    }

    #[test]
    fn quirk_lastpixel_is_background() {
        assert_eq!(query("extend=lastpixel").extend, Extend::Background);
    }

    // --- type ---

    #[test]
    fn type_is_parsed_and_kept_raw() {
        let p = query("type=PNG");
        assert_eq!(p.type_, Some(TypeParam::Fixed(ImageType::Png)));
        assert_eq!(p.type_raw, "PNG");
        assert_eq!(query("type=auto").type_, Some(TypeParam::Auto));
        assert_eq!(query("type=").type_, None);
    }

    #[test]
    fn bad_type_is_unsupported_output_format() {
        assert_eq!(Params::from_query("type=jpg"), Err(OpError::OutputFormat));
        assert_eq!(Params::from_query("type=AUTO"), Err(OpError::OutputFormat));
    }

    #[test]
    fn param_errors_come_before_the_type_check_in_table_order() {
        // imaginary parses every param, then validates `type` (spec §3 steps 5-6).
        assert_eq!(param_error("type=jpg&width=x").0, "width");
        // Table order, whatever the query order.
        assert_eq!(param_error("extend=x&sigma=x&height=x&width=x").0, "width");
        assert_eq!(param_error("flip=x&sigma=x").0, "sigma");
        assert_eq!(param_error("background=1&palette=x").0, "palette");
    }

    // --- aspect ratio (spec §6.3) ---

    #[test]
    fn aspect_ratio_uses_truncating_integer_arithmetic() {
        assert_eq!(
            query("width=300&aspectratio=16:9").aspect_ratio_applied(),
            (300, 162)
        );
        assert_eq!(
            query("width=100&aspectratio=16:9").aspect_ratio_applied(),
            (100, 54)
        );
        assert_eq!(
            query("height=90&aspectratio=16:9").aspect_ratio_applied(),
            (160, 90)
        );
        assert_eq!(
            query("width=10&aspectratio=16:9").aspect_ratio_applied(),
            (10, 0)
        );
        assert_eq!(
            query("width=300&aspectratio=%201:2%20").aspect_ratio_applied(),
            (300, 600)
        );
    }

    #[test]
    fn aspect_ratio_only_applies_with_exactly_one_dimension() {
        assert_eq!(
            query("width=300&height=10&aspectratio=16:9").aspect_ratio_applied(),
            (300, 10)
        );
        assert_eq!(query("aspectratio=16:9").aspect_ratio_applied(), (0, 0));
        assert_eq!(query("width=300").aspect_ratio_applied(), (300, 0));
        // Extra parts are ignored, as in imaginary.
        assert_eq!(
            query("width=32&aspectratio=16:9:1").aspect_ratio_applied(),
            (32, 18)
        );
    }

    #[test]
    fn fix_malformed_aspect_ratio_is_an_error_when_it_applies() {
        for bad in ["169", "16:x", "x:9", "0:9", "16:0", "-16:9", "16.5:9", ":"] {
            let (name, value, _) = param_error(&format!("width=300&aspectratio={bad}"));
            assert_eq!((name.as_str(), value.as_str()), ("aspectratio", bad));
        }
        assert_eq!(param_error("height=300&aspectratio=4:0").0, "aspectratio");
    }

    #[test]
    fn malformed_aspect_ratio_is_ignored_when_it_does_not_apply() {
        assert_eq!(query("aspectratio=nonsense").aspectratio, None);
        assert_eq!(
            query("width=1&height=2&aspectratio=16:0").aspect_ratio_applied(),
            (1, 2)
        );
        assert_eq!(
            query("width=300&aspectratio=").aspect_ratio_applied(),
            (300, 0)
        );
    }

    #[test]
    fn fix_derived_size_above_the_bound_is_an_error() {
        assert_eq!(param_error("width=100000&aspectratio=1:2").2, OUT_OF_RANGE);
    }

    // --- operations ---

    #[test]
    fn operations_are_kept_raw_once_they_decode() {
        let p = query("operations=%5B%7B%22operation%22%3A%22flip%22%7D%5D");
        assert_eq!(p.operations.as_deref(), Some(r#"[{"operation":"flip"}]"#));
        assert_eq!(query("operations=").operations.as_deref(), Some(""));
    }

    #[test]
    fn bad_operations_json_is_a_param_error_on_any_endpoint() {
        let (name, value, cause) = param_error("operations=%5B%7B%22x%22%3A1%7D%5D");
        assert_eq!(
            (name.as_str(), value.as_str()),
            ("operations", r#"[{"x":1}]"#)
        );
        assert_eq!(cause, r#"json: unknown field "x""#);
    }

    // --- pipeline JSON typing (spec §9.6) ---

    #[test]
    fn json_numbers_are_truncated_and_keep_their_sign() {
        let p = json_params(r#"{"width": 100.9, "height": -50.7, "top": "-7.5"}"#).unwrap();
        assert_eq!((p.width, p.height), (100, -50));
        // Strings follow the query rules: abs and round.
        assert_eq!(p.top, 8);
    }

    #[test]
    fn json_floats_keep_their_sign() {
        let p = json_params(r#"{"sigma": -1.5, "opacity": "-0.5"}"#).unwrap();
        assert_eq!((p.sigma, p.opacity), (-1.5, 0.5));
    }

    #[test]
    fn json_bools_and_bool_strings() {
        let p = json_params(r#"{"flip": true, "stripmeta": "true", "norotation": "1"}"#).unwrap();
        assert!(p.flip && p.stripmeta && p.norotation);
        assert_eq!(
            json_params(r#"{"nocrop": false}"#).unwrap().nocrop,
            Some(false)
        );
        assert!(json_params(r#"{"palette": false}"#).unwrap().palette);
    }

    #[test]
    fn json_wrong_kinds_are_unsupported_values() {
        let cases = [
            (
                r#"{"width": true}"#,
                r#"parameter "width" with value %!q(bool=true), error: unsupported value"#,
            ),
            (
                r#"{"flip": 1}"#,
                r#"parameter "flip" with value %!q(float64=1), error: unsupported value"#,
            ),
            (
                r#"{"type": 5}"#,
                r#"parameter "type" with value %!q(float64=5), error: unsupported value"#,
            ),
            (
                r#"{"text": null}"#,
                r#"parameter "text" with value %!q(<nil>), error: unsupported value"#,
            ),
            (
                r#"{"width": "abc"}"#,
                r#"parameter "width" with value "abc", error: strconv.ParseFloat: parsing "abc": invalid syntax"#,
            ),
            (
                r#"{"height": 1e9}"#,
                r#"parameter "height" with value %!q(float64=1000000000.0), error: value out of range"#,
            ),
        ];
        for (json, expected) in cases {
            let expected = OpError::Process(format!("error while processing {expected}"));
            assert_eq!(json_params(json), Err(expected), "{json}");
        }
    }

    #[test]
    fn json_unknown_params_are_ignored_and_names_are_case_sensitive() {
        let p = json_params(r#"{"Width": 5, "whatever": [1], "operations": "[garbage"}"#).unwrap();
        assert_eq!(p, Params::default());
    }

    #[test]
    fn json_unknown_type_keeps_the_input_format() {
        let p = json_params(r#"{"type": "jpg"}"#).unwrap();
        assert_eq!((p.type_, p.type_raw.as_str()), (None, "jpg"));
        let p = json_params(r#"{"type": "WEBP"}"#).unwrap();
        assert_eq!(p.type_, Some(TypeParam::Fixed(ImageType::Webp)));
    }

    #[test]
    fn json_nextcloud_preview_params() {
        let p = json_params(
            r#"{"width":256,"height":256,"stripmeta":"true","type":"webp","norotation":"true","quality":"80"}"#,
        )
        .unwrap();
        assert_eq!((p.width, p.height, p.quality), (256, 256, 80));
        assert!(p.stripmeta && p.norotation);
        assert_eq!(p.type_, Some(TypeParam::Fixed(ImageType::Webp)));
    }

    #[test]
    fn json_background_and_aspect_ratio_follow_the_query_rules() {
        let p =
            json_params(r#"{"background": "1,2,3", "width": 300, "aspectratio": "16:9"}"#).unwrap();
        assert_eq!(
            (p.background, p.aspect_ratio_applied()),
            (Some([1, 2, 3]), (300, 162))
        );
        assert!(json_params(r#"{"background": "1,2"}"#).is_err());
        assert!(json_params(r#"{"width": 300, "aspectratio": "16"}"#).is_err());
    }

    // --- Go float syntax in isolation ---

    #[test]
    fn go_float_syntax() {
        assert_eq!(go_parse_float("1_000.5"), Ok(1000.5));
        assert_eq!(go_parse_float("0x_1p-2"), Ok(0.25));
        assert_eq!(go_parse_float("0X1P+3"), Ok(8.0));
        assert_eq!(go_parse_float("0x.8p1"), Ok(1.0));
        assert_eq!(go_parse_float("-0x0p0"), Ok(0.0));
        assert_eq!(go_parse_float("+Infinity"), Ok(f64::INFINITY));
        assert!(go_parse_float("nan").is_ok_and(f64::is_nan));
        assert_eq!(go_parse_float("0x1p99999"), Err(FloatError::Range));
        assert_eq!(go_parse_float("0x1"), Err(FloatError::Syntax));
        assert_eq!(go_parse_float("0xp1"), Err(FloatError::Syntax));
        assert_eq!(go_parse_float("1e1.5"), Err(FloatError::Syntax));
        assert_eq!(go_parse_float("1,5"), Err(FloatError::Syntax));
        assert_eq!(go_parse_float("١"), Err(FloatError::Syntax));
        assert_eq!(go_parse_float(""), Err(FloatError::Syntax));
        assert_eq!(go_parse_float("-"), Err(FloatError::Syntax));
    }
}
