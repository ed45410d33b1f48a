//! Parser fuzzing on stable Rust: a bounded proptest runner that reports how many cases ran, and
//! mutations of valid inputs (the structured half of each target; the other half is arbitrary
//! input). The targets sit beside the code they fuzz, in `fuzz_*` tests (`cargo test --lib fuzz_`).
//!
//! `PROPTEST_CASES` overrides every target's number of cases; each target's default keeps it
//! to a few seconds in a debug build.

use std::io::Write;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Runs `test` on `cases` inputs of `strategy` (or `PROPTEST_CASES`), panicking with the shrunk
/// input on the first failure, and prints `fuzz <target>: N cases` past the output capture.
pub(crate) fn run<S: Strategy>(
    target: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(cases);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let ran = std::cell::Cell::new(0u64);
    let result = runner.run(&strategy, |v| {
        ran.set(ran.get() + 1);
        test(v)
    });
    if let Err(e) = result {
        panic!("fuzz {target}: {e}");
    }
    let _ = writeln!(std::io::stderr(), "fuzz {target}: {} cases", ran.get());
}

/// One edit of a string, at a position chosen by an [`Index`].
#[derive(Clone, Debug)]
enum Edit {
    /// Replace the character there.
    Replace(Index, char),
    /// Insert a character there.
    Insert(Index, char),
    /// Delete up to `n` characters from there.
    Delete(Index, usize),
    /// Repeat the `n` characters from there.
    Repeat(Index, usize),
    /// Cut everything from there on.
    Truncate(Index),
    /// Swap two characters.
    Swap(Index, Index),
}

/// Characters a mutation puts in: the syntax of the formats fuzzed, plus any character.
fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(
            "\"'<>/=&;:.,-_+*()[]{} \t\n\\%!?@#0129AZaz~\u{0}\u{7f}é\u{feff}".chars().collect::<Vec<_>>()
        ),
        1 => any::<char>(),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<Index>(), interesting_char()).prop_map(|(i, c)| Edit::Replace(i, c)),
        3 => (any::<Index>(), interesting_char()).prop_map(|(i, c)| Edit::Insert(i, c)),
        3 => (any::<Index>(), 1usize..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => (any::<Index>(), 1usize..32).prop_map(|(i, n)| Edit::Repeat(i, n)),
        1 => any::<Index>().prop_map(Edit::Truncate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Swap(a, b)),
    ]
}

fn apply(chars: &mut Vec<char>, e: &Edit) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
    let len = chars.len();
    match e {
        Edit::Replace(i, c) if len > 0 => chars[at(i, len)] = *c,
        Edit::Replace(i, c) | Edit::Insert(i, c) => chars.insert(at(i, len + 1), *c),
        Edit::Delete(i, n) if len > 0 => {
            let from = at(i, len);
            chars.drain(from..(from + n).min(len));
        }
        Edit::Repeat(i, n) if len > 0 => {
            let from = at(i, len);
            let part: Vec<char> = chars[from..(from + n).min(len)].to_vec();
            chars.splice(from..from, part);
        }
        Edit::Truncate(i) if len > 0 => chars.truncate(at(i, len)),
        Edit::Swap(a, b) if len > 0 => chars.swap(at(a, len), at(b, len)),
        _ => {}
    }
}

/// `valid` changed by one to four edits (possibly back into itself: a test that refuses every
/// mutation compares with the original).
pub(crate) fn mutated(valid: String) -> impl Strategy<Value = String> {
    prop::collection::vec(edit(), 1..=4).prop_map(move |edits| {
        let mut chars: Vec<char> = valid.chars().collect();
        for e in &edits {
            apply(&mut chars, e);
        }
        chars.into_iter().collect()
    })
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;

    use super::*;

    #[test]
    fn mutations_change_strings_and_stay_strings() {
        let mut changed = 0;
        let mut runner = TestRunner::deterministic();
        for _ in 0..200 {
            let s = mutated("abcdef".into()).new_tree(&mut runner).unwrap().current();
            changed += usize::from(s != "abcdef");
        }
        assert!(changed > 150, "only {changed} of 200 mutations changed the input");
    }
}
