//! `/pipeline` operations JSON (spec §9.6).
//!
//! Two stages, because imaginary reports their errors differently:
//! 1. [`decode`] reads the `operations` text the way Go's `encoding/json` decodes it into
//!    imaginary's `[]PipelineOperation` (with `DisallowUnknownFields`). It runs for the
//!    `operations` query param on *every* endpoint, and its errors are param errors.
//! 2. [`steps`] checks the count and operation names and parses each operation's `params`
//!    (spec §9.6 typing rules) before anything runs; its errors are
//!    `Error while processing the image: …` ([`OpError::Process`]).

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::options::Endpoint;
use super::params::{go_quote, Params};
use super::OpError;

/// Most operations one pipeline may hold.
pub const MAX_OPERATIONS: usize = 10;

/// One element of the `operations` array as decoded: nothing checked yet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Operation {
    /// `operation`; names are case-sensitive (`watermarkImage`).
    pub name: String,
    /// `ignore_failure`: when this step fails, keep the previous image and go on.
    pub ignore_failure: bool,
    /// `params`, kept as JSON: their typing rules differ from the query's.
    pub params: Map<String, Value>,
}

/// One checked pipeline step: the endpoint whose rules apply, and its own params (top-level
/// query params are not inherited).
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub endpoint: Endpoint,
    pub ignore_failure: bool,
    pub params: Params,
}

/// Decodes `operations` as Go does: only the first JSON value is read (trailing text is
/// ignored), text shorter than 2 bytes is an empty list, `null` is an empty list, keys match
/// case-insensitively and an unknown key is `json: unknown field "x"`. The error is the cause
/// text of a param error.
pub fn decode(json: &str) -> Result<Vec<Operation>, String> {
    // imaginary: "Fewer than 2 characters cannot be valid JSON. We assume empty operation."
    if json.len() < 2 {
        return Ok(Vec::new());
    }
    let mut values = serde_json::Deserializer::from_str(json).into_iter::<GoOperations>();
    match values.next() {
        None => Err("EOF".into()),
        Some(Err(e)) => Err(syntax_error_text(&e)),
        Some(Ok(decoded)) => match decoded.error {
            Some(error) => Err(error),
            None => Ok(decoded.operations),
        },
    }
}

/// Decodes, counts and checks every operation, then parses each one's params: all before any
/// step runs, so a bad step 5 fails the request before step 1 costs anything.
pub fn steps(operations_json: &str) -> Result<Vec<Step>, OpError> {
    let operations = decode(operations_json).map_err(|cause| OpError::Param {
        name: "operations".into(),
        value: operations_json.into(),
        cause,
    })?;
    if operations.is_empty() {
        return Err(OpError::Process(
            "Missing or invalid pipeline operations JSON".into(),
        ));
    }
    if operations.len() > MAX_OPERATIONS {
        return Err(OpError::Process(
            "Maximum allowed pipeline operations exceeded".into(),
        ));
    }
    operations.iter().map(step).collect()
}

fn step(operation: &Operation) -> Result<Step, OpError> {
    let endpoint = endpoint_named(&operation.name).ok_or_else(|| {
        OpError::Process(format!("Unsupported operation name: {}", operation.name))
    })?;
    Ok(Step {
        endpoint,
        ignore_failure: operation.ignore_failure,
        params: Params::from_operation(&operation.params)?,
    })
}

/// The operations a pipeline may use, by their case-sensitive names. `info` and `pipeline` are
/// not among them.
fn endpoint_named(name: &str) -> Option<Endpoint> {
    Some(match name {
        "crop" => Endpoint::Crop,
        "resize" => Endpoint::Resize,
        "enlarge" => Endpoint::Enlarge,
        "extract" => Endpoint::Extract,
        "rotate" => Endpoint::Rotate,
        "autorotate" => Endpoint::AutoRotate,
        "flip" => Endpoint::Flip,
        "flop" => Endpoint::Flop,
        "thumbnail" => Endpoint::Thumbnail,
        "zoom" => Endpoint::Zoom,
        "convert" => Endpoint::Convert,
        "watermark" => Endpoint::Watermark,
        "watermarkImage" => Endpoint::WatermarkImage,
        "blur" => Endpoint::Blur,
        "smartcrop" => Endpoint::SmartCrop,
        "fit" => Endpoint::Fit,
        _ => return None,
    })
}

