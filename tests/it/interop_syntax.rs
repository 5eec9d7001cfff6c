//! Every syntax vector in `../shared/interop/syntax`, valid and invalid, against our validators.

use crate::common::interop_lines;
use arroba::syntax::{
    AtIdentifier, AtUri, Did, Handle, Nsid, RecordKey, is_valid_cid, is_valid_datetime,
    is_valid_language, is_valid_uri,
};
use arroba::tid::Tid;

fn check(kind: &str, valid: impl Fn(&str) -> bool) {
    let valid_cases = interop_lines(&format!("{kind}_syntax_valid.txt"));
    let invalid_cases = interop_lines(&format!("{kind}_syntax_invalid.txt"));
    assert!(!valid_cases.is_empty() && !invalid_cases.is_empty());
    for case in &valid_cases {
        assert!(valid(case), "{kind}: expected valid: {case:?}");
    }
    for case in &invalid_cases {
        assert!(!valid(case), "{kind}: expected invalid: {case:?}");
    }
}

#[test]
fn did_vectors() {
    check("did", |s| Did::parse(s).is_ok());
}

#[test]
fn handle_vectors() {
    check("handle", |s| Handle::parse(s).is_ok());
}

#[test]
fn nsid_vectors() {
    check("nsid", |s| Nsid::parse(s).is_ok());
}

#[test]
fn record_key_vectors() {
    check("recordkey", |s| RecordKey::parse(s).is_ok());
}

#[test]
fn tid_vectors() {
    check("tid", |s| Tid::parse(s).is_ok());
}

#[test]
fn at_uri_vectors() {
    check("aturi", |s| AtUri::parse(s).is_ok());
}

#[test]
fn at_identifier_vectors() {
    check("atidentifier", |s| AtIdentifier::parse(s).is_ok());
}

#[test]
fn cid_vectors() {
    check("cid", is_valid_cid);
}

#[test]
fn uri_vectors() {
    check("uri", is_valid_uri);
}

#[test]
fn datetime_vectors_including_semantically_invalid_ones() {
    check("datetime", is_valid_datetime);
    for case in interop_lines("datetime_parse_invalid.txt") {
        assert!(!is_valid_datetime(&case), "expected invalid: {case:?}");
    }
}

#[test]
fn language_vectors_including_duplicate_subtags() {
    check("language", is_valid_language);
    for case in interop_lines("language_parse_invalid.txt") {
        assert!(!is_valid_language(&case), "expected invalid: {case:?}");
    }
}

#[test]
fn very_long_values_from_the_vector_comments() {
    let rkey = "o".repeat(512);
    assert!(RecordKey::parse(&rkey).is_ok());
    assert!(RecordKey::parse(&"o".repeat(513)).is_err());
    assert!(
        AtUri::parse(&format!(
            "at://did:plc:asdf123/com.atproto.feed.post/{rkey}"
        ))
        .is_ok()
    );
    let long = format!(
        "shoooort{}.test",
        ".loooooooooooooooooooooooooong".repeat(9)
    );
    assert!(Handle::parse(&long).is_err());
}
