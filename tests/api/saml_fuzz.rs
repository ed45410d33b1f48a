//! Fuzzing the SAML response reader with Responses a real IdP signed ([`TestSamlIdp`]): byte-level
//! mutations of the signed XML (and of its base64 form) never panic, and a mutated Response is
//! refused or yields exactly the assertion the IdP signed — never another identity. Arbitrary
//! and unsigned XML is fuzzed in the library (`services::sso::saml::tests`).

use std::io::Write;
use std::time::Duration as StdDuration;

use chrono::Utc;
use janua::services::sso::saml::{IdpSettings, SpSettings, verify_response};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as PropConfig, TestRunner};

use crate::saml_idp::{Signing, TestSamlIdp, encode};

const SP_ENTITY_ID: &str = "https://janua.test/api/v1/sso/saml/metadata/fuzz";
const ACS_URL: &str = "https://janua.test/api/v1/sso/saml";

/// One to four character edits: replace, insert, delete a run, or cut, with XML's syntax
/// characters favoured.
fn mutated(valid: String) -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        3 => prop::sample::select("<>/=\"' &;:#x0Aaz-_\n".chars().collect::<Vec<_>>()),
        1 => any::<char>(),
    ];
    let edit = (0u8..4, any::<Index>(), ch, 1usize..24);
    prop::collection::vec(edit, 1..=4).prop_map(move |edits| {
        let mut s: Vec<char> = valid.chars().collect();
        for (kind, at, c, n) in edits {
            let i = at.index(s.len().max(1)).min(s.len());
            match kind {
                0 if i < s.len() => s[i] = c,
                1 => s.insert(i, c),
                2 => {
                    s.drain(i..(i + n).min(s.len()));
                }
                _ => s.truncate(s.len().saturating_sub(n)),
            }
        }
        s.into_iter().collect()
    })
}

#[test]
fn saml_fuzz_mutated_signed_responses_are_refused_or_unchanged() {
    let idp = TestSamlIdp::new("https://idp.test/fuzz");
    let sp = SpSettings { entity_id: SP_ENTITY_ID.to_owned(), acs_url: ACS_URL.to_owned() };
    let lax = IdpSettings { want_assertions_signed: false, allow_idp_initiated: true, ..idp.settings() };
    let skew = StdDuration::from_secs(60);
    let now = Utc::now();
    let signed: Vec<String> = [Signing::Assertion, Signing::Response, Signing::Both]
        .into_iter()
        .map(|signing| {
            idp.response(SP_ENTITY_ID, ACS_URL)
                .in_response_to("_fuzz")
                .attribute("email", &["user@example.com"])
                .sign(signing)
                .xml()
        })
        .collect();
    let genuine: Vec<_> = signed
        .iter()
        .map(|xml| {
            verify_response(&encode(xml), &lax, &sp, now, skew).expect("the genuine Response verifies")
        })
        .collect();
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(600);
    let mut runner =
        TestRunner::new(PropConfig { cases, failure_persistence: None, ..PropConfig::default() });
    let strategy = (0..signed.len())
        .prop_flat_map(|k| (Just(k), any::<bool>(), mutated(signed[k].clone()), mutated(encode(&signed[k]))));
    let ran = std::cell::Cell::new(0u64);
    let result = runner.run(&strategy, |(k, on_base64, xml, base64)| {
        ran.set(ran.get() + 1);
        let posted = if on_base64 { base64 } else { encode(&xml) };
        for settings in [&lax, &idp.settings()] {
            if let Ok(a) = verify_response(&posted, settings, &sp, now, skew) {
                prop_assert_eq!(&a, &genuine[k], "a mutated Response verified as another assertion");
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("SAML fuzz: {e}");
    }
    let _ = writeln!(std::io::stderr(), "fuzz SAML Response (signed, mutated): {} cases", ran.get());
}
