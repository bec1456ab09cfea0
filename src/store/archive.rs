//! The archive namespace of a backup: where history the source dropped is kept.
//!
//! When a run deletes a ref, or moves it to a commit that does not contain
//! its old tip (a force-push), the old tip is kept as
//!
//! ```text
//! refs/archive/<UTC yyyy-mm-ddThh-mm-ssZ>/<original ref name>
//! refs/archive/2026-11-22T01-30-00Z/refs/heads/main
//! ```
//!
//! The time is when the run started, so one run's archives sit together;
//! `:` is not allowed in ref names, hence the dashes in the time of day.
//! Should that name already exist (two runs in one second), `-2`, `-3`...
//! follows the `Z`. The names sort by time, `git log refs/archive/...`
//! works on them, and a restore can take them along or leave them
//! (`--exclude 'refs/archive/*'`). Nothing but `--prune-archive-older-than`
//! removes them. No calendar crate: the conversions below are the civil
//! calendar algorithms of H. Hinnant, exact for every date a clock returns.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The namespace every archive ref lives under.
pub(crate) const PREFIX: &str = "refs/archive/";

/// The archive ref for `original`, archived at `stamp` (see [`stamp`]).
pub(crate) fn ref_name(stamp: &str, original: &str) -> String {
    format!("{PREFIX}{stamp}/{original}")
}

/// The time component for `time`: `yyyy-mm-ddThh-mm-ssZ`, UTC.
pub(crate) fn stamp(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// When the archive ref `name` was made, from its time component; `None`
/// for names not in the documented shape (those are never pruned).
pub(crate) fn archived_at(name: &str) -> Option<SystemTime> {
    let rest = name.strip_prefix(PREFIX)?;
    let component = rest.split('/').next()?;
    let stamp = component.get(..20)?;
    let suffix = &component[20..];
    if !(suffix.is_empty()
        || suffix
            .strip_prefix('-')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
    {
        return None;
    }
    let b = stamp.as_bytes();
    let shape_ok = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b'-'
        && b[16] == b'-'
        && b[19] == b'Z';
    if !shape_ok {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = stamp.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// Parses an age such as `30d`, `12h`, `90m`, `45s` or `2w` (a number and
/// one unit); the error is a message for the user.
pub(crate) fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration: use a number and a unit, e.g. 30d, 12h, 90m, 2w")
    })?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use s, m, h, d or w)"
            ))
        }
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

/// Year, month, day of the `days`-th day after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days after 1970-01-01 of a civil date (inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_read_like_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(stamp(t), "2023-11-14T22-13-20Z");
        assert_eq!(stamp(UNIX_EPOCH), "1970-01-01T00-00-00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(stamp(leap), "2000-02-29T00-00-00Z");
        let name = ref_name(&stamp(t), "refs/heads/main");
        assert_eq!(name, "refs/archive/2023-11-14T22-13-20Z/refs/heads/main");
        assert_eq!(archived_at(&name), Some(t));
        assert_eq!(
            archived_at("refs/archive/2023-11-14T22-13-20Z-2/refs/tags/v1"),
            Some(t)
        );
        assert!(git2::Reference::is_valid_name(&name));
    }

    #[test]
    fn foreign_names_are_never_dated() {
        for name in [
            "refs/heads/main",
            "refs/archive/mine/refs/heads/x",
            "refs/archive/2023-11-14T22-13-20Zx/refs/heads/x",
            "refs/archive/2023-13-14T22-13-20Z/refs/heads/x",
            "refs/archive/2023-11-14T22:13:20Z/refs/heads/x",
        ] {
            assert_eq!(archived_at(name), None, "{name}");
        }
    }

    #[test]
    fn ages_parse_with_one_unit() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        for bad in ["", "d", "30", "30 days", "-1d", "1.5h"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
