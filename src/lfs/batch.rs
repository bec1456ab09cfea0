//! The LFS batch API's JSON (git-lfs `docs/api/batch.md` and
//! `docs/api/basic-transfers.md`): what is asked, what comes back.
//!
//! A batch request names objects and an operation; the answer gives, per
//! object, the actions to take (a `download`, or an `upload` and maybe a
//! `verify`), none when an upload is not needed because the server has the
//! object, or an error. Actions carry an `href` and `header` values that
//! usually embed short-lived tokens: they are secrets, so [`Action`]'s
//! `Debug` shows neither, and nothing in this module formats them.
//!
//! Everything here is parsed from a server: unknown fields are ignored,
//! a missing optional one is `None`, and an answer that does not fit is a
//! `serde_json` error, never a panic.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::pointer::{Pointer, Sha256};

/// The media type of every batch and verify request and answer.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.git-lfs+json";

/// What a batch request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Operation {
    /// Actions to fetch objects from the server.
    Download,
    /// Actions to send objects the server lacks.
    Upload,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Download => "download",
            Operation::Upload => "upload",
        })
    }
}

impl Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An object as a request names it, and as a verify request's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ObjectSpec {
    /// The object's SHA-256, in hex.
    pub(crate) oid: Sha256,
    /// Its size in bytes.
    pub(crate) size: u64,
}

impl From<&Pointer> for ObjectSpec {
    fn from(p: &Pointer) -> Self {
        ObjectSpec {
            oid: p.oid,
            size: p.size,
        }
    }
}

/// A batch request: `POST <endpoint>/objects/batch`.
#[derive(Debug, Serialize)]
pub(crate) struct BatchRequest {
    /// Download or upload.
    pub(crate) operation: Operation,
    /// The transfer adapters we speak: only `basic`.
    pub(crate) transfers: [&'static str; 1],
    /// The objects.
    pub(crate) objects: Vec<ObjectSpec>,
}

impl BatchRequest {
    /// A request for `pointers` with the basic transfer adapter.
    pub(crate) fn new(operation: Operation, pointers: &[Pointer]) -> BatchRequest {
        BatchRequest {
            operation,
            transfers: ["basic"],
            objects: pointers.iter().map(ObjectSpec::from).collect(),
        }
    }
}

/// A successful batch answer.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchResponse {
    /// The transfer adapter the server chose; absent means `basic`.
    #[serde(default)]
    pub(crate) transfer: Option<String>,
    /// One entry per object (servers may leave some out).
    #[serde(default)]
    pub(crate) objects: Vec<ObjectResponse>,
    /// The hash the server names objects with; absent means `sha256`.
    #[serde(default)]
    pub(crate) hash_algo: Option<String>,
}

/// The answer for one object.
#[derive(Debug, Deserialize)]
pub(crate) struct ObjectResponse {
    /// As sent; kept as text so that one odd entry does not spoil the
    /// answer for the others.
    pub(crate) oid: String,
    /// As sent.
    #[serde(default)]
    pub(crate) size: Option<u64>,
    /// Whether the actions need no credentials of ours.
    #[serde(default)]
    pub(crate) authenticated: Option<bool>,
    /// What to do; absent for an upload the server does not need.
    #[serde(default)]
    pub(crate) actions: Option<Actions>,
    /// Why nothing can be done for this object.
    #[serde(default)]
    pub(crate) error: Option<ObjectError>,
}

/// The actions for one object.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Actions {
    /// Where to GET it.
    #[serde(default)]
    pub(crate) download: Option<Action>,
    /// Where to PUT it.
    #[serde(default)]
    pub(crate) upload: Option<Action>,
    /// Where to POST its oid and size once uploaded.
    #[serde(default)]
    pub(crate) verify: Option<Action>,
}

