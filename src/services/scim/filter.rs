//! The RFC 7644 §3.4.2.2 filter language and the §3.5.2 PATCH path, parsed into a small AST,
//! plus an evaluator for one JSON object (PATCH value filters).
//!
//! Parsing is bounded for hostile input: at most [`MAX_INPUT_BYTES`] bytes, [`MAX_DEPTH`] levels of
//! nesting (parentheses, `not`, value paths) and [`MAX_COMPARISONS`] comparisons; `and`/`or` chains
//! are built iteratively. A malformed filter is an `Err`, never a panic.

mod eval;
mod lex;

pub use eval::matches;
use lex::{Tok, Token, attr_path, compare_op, is_attr_name, lex, literal};

/// Longest filter or path accepted, in bytes.
pub const MAX_INPUT_BYTES: usize = 4096;
/// Deepest nesting of parentheses, `not` and value paths accepted.
pub const MAX_DEPTH: usize = 32;
/// Most comparisons (`pr` included) one filter may hold.
pub const MAX_COMPARISONS: usize = 100;

/// An attribute path as written: optional schema URN, attribute, optional sub-attribute.
#[derive(Clone, Debug, PartialEq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

/// A comparison operator (RFC 7644 §3.4.2.2, Table 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// The literal on the right of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum CompValue {
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Null,
}

/// A parsed filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Present(AttrPath),
    Compare(AttrPath, CompareOp, CompValue),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work" and value co "@x"]`: the inner filter's paths are relative to the
    /// multi-valued attribute (`name` = its sub-attribute, `urn`/`sub` None).
    ValuePath(AttrPath, Box<Filter>),
}

/// Why a filter or path was refused: a human-readable reason naming the byte position.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterError {
    pub message: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FilterError {}

/// A PATCH path: `attr`, `attr.sub`, `urn:…:attr`, `urn:…:attr.sub`, `attr[filter]`, `attr[filter].sub`.
/// When `filter` is Some, `attr.sub` is None and the trailing sub-attribute is in `sub`.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

fn error(message: impl Into<String>, pos: usize) -> FilterError {
    FilterError { message: format!("{} at position {pos}", message.into()) }
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    depth: usize,
    comparisons: usize,
    end: usize,
}

