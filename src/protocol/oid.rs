//! SHA-1 object ids as they appear on the wire.
//!
//! The protocol spells object ids as 40 hexadecimal digits. We keep the 20 raw
//! bytes instead: ids are compared and hashed by the thousand when refs are
//! planned and negotiated, and a `Copy` array does that without allocating.
//! Only SHA-1 is supported; a sha256 repository is refused at discovery (see
//! [`Capabilities::check_object_format`](crate::protocol::Capabilities::check_object_format))
//! before any id is parsed.

use std::fmt;
use std::str::FromStr;

use crate::protocol::error::escape;
use crate::protocol::ProtocolError;

/// Number of raw bytes in a SHA-1 object id.
pub(crate) const RAW_LEN: usize = 20;
/// Number of hexadecimal digits in a SHA-1 object id on the wire.
pub(crate) const HEX_LEN: usize = 40;

pub(crate) const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// A SHA-1 object id.
///
/// ```
/// use git_relay::protocol::ObjectId;
///
/// let id: ObjectId = "3D06390B8CFCC3636B12DD52F044EAE8F1566458".parse()?;
/// assert_eq!(id.to_string(), "3d06390b8cfcc3636b12dd52f044eae8f1566458");
/// assert!(ObjectId::ZERO.is_zero());
/// # Ok::<(), git_relay::protocol::ProtocolError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; RAW_LEN]);

impl ObjectId {
    /// The all-zero id the protocol uses for "no object": the old side of a
    /// ref creation, the new side of a deletion, an empty repository's
    /// placeholder advertisement.
    pub const ZERO: ObjectId = ObjectId([0; RAW_LEN]);

    /// Parses exactly 40 hexadecimal digits, upper or lower case.
    pub(crate) fn from_hex(hex: &[u8]) -> Result<Self, ProtocolError> {
        let invalid = || ProtocolError::InvalidObjectId(escape(hex));
        if hex.len() != HEX_LEN {
            return Err(invalid());
        }
        let mut raw = [0u8; RAW_LEN];
        for (byte, pair) in raw.iter_mut().zip(hex.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (nibble(*hi), nibble(*lo)),
                _ => (None, None),
            };
            *byte = (hi.ok_or_else(invalid)? << 4) | lo.ok_or_else(invalid)?;
        }
        Ok(ObjectId(raw))
    }

    /// Whether this is [`ObjectId::ZERO`].
    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// The 20 raw bytes.
    pub(crate) fn as_bytes(&self) -> &[u8; RAW_LEN] {
        &self.0
    }

    /// The 40 lowercase hexadecimal digits, without allocating.
    pub(crate) fn to_hex(self) -> [u8; HEX_LEN] {
        let mut out = [0u8; HEX_LEN];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            if let [hi, lo] = pair {
                *hi = HEX_DIGITS[usize::from(byte >> 4)];
                *lo = HEX_DIGITS[usize::from(byte & 0x0f)];
            }
        }
        out
    }
}

impl From<[u8; RAW_LEN]> for ObjectId {
    fn from(raw: [u8; RAW_LEN]) -> Self {
        ObjectId(raw)
    }
}

/// The value of one hexadecimal digit, either case; shared with the pkt-line
/// length parser.
pub(crate) fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        // Every byte of `hex` comes from HEX_DIGITS, so this never fails.
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

// Ids are read far more often in logs and test failures than as byte arrays,
// so Debug shows the same hex as Display.
impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for ObjectId {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectId::from_hex(s.as_bytes())
    }
}

/// `main` and `feature` of the repository the captures in `fuzz/corpus/`
/// were taken from, for tests.
#[cfg(test)]
pub(crate) const MAIN: &str = "3d06390b8cfcc3636b12dd52f044eae8f1566458";
#[cfg(test)]
pub(crate) const FEATURE: &str = "d26c87b1cfdc32aeb54da06a4002f6822da61a66";

/// Parses `hex`, for tests.
#[cfg(test)]
pub(crate) fn id(hex: &str) -> ObjectId {
    hex.parse().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "3d06390b8cfcc3636b12dd52f044eae8f1566458";

    #[test]
    fn hex_round_trip() {
        let id = ObjectId::from_hex(HEX.as_bytes()).unwrap();
        assert_eq!(id.to_string(), HEX);
        assert_eq!(format!("{id:?}"), HEX);
        assert_eq!(id.as_bytes()[0], 0x3d);
        assert_eq!(id.as_bytes()[19], 0x58);
        assert_eq!(HEX.parse::<ObjectId>().unwrap(), id);
    }

    #[test]
    fn accepts_upper_case() {
        let upper = HEX.to_ascii_uppercase();
        assert_eq!(
            ObjectId::from_hex(upper.as_bytes()).unwrap().to_string(),
            HEX
        );
    }

    #[test]
    fn zero() {
        assert!(ObjectId::ZERO.is_zero());
        assert_eq!(ObjectId::ZERO.to_string(), "0".repeat(40));
        assert_eq!("0".repeat(40).parse::<ObjectId>().unwrap(), ObjectId::ZERO);
        assert!(!HEX.parse::<ObjectId>().unwrap().is_zero());
    }

    #[test]
    fn rejects_wrong_length_and_non_hex() {
        for bad in [
            "",
            &HEX[..39],
            &format!("{HEX}0"),
            "3d06390b8cfcc3636b12dd52f044eae8f156645g",
            "3d06390b8cfcc3636b12dd52f044eae8f156645 ",
            "+d06390b8cfcc3636b12dd52f044eae8f1566458",
            // A sha256 id must not be silently cut to 40 digits.
            &"a".repeat(64),
        ] {
            let err = ObjectId::from_hex(bad.as_bytes()).unwrap_err();
            assert!(matches!(err, ProtocolError::InvalidObjectId(_)), "{bad}");
        }
        let err = ObjectId::from_hex(b"\xff\x00").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"\\xff\\x00\" is not a valid object id; expected 40 hexadecimal digits"
        );
    }

    #[test]
    fn orders_like_hex() {
        let a = ObjectId::ZERO;
        let b: ObjectId = format!("{}1", "0".repeat(39)).parse().unwrap();
        let c: ObjectId = format!("1{}", "0".repeat(39)).parse().unwrap();
        assert!(a < b && b < c);
    }
}