/// One request to make: a URL and headers, both secret.
#[derive(Clone, Deserialize)]
pub(crate) struct Action {
    /// The URL; often carries a token in its query.
    pub(crate) href: String,
    /// Headers to send; often an `Authorization`.
    #[serde(default)]
    pub(crate) header: Option<BTreeMap<String, String>>,
    /// Seconds from when the answer came until the action expires.
    #[serde(default)]
    pub(crate) expires_in: Option<i64>,
    /// When the action expires, RFC 3339.
    #[serde(default)]
    pub(crate) expires_at: Option<String>,
    /// The object's `authenticated` flag, copied here: the action needs no
    /// credentials of ours.
    #[serde(skip)]
    pub(crate) authenticated: bool,
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers().map(|(name, _)| name).collect();
        f.debug_struct("Action")
            .field("href", &"<secret>")
            .field("header names", &names)
            .field("expires_in", &self.expires_in)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Action {
    /// The headers to send, name and value.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether the action sets its own `Authorization` header, in which
    /// case ours is not sent.
    pub(crate) fn authorizes_itself(&self) -> bool {
        self.headers()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"))
    }

    /// Whether the action will have expired `margin` from now, given that
    /// its answer arrived at `received`. `expires_in` wins over
    /// `expires_at`, as the spec says; an `expires_at` that does not parse
    /// is taken as no expiry (the server still refuses a stale action).
    pub(crate) fn expires_within(&self, received: Instant, margin: Duration) -> bool {
        let left = if let Some(secs) = self.expires_in {
            let deadline = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
            deadline.checked_sub(received.elapsed())
        } else if let Some(at) = self.expires_at.as_deref().and_then(rfc3339_unix) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            Some(Duration::from_secs(u64::try_from(at - now).unwrap_or(0)))
        } else {
            return false;
        };
        left.is_none_or(|left| left <= margin)
    }
}

/// An error for one object: codes follow HTTP (404 missing, 410 removed,
/// 422 invalid, 409 hash mismatch with the server).
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ObjectError {
    /// The code.
    #[serde(default)]
    pub(crate) code: i64,
    /// The server's words.
    #[serde(default)]
    pub(crate) message: String,
}

/// The body of an unsuccessful batch (or verify) answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    #[serde(default)]
    pub(crate) message: Option<String>,
    /// Where the server documents it.
    #[serde(default)]
    pub(crate) documentation_url: Option<String>,
    /// The server's id of the request, for its operators.
    #[serde(default)]
    pub(crate) request_id: Option<String>,
}

