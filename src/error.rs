//! What a run that stopped tells its user: one [`Failure`] (message, side,
//! hint, exit code) and one [`ExitCode`].
//!
//! The layers keep their own typed errors (`SideError`, `ForgeError`,
//! `StoreError`...) because code branches on them: retry what is transient,
//! take a conflict on create as "already exists", fall back on not found.
//! What reaches a front end is a `Failure`, so that `mirror`, `mirror-all`
//! and the Azure Pipelines task print it, and write its JSON document, one
//! way.

use crate::mirror::{Side, SideError};

/// How the process ends; scripts branch on these numbers (`--help` lists
/// them), so each has one meaning across commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Done, and the destination matches.
    Success = 0,
    /// The run stopped, or a repository or a ref failed.
    Failed = 1,
    /// The command line or configuration is invalid; nothing was attempted.
    Usage = 2,
    /// The run finished but refs still differ.
    Differs = 3,
}

/// A failure as the user sees it. Serialized under `"error"` it is the JSON
/// document of every front end: `side` only when one side failed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Failure {
    /// The exit code it calls for.
    #[serde(skip)]
    pub code: ExitCode,
    /// The server that failed, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Failure {
    /// A usage error: bad flags, inputs or configuration.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: ExitCode::Usage,
            ..Failure::failed(message, None)
        }
    }

    /// A run that stopped, with no side to blame (a forge's API, a store).
    pub fn failed(message: impl Into<String>, hint: Option<&str>) -> Failure {
        Failure {
            code: ExitCode::Failed,
            side: None,
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }

    /// `{"error": {"side", "message", "hint"}}`, redacted.
    pub fn to_json(&self) -> String {
        crate::auth::redacted_json(&serde_json::json!({ "error": self }))
    }
}

impl From<&SideError> for Failure {
    fn from(err: &SideError) -> Failure {
        Failure {
            side: Some(err.side),
            ..Failure::failed(err.to_string(), err.hint())
        }
    }
}
