//! A body or query string that does not fit its type, told in the API's words. serde explains
//! a failure in Rust's (`invalid type: string "2", expected u32`, `unknown field `x`, expected
//! one of `request_key`, …`), which names internal types and fields a client never sees. Every
//! service reads its input through `parse_json` and `parse_query`, so this is the one place
//! where those messages become `items[0].quantity: must be an integer`.

use crate::problem::FieldError;

/// The field error for serde's `message` about the value at `path` (empty at the root).
pub(crate) fn field_error(path: &str, message: &str) -> FieldError {
    let message = message.split(" at line ").next().unwrap_or(message);
    // serde names a missing field only in its message, with the path pointing at the object
    // that lacks it: join the two.
    if let Some(name) = quoted_after(message, "missing field `") {
        return FieldError::new(join(path, name), "is required");
    }
    // An unknown field's path already ends with it (serde_path_to_error records the key it
    // failed on); joined only if it does not.
    if let Some(name) = quoted_after(message, "unknown field `") {
        let field = if path == name || path.ends_with(&format!(".{name}")) {
            path.to_owned()
        } else {
            join(path, name)
        };
        // The accepted fields are not listed: some are set by the gateway, not by clients.
        return FieldError::new(field, "is not a field of this request");
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let choices = rest.split_once("expected ").map_or("", |(_, expected)| expected);
        return FieldError::new(path, format!("must be one of: {}", unquote_list(choices)));
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let expected = rest.split_once(", expected ").map_or("", |(_, expected)| expected);
        return FieldError::new(path, format!("must be {}", kind(expected)));
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        let expected = rest.split_once(", expected ").map_or("", |(_, expected)| expected);
        return FieldError::new(path, format!("must be {}", range(expected)));
    }
    if let Some(rest) = message.strip_prefix("invalid length ") {
        let expected = rest.split_once(", expected ").map_or("", |(_, expected)| expected);
        return FieldError::new(path, format!("must be {}", kind(expected)));
    }
    if message.starts_with("data did not match any variant") {
        return FieldError::new(path, "has none of the accepted shapes");
    }
    // A query string's values are parsed from text by `FromStr`, whose messages are these.
    match message {
        "invalid digit found in string" | "cannot parse integer from empty string" => {
            return FieldError::new(path, "must be an integer");
        }
        "number too large to fit in target type" | "number too small to fit in target type" => {
            return FieldError::new(path, "is out of range");
        }
        "invalid float literal" => return FieldError::new(path, "must be a number"),
        "provided string was not `true` or `false`" => return FieldError::new(path, "must be true or false"),
        _ => {}
    }
    // A type's own message (`Sku::parse`'s reason): already written for the client.
    FieldError::new(path, message)
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
}

fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// serde's "one of `a`, `b`, `c`", "`a` or `b`" or "`a`" → "a, b, c".
fn unquote_list(choices: &str) -> String {
    let choices = choices.strip_prefix("one of ").unwrap_or(choices);
    choices.replace('`', "").replace(" or ", ", ")
}

/// What serde expected, as a kind of JSON value.
fn kind(expected: &str) -> String {
    let integer = ["i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize"];
    if integer.contains(&expected) {
        return "an integer".to_owned();
    }
    let words = match expected {
        "f32" | "f64" => "a number",
        "a string" | "a borrowed string" | "string" | "a character" | "char" => "a string",
        "a boolean" | "bool" => "true or false",
        "a sequence" | "a seq" | "sequence" | "a tuple" => "an array",
        "a map" | "map" | "struct variant" => "an object",
        "unit" | "null" => "null",
        other if other.starts_with("struct ") || other.starts_with("a map") => "an object",
        other if other.starts_with("tuple") || other.starts_with("an array") => "an array",
        other if other.starts_with("enum ") || other.contains("variant") => "one of the accepted values",
        // A visitor's own description ("a UUID string", "a date"): already in plain words.
        other if other.starts_with("a ") || other.starts_with("an ") => other,
        _ => "of another type",
    };
    words.to_owned()
}

/// What serde expected of a value of the right kind but out of bounds: an integer's range.
fn range(expected: &str) -> String {
    let bounds = match expected {
        "u8" => Some((0, i128::from(u8::MAX))),
        "u16" => Some((0, i128::from(u16::MAX))),
        "u32" => Some((0, i128::from(u32::MAX))),
        "u64" | "usize" => Some((0, i128::from(u64::MAX))),
        "i8" => Some((i128::from(i8::MIN), i128::from(i8::MAX))),
        "i16" => Some((i128::from(i16::MIN), i128::from(i16::MAX))),
        "i32" => Some((i128::from(i32::MIN), i128::from(i32::MAX))),
        "i64" | "isize" => Some((i128::from(i64::MIN), i128::from(i64::MAX))),
        _ => None,
    };
    match bounds {
        Some((0, max)) => format!("an integer from 0 to {max}"),
        Some((min, max)) => format!("an integer from {min} to {max}"),
        None => kind(expected),
    }
}

#[cfg(test)]
mod tests {
    use super::field_error;

    fn said(path: &str, message: &str) -> String {
        let error = field_error(path, message);
        format!("{}: {}", error.field, error.message)
    }

    #[test]
    fn serde_messages_become_the_apis_words() {
        assert_eq!(
            said("items[0].quantity", "invalid type: string \"2\", expected u32 at line 1 column 30"),
            "items[0].quantity: must be an integer"
        );
        assert_eq!(
            said("items[0].quantity", "invalid value: integer `-1`, expected u32"),
            "items[0].quantity: must be an integer from 0 to 4294967295"
        );
        assert_eq!(said("items", "invalid type: map, expected a sequence"), "items: must be an array");
        assert_eq!(said("", "invalid type: string \"x\", expected struct NewOrder"), ": must be an object");
        assert_eq!(
            said("author", "unknown variant `bot`, expected `customer` or `support`"),
            "author: must be one of: customer, support"
        );
        assert_eq!(said("items[0]", "missing field `sku`"), "items[0].sku: is required");
        assert_eq!(said("limit", "invalid digit found in string"), "limit: must be an integer");
        assert_eq!(said("sku", "SKUs are 3 to 32 characters"), "sku: SKUs are 3 to 32 characters");
    }

    #[test]
    fn an_unknown_field_is_named_without_listing_internal_ones() {
        let message = "unknown field `admin`, expected one of `customer_id`, `items`, `request_key`";
        for path in ["", "admin"] {
            let error = field_error(path, message);
            assert_eq!(
                (error.field.as_str(), error.message.as_str()),
                ("admin", "is not a field of this request")
            );
            assert!(!error.message.contains("request_key"));
        }
        assert_eq!(
            field_error("items[0].colour", "unknown field `colour`, expected `sku`").field,
            "items[0].colour"
        );
    }
}
