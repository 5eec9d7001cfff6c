//! Timestamp identifiers (https://atproto.com/specs/tid): 13 characters of sortable base32
//! holding 53 bits of microseconds since the UNIX epoch and a 10-bit clock id.
//!
//! [`Tid`] is the value; [`TidClock`] hands out strictly increasing TIDs for record keys and
//! commit revs even when the wall clock repeats or goes backwards. The current time is passed in
//! (this layer reads no clocks). Unlike arroba, the clock id is encoded right-aligned as the spec
//! says (arroba's `int_to_tid` left-justifies it; see `docs/compatibility.md`).

use std::sync::Mutex;

use crate::syntax::SyntaxError;

const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// A valid TID. Ordering of TIDs equals ordering of their strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tid(u64);

impl Tid {
    /// The TID of integer `n`; `None` if the top bit is set.
    pub fn from_int(n: u64) -> Option<Tid> {
        (n >> 63 == 0).then_some(Tid(n))
    }

    /// The TID for `micros` since the epoch and `clock_id` (only its low 10 bits are used).
    pub fn from_micros(micros: u64, clock_id: u16) -> Tid {
        Tid(((micros & ((1 << 53) - 1)) << 10) | u64::from(clock_id & 0x3ff))
    }

    /// The TID for a UTC time and clock id.
    pub fn from_datetime(t: chrono::DateTime<chrono::Utc>, clock_id: u16) -> Tid {
        Tid::from_micros(u64::try_from(t.timestamp_micros()).unwrap_or(0), clock_id)
    }

    /// Parses the 13-character form.
    pub fn parse(s: &str) -> Result<Tid, SyntaxError> {
        let err = || SyntaxError::Tid(s.to_owned());
        let b = s.as_bytes();
        if b.len() != 13 || !b"234567abcdefghij".contains(&b[0]) {
            return Err(err());
        }
        let mut n: u64 = 0;
        for c in b {
            let digit = ALPHABET.iter().position(|a| a == c).ok_or_else(err)?;
            n = (n << 5) | digit as u64;
        }
        Ok(Tid(n))
    }

    /// The integer value.
    pub fn as_int(self) -> u64 {
        self.0
    }

    /// Microseconds since the UNIX epoch.
    pub fn timestamp_micros(self) -> u64 {
        self.0 >> 10
    }

    /// The clock id (0–1023).
    pub fn clock_id(self) -> u16 {
        (self.0 & 0x3ff) as u16
    }

    /// The timestamp as a UTC time.
    pub fn to_datetime(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_micros(self.timestamp_micros() as i64).unwrap_or_default()
    }
}

impl std::fmt::Display for Tid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = [0u8; 13];
        for (i, c) in out.iter_mut().enumerate() {
            *c = ALPHABET[((self.0 >> (5 * (12 - i))) & 31) as usize];
        }
        // Every byte comes from ALPHABET, which is ASCII.
        f.write_str(std::str::from_utf8(&out).expect("ASCII"))
    }
}

impl std::str::FromStr for Tid {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tid::parse(s)
    }
}

impl serde::Serialize for Tid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Tid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Tid::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Hands out strictly increasing TIDs with one clock id.
#[derive(Debug)]
pub struct TidClock {
    clock_id: u16,
    last_micros: Mutex<u64>,
}

impl TidClock {
    /// A clock with a fixed clock id (low 10 bits used).
    pub fn new(clock_id: u16) -> TidClock {
        TidClock {
            clock_id: clock_id & 0x3ff,
            last_micros: Mutex::new(0),
        }
    }

    /// A clock with a random clock id, as each process should have.
    pub fn random() -> TidClock {
        TidClock::new(rand::random::<u16>())
    }

    /// The next TID for wall-clock time `now_micros`: the time itself, or one microsecond past the
    /// previous TID if the clock has not moved forward.
    pub fn next(&self, now_micros: u64) -> Tid {
        self.next_after(now_micros, None)
    }

    /// Like [`TidClock::next`], and also strictly greater than `floor` (a repo's previous rev,
    /// which may come from another process or PDS).
    pub fn next_after(&self, now_micros: u64, floor: Option<Tid>) -> Tid {
        // A poisoned lock only means another thread panicked mid-update of a plain integer.
        let mut last = self.last_micros.lock().unwrap_or_else(|e| e.into_inner());
        let mut micros = now_micros.max(*last + 1);
        if let Some(floor) = floor {
            micros = micros.max(floor.timestamp_micros() + 1);
        }
        *last = micros;
        Tid::from_micros(micros, self.clock_id)
    }
}

/// Microseconds since the UNIX epoch of a UTC time.
pub fn micros_of(t: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from(t.timestamp_micros()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2022-01-02T03:04:05Z")
            .unwrap()
            .into()
    }

    #[test]
    fn arroba_golden_tids_with_clock_zero() {
        assert_eq!(Tid::from_datetime(now(), 0).to_string(), "3iom4o4g6u222");
        assert_eq!(Tid::from_int(0).unwrap().to_string(), "2222222222222");
        assert_eq!(Tid::parse("3iom4o4g6u222").unwrap().to_datetime(), now());
    }

    #[test]
    fn clock_id_is_right_aligned_per_spec() {
        assert_eq!(Tid::from_datetime(now(), 17).to_string(), "3iom4o4g6u22l");
    }

    #[test]
    fn clock_never_repeats_or_goes_back() {
        let clock = TidClock::new(5);
        let a = clock.next(1_000);
        let b = clock.next(1_000);
        let c = clock.next(10);
        assert!(a < b && b < c);
        let floor = Tid::from_micros(5_000_000, 0);
        assert!(clock.next_after(20, Some(floor)) > floor);
    }

    #[test]
    fn high_bit_is_rejected() {
        assert!(Tid::parse("kjzfcijpj2z2a").is_err());
        assert!(Tid::from_int(1 << 63).is_none());
    }
}
