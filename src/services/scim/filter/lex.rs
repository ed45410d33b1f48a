//! Splitting a filter or path into tokens, and reading the words among them.

use serde_json::Value;

use super::{AttrPath, CompValue, CompareOp, FilterError, MAX_INPUT_BYTES, error};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Str(String),
    /// An attribute path, keyword, operator, number or literal word, told apart by the parser.
    Word(String),
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) pos: usize,
}

/// Splits the input into tokens; string literals are decoded as JSON strings.
pub(super) fn lex(input: &str) -> Result<Vec<Token>, FilterError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(error(format!("longer than {MAX_INPUT_BYTES} bytes"), MAX_INPUT_BYTES));
    }
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let pos = i;
        let tok = match bytes[i] {
            b if b.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'(' => Tok::Open,
            b')' => Tok::Close,
            b'[' => Tok::OpenBracket,
            b']' => Tok::CloseBracket,
            b'"' => {
                let end = string_end(bytes, i).ok_or_else(|| error("unclosed string", pos))?;
                let literal = serde_json::from_str::<String>(&input[i..end])
                    .map_err(|_| error("invalid string literal", pos))?;
                i = end;
                tokens.push(Token { tok: Tok::Str(literal), pos });
                continue;
            }
            _ => {
                let end = word_end(bytes, i);
                tokens.push(Token { tok: Tok::Word(input[i..end].to_string()), pos });
                i = end;
                continue;
            }
        };
        tokens.push(Token { tok, pos });
        i += 1;
    }
    Ok(tokens)
}

/// The index just past the closing quote of the string starting at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The index just past the word starting at `start` (up to whitespace, a bracket or a quote).
fn word_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !b"()[]\"".contains(&bytes[i]) {
        i += 1;
    }
    i
}

/// True for `ALPHA *(nameChar)` (RFC 7643 §2.1) and `$ref`.
pub(super) fn is_attr_name(s: &str) -> bool {
    if s.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Parses `[urn:…:]name[.sub]`; the URN is everything up to the last `:`.
pub(super) fn attr_path(word: &str, pos: usize) -> Result<AttrPath, FilterError> {
    let is_urn = word.len() > 4 && word.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    let (urn, rest) = if is_urn {
        let colon = word.rfind(':').unwrap_or(3);
        if colon <= 4 {
            return Err(error(format!("'{word}' is a URN without an attribute"), pos));
        }
        (Some(word[..colon].to_string()), &word[colon + 1..])
    } else {
        (None, word)
    };
    let (name, sub) = match rest.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (rest, None),
    };
    if !is_attr_name(name) {
        return Err(error(format!("'{word}' is not an attribute path"), pos));
    }
    if sub.is_some_and(|sub| !is_attr_name(sub)) {
        return Err(error(format!("'{word}' is not an attribute path"), pos));
    }
    Ok(AttrPath { urn, name: name.to_string(), sub: sub.map(str::to_string) })
}

/// The comparison operator a word names, in any case.
pub(super) fn compare_op(word: &str) -> Option<CompareOp> {
    let op = match word.to_ascii_lowercase().as_str() {
        "eq" => CompareOp::Eq,
        "ne" => CompareOp::Ne,
        "co" => CompareOp::Co,
        "sw" => CompareOp::Sw,
        "ew" => CompareOp::Ew,
        "gt" => CompareOp::Gt,
        "ge" => CompareOp::Ge,
        "lt" => CompareOp::Lt,
        "le" => CompareOp::Le,
        _ => return None,
    };
    Some(op)
}

/// A literal word: `true`, `false`, `null` (case-insensitive, as ABNF strings are) or a JSON number.
pub(super) fn literal(word: &str, pos: usize) -> Result<CompValue, FilterError> {
    match word.to_ascii_lowercase().as_str() {
        "true" => return Ok(CompValue::Bool(true)),
        "false" => return Ok(CompValue::Bool(false)),
        "null" => return Ok(CompValue::Null),
        _ => {}
    }
    let starts_numeric = word.starts_with(|c: char| c.is_ascii_digit() || c == '-');
    match serde_json::from_str::<Value>(word) {
        Ok(Value::Number(n)) if starts_numeric => Ok(CompValue::Num(n)),
        _ if starts_numeric => Err(error(format!("'{word}' is not a number"), pos)),
        _ => Err(error(format!("expected a value, found '{word}'"), pos)),
    }
}
