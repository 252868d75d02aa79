//! Request-body schemas with the reference's rules: unknown fields rejected, every field error
//! collected into one `details` object, falsy bodies read as `{}`, exact messages.

use aegis_domain::user::Email;
use aegis_domain::validation::{
    FieldErrors, check_length_1_255, check_max_255, check_no_control, check_password_presented,
    check_password_to_set, is_valid_url, msg,
};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// A format or length rule on a string field. Format rules run before length rules, so a field can
/// report both.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// 1 to 255 characters.
    Length1To255,
    /// At most 255 characters.
    Max255,
    /// Text that reaches a mail header: no control characters (decision 30).
    NoControl,
    /// A URL of the original service's formats.
    Url,
    /// A password being set: at least 8 characters, at most 72 UTF-8 bytes.
    PasswordSet,
    /// A password being presented: at most 72 UTF-8 bytes, checked before any lookup.
    PasswordPresented,
}

impl Rule {
    fn check(self, value: &str) -> Result<(), &'static str> {
        match self {
            Self::Length1To255 => check_length_1_255(value),
            Self::Max255 => check_max_255(value),
            Self::NoControl => check_no_control(value),
            Self::Url => is_valid_url(value).then_some(()).ok_or(msg::URL),
            Self::PasswordSet => check_password_to_set(value),
            Self::PasswordPresented => check_password_presented(value),
        }
    }
}

/// A request body being validated against a schema.
#[derive(Debug)]
pub struct Schema {
    fields: Map<String, Value>,
    errors: FieldErrors,
}