/// Seconds since the epoch of an RFC 3339 time with second precision (the
/// spec's form, `2016-11-10T15:29:07Z`, or with an offset); fractions of a
/// second are dropped.
fn rfc3339_unix(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
        rest = &fraction[digits..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let minutes = two(*h1, *h2)? * 60 + two(*m1, *m2)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";

    #[test]
    fn a_request_is_what_the_spec_shows() {
        let pointer = Pointer {
            oid: OID.parse().unwrap(),
            size: 123,
        };
        let json =
            serde_json::to_string(&BatchRequest::new(Operation::Upload, &[pointer])).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"operation":"upload","transfers":["basic"],"objects":[{{"oid":"{OID}","size":123}}]}}"#
            )
        );
    }

    #[test]
    fn the_specs_answers_parse() {
        // docs/api/batch.md and basic-transfers.md, with the example oids
        // made real.
        let answer = format!(
            r#"{{
              "transfer": "basic",
              "objects": [
                {{"oid": "{OID}", "size": 123, "authenticated": true,
                  "actions": {{
                    "upload": {{"href": "https://some-upload.com/1111111",
                               "header": {{"Authorization": "Basic s3cret"}},
                               "expires_in": 86400}},
                    "verify": {{"href": "https://some-verify-callback.com",
                               "header": {{"Authorization": "Basic s3cret"}},
                               "expires_at": "2016-11-10T15:29:07Z"}}
                  }}}},
                {{"oid": "{OID}", "size": 123,
                  "error": {{"code": 404, "message": "Object does not exist"}}}},
                {{"oid": "{OID}", "size": 123}}
              ],
              "hash_algo": "sha256",
              "some_future_field": [1, 2]
            }}"#
        );
        let response: BatchResponse = serde_json::from_str(&answer).unwrap();
        assert_eq!(response.transfer.as_deref(), Some("basic"));
        let [with_actions, with_error, present] = &response.objects[..] else {
            panic!("three objects")
        };
        let actions = with_actions.actions.as_ref().unwrap();
        let upload = actions.upload.as_ref().unwrap();
        assert!(upload.authorizes_itself());
        assert_eq!(upload.expires_in, Some(86400));
        assert!(actions.verify.is_some() && actions.download.is_none());
        assert_eq!(with_error.error.as_ref().unwrap().code, 404);
        assert!(present.actions.is_none() && present.error.is_none());

        let error: ErrorBody = serde_json::from_str(
            r#"{"message": "Not found", "documentation_url": "https://lfs-server.com/docs/errors", "request_id": "123"}"#,
        )
        .unwrap();
        assert_eq!(error.message.as_deref(), Some("Not found"));
        assert_eq!(error.request_id.as_deref(), Some("123"));
    }

    #[test]
    fn odd_answers_are_errors_or_defaults_never_panics() {
        for text in [
            "",
            "null",
            r#"{"objects": 5}"#,
            r#"{"objects": [{"size": 1}]}"#,
            r#"{"objects": [{"oid": "x", "size": -1}]}"#,
            r#"{"objects": [{"oid": "x", "actions": {"download": {}}}]}"#,
        ] {
            assert!(
                serde_json::from_str::<BatchResponse>(text).is_err(),
                "{text}"
            );
        }
        let empty: BatchResponse = serde_json::from_str("{}").unwrap();
        assert!(empty.objects.is_empty());
        let null_header: BatchResponse = serde_json::from_str(
            r#"{"objects": [{"oid": "x", "actions": {"download": {"href": "h", "header": null}}}]}"#,
        )
        .unwrap();
        let action = null_header.objects[0]
            .actions
            .as_ref()
            .unwrap()
            .download
            .as_ref()
            .unwrap();
        assert_eq!(action.headers().count(), 0);
    }

    #[test]
    fn debug_never_shows_an_href_or_a_header_value() {
        let action: Action = serde_json::from_str(
            r#"{"href": "https://s3.example/o?X-Amz-Signature=s3cret", "header": {"Authorization": "RemoteAuth t0ken"}}"#,
        )
        .unwrap();
        let shown = format!("{action:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("t0ken"),
            "{shown}"
        );
        assert!(!shown.contains("s3.example"), "{shown}");
        assert!(shown.contains("Authorization"), "{shown}");
    }

    #[test]
    fn expiry_is_read_from_either_field() {
        let received = Instant::now();
        let margin = Duration::from_secs(30);
        let action = |json: &str| serde_json::from_str::<Action>(json).unwrap();
        assert!(!action(r#"{"href": "h"}"#).expires_within(received, margin));
        assert!(!action(r#"{"href": "h", "expires_in": 3600}"#).expires_within(received, margin));
        assert!(action(r#"{"href": "h", "expires_in": 10}"#).expires_within(received, margin));
        assert!(action(r#"{"href": "h", "expires_in": -5}"#).expires_within(received, margin));
        assert!(
            action(r#"{"href": "h", "expires_at": "2016-11-10T15:29:07Z"}"#)
                .expires_within(received, margin)
        );
        assert!(
            !action(r#"{"href": "h", "expires_at": "2999-01-01T00:00:00Z"}"#)
                .expires_within(received, margin)
        );
        // expires_in wins.
        assert!(!action(
            r#"{"href": "h", "expires_in": 3600, "expires_at": "2016-11-10T15:29:07Z"}"#
        )
        .expires_within(received, margin));
        assert!(!action(r#"{"href": "h", "expires_at": "soon"}"#).expires_within(received, margin));
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339_unix("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_unix("2016-11-10T15:29:07Z"), Some(1_478_791_747));
        assert_eq!(
            rfc3339_unix("2016-11-10T15:29:07.123Z"),
            Some(1_478_791_747)
        );
        assert_eq!(
            rfc3339_unix("2016-11-10T16:29:07+01:00"),
            Some(1_478_791_747)
        );
        assert_eq!(rfc3339_unix("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "",
            "2016-11-10",
            "2016-13-10T15:29:07Z",
            "2016-11-10T15:29:07",
            "２016-11-10T15:29:07Z",
        ] {
            assert_eq!(rfc3339_unix(bad), None, "{bad}");
        }
    }
}
