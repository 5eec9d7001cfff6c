//! The lexicon interop vectors: schema documents that must be accepted or refused, and record
//! data checked against the catalog lexicons. Plus: every vendored schema loads.

use crate::common::interop_json;
use arroba::cbor;
use arroba::lexicon::{Lexicons, Validation};
use arroba::syntax::Nsid;

fn catalog() -> Lexicons {
    let mut lexicons = Lexicons::new();
    for name in [
        "record",
        "query",
        "procedure",
        "subscription",
        "permission-set",
    ] {
        lexicons
            .add(interop_json(&format!("lexicon/catalog/{name}.json")))
            .unwrap();
    }
    lexicons
}

#[test]
fn lexicon_documents_are_accepted_or_refused_as_the_vectors_say() {
    for case in interop_json("lexicon/lexicon-valid.json")
        .as_array()
        .unwrap()
    {
        assert!(
            Lexicons::new().add(case["lexicon"].clone()).is_ok(),
            "{}",
            case["name"]
        );
    }
    for case in interop_json("lexicon/lexicon-invalid.json")
        .as_array()
        .unwrap()
    {
        assert!(
            Lexicons::new().add(case["lexicon"].clone()).is_err(),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn record_data_is_accepted_or_refused_as_the_vectors_say() {
    let lexicons = catalog();
    let check = |case: &serde_json::Value| {
        let data = cbor::from_json(&case["data"]).map_err(|e| e.to_string())?;
        let nsid = Nsid::parse(data.get("$type").and_then(|t| t.as_str()).unwrap()).unwrap();
        lexicons
            .validate_record(&nsid, &data, Some(true))
            .map_err(|e| e.to_string())
    };
    for case in interop_json("lexicon/record-data-valid.json")
        .as_array()
        .unwrap()
    {
        assert_eq!(check(case), Ok(Validation::Valid), "{}", case["name"]);
    }
    for case in interop_json("lexicon/record-data-invalid.json")
        .as_array()
        .unwrap()
    {
        assert!(check(case).is_err(), "{} should be invalid", case["name"]);
    }
}

#[test]
fn every_vendored_schema_loads_and_a_real_post_validates() {
    let lexicons = Lexicons::bundled();
    assert!(lexicons.len() > 250, "{} schemas", lexicons.len());
    let post = cbor::from_json_str(
        r#"{"$type":"app.bsky.feed.post","text":"hello","createdAt":"2024-01-01T00:00:00.000Z"}"#,
    )
    .unwrap();
    let nsid = Nsid::parse("app.bsky.feed.post").unwrap();
    assert_eq!(
        lexicons.validate_record(&nsid, &post, None),
        Ok(Validation::Valid)
    );
    let bad = cbor::from_json_str(
        r#"{"$type":"app.bsky.feed.post","text":5,"createdAt":"2024-01-01T00:00:00.000Z"}"#,
    )
    .unwrap();
    assert!(lexicons.validate_record(&nsid, &bad, None).is_err());
    let unknown = Nsid::parse("com.example.thing").unwrap();
    assert_eq!(
        lexicons.validate_record(&unknown, &bad, None),
        Ok(Validation::Unknown)
    );
    assert!(
        lexicons
            .validate_record(&unknown, &bad, Some(true))
            .is_err()
    );
    assert_eq!(
        lexicons.validate_record(&nsid, &bad, Some(false)),
        Ok(Validation::Unknown)
    );
}