/// Whether Python would consider the JSON value false: such bodies are read as `{}`.
pub fn is_falsy(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

impl Schema {
    /// Starts validating `body` against a schema declaring `declared` fields.
    pub fn new(body: Value, declared: &[&str]) -> Result<Self, ApiError> {
        let fields = match body {
            Value::Object(map) => map,
            other if is_falsy(&other) => Map::new(),
            _ => return Err(ApiError::field("_schema", msg::INVALID_INPUT)),
        };
        let mut errors = FieldErrors::new();
        for key in fields.keys() {
            if !declared.contains(&key.as_str()) {
                errors.insert(key.clone(), vec![msg::UNKNOWN_FIELD.to_owned()]);
            }
        }
        Ok(Self { fields, errors })
    }

    /// Records a failure found outside the schema's own rules (a lookup, for instance).
    pub fn fail(&mut self, field: &str, message: &str) {
        self.errors
            .entry(field.to_owned())
            .or_default()
            .push(message.to_owned());
    }

    fn string(&mut self, field: &str, value: Value, rules: &[Rule]) -> Option<String> {
        let Value::String(s) = value else {
            self.fail(field, msg::NOT_STRING);
            return None;
        };
        if s.contains('\0') {
            self.fail(field, msg::NUL);
            return None;
        }
        let failures: Vec<&str> = rules.iter().filter_map(|r| r.check(&s).err()).collect();
        if failures.is_empty() {
            return Some(s);
        }
        for m in failures {
            self.fail(field, m);
        }
        None
    }

    /// The value of a field that may not be null: `None` (with the error recorded) when it is null,
    /// or absent and `required`.
    fn non_null(&mut self, field: &str, required: bool) -> Option<Value> {
        match self.fields.remove(field) {
            None => {
                if required {
                    self.fail(field, msg::REQUIRED);
                }
                None
            }
            Some(Value::Null) => {
                self.fail(field, msg::NULL);
                None
            }
            Some(v) => Some(v),
        }
    }

    /// A string that must be present and not null.
    pub fn required_str(&mut self, field: &str, rules: &[Rule]) -> Option<String> {
        let value = self.non_null(field, true)?;
        self.string(field, value, rules)
    }

    /// A string that may be absent but not null. `None` when absent or invalid.
    pub fn optional_str(&mut self, field: &str, rules: &[Rule]) -> Option<String> {
        let value = self.non_null(field, false)?;
        self.string(field, value, rules)
    }

    /// A string that may be absent or null: `None` absent (or invalid), `Some(None)` null.
    pub fn nullable_str(&mut self, field: &str, rules: &[Rule]) -> Option<Option<String>> {
        match self.fields.remove(field) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(v) => self.string(field, v, rules).map(Some),
        }
    }

    fn email(&mut self, field: &str, value: Value) -> Option<Email> {
        let raw = self.string(field, value, &[])?;
        match Email::parse(&raw) {
            Ok(email) => Some(email),
            Err(e) => {
                for m in e.messages() {
                    self.fail(field, m);
                }
                None
            }
        }
    }

    /// An email address that must be present and not null, parsed to its normal form (the only
    /// way a request's address becomes an [`Email`]).
    pub fn required_email(&mut self, field: &str) -> Option<Email> {
        let value = self.non_null(field, true)?;
        self.email(field, value)
    }

    /// An email address that may be absent but not null. `None` when absent or invalid.
    pub fn optional_email(&mut self, field: &str) -> Option<Email> {
        let value = self.non_null(field, false)?;
        self.email(field, value)
    }

    /// The raw value of a required field, for checks the schema cannot make itself.
    pub fn required_value(&mut self, field: &str) -> Option<Value> {
        self.non_null(field, true)
    }

    /// True when `field` has no error recorded yet.
    pub fn is_unset_or_ok(&self, field: &str) -> bool {
        !self.errors.contains_key(field)
    }

    /// Drops a declared field another layer has already checked (the gate's `site_id`).
    pub fn skip(&mut self, field: &str) {
        self.fields.remove(field);
    }

    /// A strict boolean: only JSON `true` and `false`.
    pub fn strict_bool(&mut self, field: &str) -> Option<bool> {
        match self.fields.remove(field) {
            None => None,
            Some(Value::Bool(b)) => Some(b),
            Some(Value::Null) => {
                self.fail(field, msg::NULL);
                None
            }
            Some(_) => {
                self.fail(field, msg::NOT_BOOL);
                None
            }
        }
    }

    /// A strict boolean that must be present.
    pub fn required_bool(&mut self, field: &str) -> Option<bool> {
        if !self.fields.contains_key(field) {
            self.fail(field, msg::REQUIRED);
            return None;
        }
        self.strict_bool(field)
    }

    /// Ends validation: `Ok` when no rule failed, else the collected `details`.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn details(result: Result<(), ApiError>) -> FieldErrors {
        match result {
            Err(ApiError::Validation(d)) => d,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn falsy_bodies_are_empty_objects_and_other_non_objects_are_refused() {
        for falsy in [
            json!(null),
            json!([]),
            json!(0),
            json!(false),
            json!(""),
            json!(0.0),
        ] {
            let mut s = Schema::new(falsy, &["a"]).unwrap();
            assert_eq!(s.required_str("a", &[]), None);
            assert_eq!(details(s.finish())["a"], [msg::REQUIRED]);
        }
        for other in [json!([1]), json!("x"), json!(1), json!(true)] {
            let err = Schema::new(other, &["a"]).unwrap_err();
            assert_eq!(details(Err(err))["_schema"], [msg::INVALID_INPUT]);
        }
    }

    #[test]
    fn every_error_is_collected() {
        let mut s = Schema::new(
            json!({"name": "", "email": 5, "url": "nope", "flag": "true", "extra": 1, "n": null}),
            &["name", "email", "url", "flag", "n", "missing"],
        )
        .unwrap();
        s.required_str("name", &[Rule::Length1To255]);
        s.required_email("email");
        s.optional_str("url", &[Rule::Url, Rule::Max255]);
        s.strict_bool("flag");
        s.optional_str("n", &[]);
        s.required_str("missing", &[]);
        let d = details(s.finish());
        assert_eq!(d["name"], [msg::LENGTH_1_255]);
        assert_eq!(d["email"], [msg::NOT_STRING]);
        assert_eq!(d["url"], [msg::URL]);
        assert_eq!(d["flag"], [msg::NOT_BOOL]);
        assert_eq!(d["extra"], [msg::UNKNOWN_FIELD]);
        assert_eq!(d["n"], [msg::NULL]);
        assert_eq!(d["missing"], [msg::REQUIRED]);
    }

    #[test]
    fn format_and_length_failures_are_both_reported() {
        let long_bad = format!("{}@", "a".repeat(300));
        let mut s = Schema::new(json!({ "email": long_bad }), &["email"]).unwrap();
        assert_eq!(s.required_email("email"), None);
        assert_eq!(details(s.finish())["email"], [msg::EMAIL, msg::MAX_255]);
    }

    #[test]
    fn emails_come_out_in_their_normal_form() {
        let mut s = Schema::new(
            json!({"a": "Jose\u{301}@BÜCHER.de", "b": "\"q\"@x.com", "c": null, "d": 1}),
            &["a", "b", "c", "d", "e", "f"],
        )
        .unwrap();
        assert_eq!(
            s.required_email("a").map(Email::into_string).as_deref(),
            Some("jos\u{e9}@xn--bcher-kva.de")
        );
        assert_eq!(s.required_email("b"), None);
        assert_eq!(s.optional_email("c"), None);
        assert_eq!(s.optional_email("d"), None);
        assert_eq!(s.required_email("e"), None);
        assert_eq!(s.optional_email("f"), None);
        let d = details(s.finish());
        assert_eq!(d["b"], [msg::EMAIL]);
        assert_eq!(d["c"], [msg::NULL]);
        assert_eq!(d["d"], [msg::NOT_STRING]);
        assert_eq!(d["e"], [msg::REQUIRED]);
        assert!(!d.contains_key("f"));
        assert!(!d.contains_key("a"));
    }

    #[test]
    fn header_text_refuses_control_characters() {
        let mut s = Schema::new(
            json!({"a": "Acme\r\nBcc: x@evil.test", "b": "Ünïcode \"Quoted\", <Evil>", "c": "a\u{2028}b"}),
            &["a", "b", "c"],
        )
        .unwrap();
        assert_eq!(
            s.required_str("a", &[Rule::NoControl, Rule::Length1To255]),
            None
        );
        assert!(s.required_str("b", &[Rule::NoControl]).is_some());
        assert_eq!(s.required_str("c", &[Rule::NoControl]), None);
        let d = details(s.finish());
        assert_eq!(d["a"], [msg::CONTROL]);
        assert_eq!(d["c"], [msg::CONTROL]);
        assert!(!d.contains_key("b"));
    }

    #[test]
    fn nul_characters_are_refused() {
        let mut s = Schema::new(json!({"a": "x\u{0}y"}), &["a"]).unwrap();
        assert_eq!(s.required_str("a", &[]), None);
        assert_eq!(details(s.finish())["a"], [msg::NUL]);
    }

    #[test]
    fn nullable_fields_distinguish_absent_null_and_value() {
        let mut s = Schema::new(json!({"a": null, "b": "x"}), &["a", "b", "c"]).unwrap();
        assert_eq!(s.nullable_str("a", &[]), Some(None));
        assert_eq!(s.nullable_str("b", &[]), Some(Some("x".into())));
        assert_eq!(s.nullable_str("c", &[]), None);
        s.finish().unwrap();
    }
}