impl Parser {
    fn new(input: &str) -> Result<Parser, FilterError> {
        Ok(Parser { tokens: lex(input)?, next: 0, depth: 0, comparisons: 0, end: input.len() })
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.next).map(|t| &t.tok)
    }

    /// The position of the next token, or the end of the input.
    fn pos(&self) -> usize {
        self.tokens.get(self.next).map_or(self.end, |t| t.pos)
    }

    fn bump(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).cloned();
        self.next += 1;
        token
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), FilterError> {
        if self.peek() == Some(&tok) {
            self.next += 1;
            return Ok(());
        }
        Err(error(format!("expected {what}"), self.pos()))
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(error(format!("nested more than {MAX_DEPTH} levels deep"), self.pos()));
        }
        Ok(())
    }

    fn count_comparison(&mut self, pos: usize) -> Result<(), FilterError> {
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return Err(error(format!("more than {MAX_COMPARISONS} comparisons"), pos));
        }
        Ok(())
    }

    /// `and-expr *("or" and-expr)`, left-associative, built in a loop.
    fn or_expr(&mut self, in_value: bool) -> Result<Filter, FilterError> {
        let mut left = self.and_expr(in_value)?;
        while self.peek_keyword("or") {
            self.next += 1;
            let right = self.and_expr(in_value)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `unary *("and" unary)`, left-associative, built in a loop.
    fn and_expr(&mut self, in_value: bool) -> Result<Filter, FilterError> {
        let mut left = self.unary(in_value)?;
        while self.peek_keyword("and") {
            self.next += 1;
            let right = self.unary(in_value)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// A parenthesised filter, `not (…)`, or an attribute expression.
    fn unary(&mut self, in_value: bool) -> Result<Filter, FilterError> {
        let pos = self.pos();
        match self.bump().map(|t| t.tok) {
            Some(Tok::Open) => self.group(in_value),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("not") => {
                self.expect(Tok::Open, "'(' after 'not'")?;
                Ok(Filter::Not(Box::new(self.group(in_value)?)))
            }
            Some(Tok::Word(w)) => self.attr_expr(&w, pos, in_value),
            Some(_) => Err(error("expected an attribute path, '(' or 'not'", pos)),
            None => Err(error("unexpected end of filter", pos)),
        }
    }

    /// The rest of `( filter )`, after the opening parenthesis.
    fn group(&mut self, in_value: bool) -> Result<Filter, FilterError> {
        self.enter()?;
        let inner = self.or_expr(in_value)?;
        self.expect(Tok::Close, "')'")?;
        self.depth -= 1;
        Ok(inner)
    }

    /// `path pr`, `path op value` or `path[filter]`.
    fn attr_expr(&mut self, word: &str, pos: usize, in_value: bool) -> Result<Filter, FilterError> {
        let path = attr_path(word, pos)?;
        if in_value && (path.urn.is_some() || path.sub.is_some()) {
            return Err(error("a value filter names sub-attributes only", pos));
        }
        let op_pos = self.pos();
        match self.bump().map(|t| t.tok) {
            Some(Tok::OpenBracket) => {
                if in_value {
                    return Err(error("'[' inside a value filter", op_pos));
                }
                let inner = self.bracket(&path, pos)?;
                Ok(Filter::ValuePath(path, Box::new(inner)))
            }
            Some(Tok::Word(op)) if op.eq_ignore_ascii_case("pr") => {
                self.count_comparison(pos)?;
                Ok(Filter::Present(path))
            }
            Some(Tok::Word(op)) => {
                let op =
                    compare_op(&op).ok_or_else(|| error(format!("'{op}' is not an operator"), op_pos))?;
                self.count_comparison(pos)?;
                let value = self.comp_value()?;
                Ok(Filter::Compare(path, op, value))
            }
            _ => Err(error(format!("expected an operator after '{word}'"), op_pos)),
        }
    }

    /// The rest of `attr[filter]`, after the opening bracket.
    fn bracket(&mut self, path: &AttrPath, pos: usize) -> Result<Filter, FilterError> {
        if path.sub.is_some() {
            return Err(error("a value filter applies to an attribute, not a sub-attribute", pos));
        }
        self.enter()?;
        let inner = self.or_expr(true)?;
        self.expect(Tok::CloseBracket, "']'")?;
        self.depth -= 1;
        Ok(inner)
    }

    fn comp_value(&mut self) -> Result<CompValue, FilterError> {
        let pos = self.pos();
        match self.bump().map(|t| t.tok) {
            Some(Tok::Str(s)) => Ok(CompValue::Str(s)),
            Some(Tok::Word(w)) => literal(&w, pos),
            _ => Err(error("expected a value", pos)),
        }
    }

    fn expect_end(&self) -> Result<(), FilterError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(error("unexpected trailing input", self.pos())),
        }
    }
}

/// Parses a `filter` query parameter (RFC 7644 §3.4.2.2).
pub fn parse_filter(input: &str) -> Result<Filter, FilterError> {
    let mut parser = Parser::new(input)?;
    if parser.peek().is_none() {
        return Err(error("empty filter", 0));
    }
    let filter = parser.or_expr(false)?;
    parser.expect_end()?;
    Ok(filter)
}

/// Parses a PATCH operation's `path` (RFC 7644 §3.5.2).
pub fn parse_path(input: &str) -> Result<PatchPath, FilterError> {
    let mut parser = Parser::new(input)?;
    let pos = parser.pos();
    let attr = match parser.bump().map(|t| t.tok) {
        Some(Tok::Word(w)) => attr_path(&w, pos)?,
        Some(_) => return Err(error("expected an attribute path", pos)),
        None => return Err(error("empty path", pos)),
    };
    if parser.peek() != Some(&Tok::OpenBracket) {
        parser.expect_end()?;
        return Ok(PatchPath { attr, filter: None, sub: None });
    }
    parser.next += 1;
    let filter = parser.bracket(&attr, pos)?;
    let sub_pos = parser.pos();
    let sub = match parser.bump().map(|t| t.tok) {
        None => None,
        Some(Tok::Word(w)) => match w.strip_prefix('.') {
            Some(sub) if is_attr_name(sub) => Some(sub.to_string()),
            _ => return Err(error(format!("'{w}' is not a sub-attribute"), sub_pos)),
        },
        Some(_) => return Err(error("unexpected trailing input", sub_pos)),
    };
    parser.expect_end()?;
    Ok(PatchPath { attr, filter: Some(filter), sub })
}

#[cfg(test)]
mod tests;