/// serde_json's message without its ` at line L column C` suffix; an early end is Go's
/// `unexpected EOF`.
fn syntax_error_text(error: &serde_json::Error) -> String {
    if error.is_eof() {
        return "unexpected EOF".into();
    }
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

// ---------------------------------------------------------------------------------------------
// Go's decoding of `[]PipelineOperation`
//
// Go does not stop at a type mismatch or an unknown field: it records the first such error,
// decodes on, and returns it at the end (syntax errors do stop it). The visitors below keep the
// same "first error in document order" and leave syntax errors to serde_json.

/// The top-level value: the operations and the first recorded error.
#[derive(Default)]
struct GoOperations {
    operations: Vec<Operation>,
    error: Option<String>,
}

impl GoOperations {
    fn mismatch(kind: &str) -> Self {
        GoOperations {
            operations: Vec::new(),
            error: Some(format!(
                "json: cannot unmarshal {kind} into Go value of type main.PipelineOperations"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for GoOperations {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OperationsVisitor)
    }
}

struct OperationsVisitor;

impl<'de> Visitor<'de> for OperationsVisitor {
    type Value = GoOperations;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of pipeline operations")
    }

    /// `null` leaves the slice nil: no operations, no error.
    fn visit_unit<E>(self) -> Result<GoOperations, E> {
        Ok(GoOperations::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GoOperations, A::Error> {
        let mut decoded = GoOperations::default();
        while let Some(element) = seq.next_element::<GoOperation>()? {
            decoded.operations.push(element.operation);
            decoded.error = decoded.error.or(element.error);
        }
        Ok(decoded)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<GoOperations, A::Error> {
        drain_map(map)?;
        Ok(GoOperations::mismatch("object"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<GoOperations, E> {
        Ok(GoOperations::mismatch("bool"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<GoOperations, E> {
        Ok(GoOperations::mismatch("number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<GoOperations, E> {
        Ok(GoOperations::mismatch("number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<GoOperations, E> {
        Ok(GoOperations::mismatch("number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<GoOperations, E> {
        Ok(GoOperations::mismatch("string"))
    }
}

/// One array element: the operation and the first error recorded while decoding it.
#[derive(Default)]
struct GoOperation {
    operation: Operation,
    error: Option<String>,
}

impl GoOperation {
    fn mismatch(kind: &str) -> Self {
        GoOperation {
            operation: Operation::default(),
            error: Some(format!(
                "json: cannot unmarshal {kind} into Go value of type main.PipelineOperation"
            )),
        }
    }

    fn note(&mut self, error: String) {
        self.error.get_or_insert(error);
    }

    /// Stores one key's value the way Go stores it into the struct field it matches.
    fn set(&mut self, key: &str, value: Value) {
        if key.eq_ignore_ascii_case("operation") {
            match value {
                Value::String(name) => self.operation.name = name,
                Value::Null => {}
                other => self.note(field_mismatch(&other, "operation", "string")),
            }
        } else if key.eq_ignore_ascii_case("ignore_failure") {
            match value {
                Value::Bool(flag) => self.operation.ignore_failure = flag,
                Value::Null => {}
                other => self.note(field_mismatch(&other, "ignore_failure", "bool")),
            }
        } else if key.eq_ignore_ascii_case("params") {
            match value {
                // Go decodes a repeated object into the same map: entries accumulate.
                Value::Object(params) => self.operation.params.extend(params),
                // `null` sets a Go map to nil.
                Value::Null => self.operation.params.clear(),
                other => self.note(field_mismatch(&other, "params", "map[string]interface {}")),
            }
        }
    }
}

fn is_known_field(key: &str) -> bool {
    ["operation", "ignore_failure", "params"]
        .iter()
        .any(|field| key.eq_ignore_ascii_case(field))
}

fn field_mismatch(value: &Value, field: &str, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field PipelineOperation.{field} of type {go_type}",
        json_kind(value)
    )
}

/// The JSON kind name Go's `UnmarshalTypeError` prints.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl<'de> Deserialize<'de> for GoOperation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OperationVisitor)
    }
}

struct OperationVisitor;

impl<'de> Visitor<'de> for OperationVisitor {
    type Value = GoOperation;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a pipeline operation object")
    }

    /// `null` leaves the element zero: an operation with an empty name.
    fn visit_unit<E>(self) -> Result<GoOperation, E> {
        Ok(GoOperation::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GoOperation, A::Error> {
        let mut decoded = GoOperation::default();
        while let Some(key) = map.next_key::<String>()? {
            if is_known_field(&key) {
                let value = map.next_value::<Value>()?;
                decoded.set(&key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
                decoded.note(format!("json: unknown field {}", go_quote(&key)));
            }
        }
        Ok(decoded)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GoOperation, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(GoOperation::mismatch("array"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<GoOperation, E> {
        Ok(GoOperation::mismatch("bool"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<GoOperation, E> {
        Ok(GoOperation::mismatch("number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<GoOperation, E> {
        Ok(GoOperation::mismatch("number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<GoOperation, E> {
        Ok(GoOperation::mismatch("number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<GoOperation, E> {
        Ok(GoOperation::mismatch("string"))
    }
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::format::TypeParam;
    use crate::ops::ImageType;

    fn names(json: &str) -> Vec<String> {
        decode(json)
            .unwrap_or_else(|e| panic!("{json}: {e}"))
            .into_iter()
            .map(|op| op.name)
            .collect()
    }

    fn process_error(json: &str) -> String {
        match steps(json) {
            Err(OpError::Process(message)) => message,
            other => panic!("{json}: expected a processing error, got {other:?}"),
        }
    }

    // --- decoding ---

    #[test]
    fn decodes_operations_with_their_params() {
        let ops = decode(
            r#"[{"operation": "crop", "params": {"width": 300, "height": 260}},
                {"operation": "convert", "ignore_failure": true, "params": {"type": "webp"}}]"#,
        )
        .unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].name, "crop");
        assert_eq!(ops[0].params.get("width"), Some(&Value::from(300)));
        assert!(!ops[0].ignore_failure);
        assert!(ops[1].ignore_failure);
    }

    #[test]
    fn keys_match_case_insensitively() {
        let ops =
            decode(r#"[{"Operation": "flip", "IGNORE_FAILURE": true, "Params": {}}]"#).unwrap();
        assert_eq!(
            (ops[0].name.as_str(), ops[0].ignore_failure),
            ("flip", true)
        );
    }

    #[test]
    fn unknown_keys_are_an_error() {
        assert_eq!(
            decode(r#"[{"operation": "flip", "x": 1}]"#),
            Err(r#"json: unknown field "x""#.into())
        );
    }

    #[test]
    fn the_first_error_in_the_document_wins() {
        assert_eq!(
            decode(r#"[{"zz": 1, "operation": 5}]"#),
            Err(r#"json: unknown field "zz""#.into())
        );
        assert_eq!(
            decode(r#"[{"operation": 5, "zz": 1}]"#),
            Err("json: cannot unmarshal number into Go struct field PipelineOperation.operation of type string".into())
        );
    }

    #[test]
    fn wrong_kinds_are_go_type_errors() {
        assert_eq!(
            decode(r#"{"operation": "flip"}"#),
            Err(
                "json: cannot unmarshal object into Go value of type main.PipelineOperations"
                    .into()
            )
        );
        assert_eq!(
            decode(r#"["flip"]"#),
            Err(
                "json: cannot unmarshal string into Go value of type main.PipelineOperation".into()
            )
        );
        assert_eq!(
            decode(r#"[{"ignore_failure": "yes"}]"#),
            Err("json: cannot unmarshal string into Go struct field PipelineOperation.ignore_failure of type bool".into())
        );
        assert_eq!(
            decode(r#"[{"params": [1]}]"#),
            Err("json: cannot unmarshal array into Go struct field PipelineOperation.params of type map[string]interface {}".into())
        );
    }

    #[test]
    fn only_the_first_json_value_is_read() {
        assert_eq!(
            names(r#"[{"operation": "flip"}] trailing garbage"#),
            ["flip"]
        );
        assert_eq!(
            names(r#"[{"operation": "flip"}][{"operation": "flop"}]"#),
            ["flip"]
        );
    }

    #[test]
    fn short_text_and_null_are_empty_lists() {
        assert_eq!(decode(""), Ok(vec![]));
        assert_eq!(decode("x"), Ok(vec![]));
        assert_eq!(decode("null"), Ok(vec![]));
        assert_eq!(decode("[]"), Ok(vec![]));
        assert_eq!(names("[null]"), [""]);
    }

    #[test]
    fn nulls_and_repeats_follow_go() {
        let ops = decode(
            r#"[{"operation": "flip", "operation": null, "params": {"a": 1}, "params": {"b": 2}}]"#,
        )
        .unwrap();
        assert_eq!(ops[0].name, "flip");
        assert_eq!(ops[0].params.len(), 2);
        let ops = decode(r#"[{"params": {"a": 1}, "params": null}]"#).unwrap();
        assert!(ops[0].params.is_empty());
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(decode("  "), Err("EOF".into()));
        assert_eq!(decode(r#"[{"operation""#), Err("unexpected EOF".into()));
        let error = decode("[x]").unwrap_err();
        assert!(!error.contains(" at line "), "{error}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            "[{{\"params\": {{\"a\": {}1{}}}}}]",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert!(decode(&deep).is_err());
    }

    // --- steps ---

    #[test]
    fn steps_map_names_to_endpoints() {
        let all = r#"[{"operation":"crop"},{"operation":"resize"},{"operation":"enlarge"},
            {"operation":"extract"},{"operation":"rotate"},{"operation":"autorotate"},
            {"operation":"flip"},{"operation":"flop"},{"operation":"thumbnail"},{"operation":"zoom"}]"#;
        let endpoints: Vec<Endpoint> = steps(all).unwrap().iter().map(|s| s.endpoint).collect();
        use Endpoint::*;
        assert_eq!(
            endpoints,
            [Crop, Resize, Enlarge, Extract, Rotate, AutoRotate, Flip, Flop, Thumbnail, Zoom]
        );
        let rest = r#"[{"operation":"convert"},{"operation":"watermark"},{"operation":"watermarkImage"},
            {"operation":"blur"},{"operation":"smartcrop"},{"operation":"fit"}]"#;
        let endpoints: Vec<Endpoint> = steps(rest).unwrap().iter().map(|s| s.endpoint).collect();
        assert_eq!(
            endpoints,
            [Convert, Watermark, WatermarkImage, Blur, SmartCrop, Fit]
        );
    }

    #[test]
    fn operation_names_are_case_sensitive() {
        assert_eq!(
            process_error(r#"[{"operation": "watermarkimage"}]"#),
            "Unsupported operation name: watermarkimage"
        );
        assert_eq!(
            process_error(r#"[{"operation": "Resize"}]"#),
            "Unsupported operation name: Resize"
        );
        assert_eq!(
            process_error(r#"[{"operation": "info"}]"#),
            "Unsupported operation name: info"
        );
        assert_eq!(
            process_error(r#"[{"operation": "pipeline"}]"#),
            "Unsupported operation name: pipeline"
        );
        assert_eq!(process_error("[{}]"), "Unsupported operation name: ");
    }

    #[test]
    fn zero_operations_is_missing() {
        for empty in ["", "[]", "null", "x"] {
            assert_eq!(
                process_error(empty),
                "Missing or invalid pipeline operations JSON",
                "{empty}"
            );
        }
    }

    #[test]
    fn more_than_ten_operations_is_too_many() {
        let ten = format!("[{}]", [r#"{"operation":"flip"}"#; 10].join(","));
        assert_eq!(steps(&ten).map(|s| s.len()), Ok(10));
        let eleven = format!("[{}]", [r#"{"operation":"flip"}"#; 11].join(","));
        assert_eq!(
            process_error(&eleven),
            "Maximum allowed pipeline operations exceeded"
        );
    }

    #[test]
    fn bad_json_is_a_param_error() {
        assert!(matches!(
            steps(r#"[{"x": 1}]"#),
            Err(OpError::Param { ref name, .. }) if name == "operations"
        ));
    }

    #[test]
    fn steps_are_checked_in_order_before_anything_runs() {
        // Step 1's bad param is reported before step 2's bad name.
        assert_eq!(
            process_error(
                r#"[{"operation": "resize", "params": {"width": "x"}}, {"operation": "nope"}]"#
            ),
            r#"error while processing parameter "width" with value "x", error: strconv.ParseFloat: parsing "x": invalid syntax"#
        );
        assert_eq!(
            process_error(
                r#"[{"operation": "nope"}, {"operation": "resize", "params": {"width": "x"}}]"#
            ),
            "Unsupported operation name: nope"
        );
    }

    #[test]
    fn each_step_has_its_own_params() {
        let steps = steps(
            r#"[{"operation": "smartcrop", "params": {"width": 256, "height": 256, "type": "jpeg", "quality": "80"}},
                {"operation": "flip"}]"#,
        )
        .unwrap();
        assert_eq!((steps[0].params.width, steps[0].params.quality), (256, 80));
        assert_eq!(
            steps[0].params.type_,
            Some(TypeParam::Fixed(ImageType::Jpeg))
        );
        assert_eq!(steps[1].params, Params::default());
    }

    /// Random JSON-like text: decoding and checking may fail, but never panic.
    #[test]
    fn random_operations_never_panic() {
        const PIECES: [&str; 26] = [
            "[",
            "]",
            "{",
            "}",
            ",",
            ":",
            "null",
            "true",
            "1e400",
            "-5",
            "\"operation\"",
            "\"params\"",
            "\"ignore_failure\"",
            "\"resize\"",
            "\"width\"",
            "\"type\"",
            "\"convert\"",
            "\"x\"",
            "\"",
            " ",
            "\\",
            "\"aspectratio\"",
            "\"16:0\"",
            "\"background\"",
            "\"1,2\"",
            "0.5",
        ];
        let mut seed: u64 = 0xDEAD_BEEF_CAFE_F00D;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let length = next() % 16;
            let json: String = (0..length)
                .map(|_| PIECES[(next() % 26) as usize])
                .collect();
            let _ = steps(&json);
        }
    }
}
