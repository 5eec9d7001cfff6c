//! The lexicon `datetime` format: RFC 3339 ∩ ISO 8601, with a required timezone.

/// Whether `s` is a valid atproto datetime: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, upper-case
/// `T`/`Z`, no `-00:00`, real calendar values, and not before year 0 once the offset is applied.
pub fn is_valid_datetime(s: &str) -> bool {
    parse(s).is_some()
}

/// Formats a UTC time the way atproto prefers: millisecond precision and `Z`.
pub fn format_datetime(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = s.get(at..at + n)?;
    part.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

fn parse(s: &str) -> Option<()> {
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > 64 {
        return None;
    }
    let (year, month, day) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (hour, minute, second) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let mut pos = 19;
    if b.get(pos) == Some(&b'.') {
        let frac = b[pos + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if frac == 0 {
            return None;
        }
        pos += 1 + frac;
    }
    let offset_minutes: i64 = match &b[pos..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2], 0, 2)?;
            let m = digits(&[*m1, *m2], 0, 2)?;
            if h > 23 || m > 59 || (*sign == b'-' && h == 0 && m == 0) {
                return None;
            }
            let total = i64::from(h * 60 + m);
            if *sign == b'+' { total } else { -total }
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day == 0 || day > month_days[month as usize - 1] {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // The value must not normalise to before 0000-01-01T00:00:00Z.
    if year == 0 && month == 1 && day == 1 {
        let minutes = i64::from(hour * 60 + minute) - offset_minutes;
        if minutes < 0 {
            return None;
        }
    }
    Some(())
}
