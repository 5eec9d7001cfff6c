//! BCP 47 language tags (RFC 5646), checked for well-formedness the way atproto does.

const GRANDFATHERED: &[&str] = &[
    "en-gb-oed",
    "i-ami",
    "i-bnn",
    "i-default",
    "i-enochian",
    "i-hak",
    "i-klingon",
    "i-lux",
    "i-mingo",
    "i-navajo",
    "i-pwn",
    "i-tao",
    "i-tay",
    "i-tsu",
    "sgn-be-fr",
    "sgn-be-nl",
    "sgn-ch-de",
    "art-lojban",
    "cel-gaulish",
    "no-bok",
    "no-nyn",
    "zh-guoyu",
    "zh-hakka",
    "zh-min",
    "zh-min-nan",
    "zh-xiang",
];

/// Whether `s` is a well-formed language tag: language (2–3 letters, optional extlangs), script,
/// region, variants, extensions and private use, with no repeated variant or extension singleton
/// (case-insensitively); or a grandfathered or private-use tag.
pub fn is_valid_language(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    if GRANDFATHERED.contains(&lower.as_str()) {
        return true;
    }
    let subtags: Vec<&str> = lower.split('-').collect();
    if subtags
        .iter()
        .any(|t| t.is_empty() || !t.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return false;
    }
    if subtags[0] == "x" {
        return is_private_use(&subtags[1..]);
    }
    let alpha = |t: &str, r: std::ops::RangeInclusive<usize>| {
        r.contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphabetic())
    };
    let mut i = 0;
    if !alpha(subtags[0], 2..=3) {
        return false;
    }
    i += 1;
    let mut extlangs = 0;
    while i < subtags.len() && extlangs < 3 && alpha(subtags[i], 3..=3) {
        i += 1;
        extlangs += 1;
    }
    if i < subtags.len() && alpha(subtags[i], 4..=4) {
        i += 1;
    }
    if i < subtags.len()
        && (alpha(subtags[i], 2..=2)
            || (subtags[i].len() == 3 && subtags[i].bytes().all(|b| b.is_ascii_digit())))
    {
        i += 1;
    }
    let mut variants = Vec::new();
    while i < subtags.len() {
        let t = subtags[i];
        let is_variant =
            (5..=8).contains(&t.len()) || (t.len() == 4 && t.as_bytes()[0].is_ascii_digit());
        if !is_variant {
            break;
        }
        if variants.contains(&t) {
            return false;
        }
        variants.push(t);
        i += 1;
    }
    let mut singletons = Vec::new();
    while i < subtags.len() && subtags[i].len() == 1 && subtags[i] != "x" {
        if singletons.contains(&subtags[i]) {
            return false;
        }
        singletons.push(subtags[i]);
        i += 1;
        let start = i;
        while i < subtags.len() && (2..=8).contains(&subtags[i].len()) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if i < subtags.len() && subtags[i] == "x" {
        return is_private_use(&subtags[i + 1..]);
    }
    i == subtags.len()
}

fn is_private_use(rest: &[&str]) -> bool {
    !rest.is_empty() && rest.iter().all(|t| (1..=8).contains(&t.len()))
}
