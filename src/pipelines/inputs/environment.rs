//! The agent's environment: how a task's inputs and service connections
//! arrive.
//!
//! The agent hands a task its inputs as environment variables: input
//! `fooBar` arrives as `INPUT_FOOBAR` (upper-cased, `.` and space as `_`),
//! with task.json's defaults already applied. A service connection input
//! holds only the connection's id; its URL and credentials arrive as
//! `ENDPOINT_URL_<id>`, `ENDPOINT_AUTH_<id>` (JSON) and
//! `ENDPOINT_AUTH_PARAMETER_<id>_<KEY>`, its data (an Azure connection's
//! authority host) as `ENDPOINT_DATA_<id>_<KEY>`. The pipeline's own token
//! is the `SYSTEMVSSCONNECTION` endpoint's `ACCESSTOKEN`; pipeline
//! variables such as `System.OidcRequestUri` arrive as `SYSTEM_OIDCREQUESTURI`.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use super::INPUTS;

/// The environment the agent gave the task, looked up case-insensitively
/// (Windows variables are; endpoint ids arrive in either case).
#[derive(Clone, Debug, Default)]
pub(crate) struct Environment {
    vars: HashMap<String, String>,
    /// The inputs read so far. The classic editor keeps the values of
    /// the inputs it hides (another mode's, another authentication's), so
    /// a check of every input's value must look only at those the run uses.
    read: RefCell<BTreeSet<String>>,
}

impl Environment {
    /// This process's environment.
    pub(crate) fn from_process() -> Environment {
        Environment::from_pairs(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// An environment made of these pairs (for tests).
    pub(crate) fn from_pairs<K: AsRef<str>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Environment {
        Environment {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_ascii_uppercase(), v.into()))
                .collect(),
            read: RefCell::default(),
        }
    }

    /// A variable's value; unset and empty are the same to the agent.
    pub(crate) fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(&name.to_ascii_uppercase())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// An input's value, trimmed, or "" when not given.
    pub(crate) fn input(&self, name: &str) -> &str {
        debug_assert!(
            INPUTS.contains(&name),
            "input {name} is not in INPUTS (and so not in task.json)"
        );
        self.read.borrow_mut().insert(name.to_owned());
        self.var(&input_variable(name)).map(str::trim).unwrap_or("")
    }

    /// Whether the input `name` was read.
    pub(crate) fn was_read(&self, name: &str) -> bool {
        self.read.borrow().contains(name)
    }

    /// Whether a variable holds `true` (any case), as the agent writes booleans.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.var(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// One authorization parameter of an endpoint: the per-parameter variable
    /// first, then the `parameters` object of `ENDPOINT_AUTH_<id>`, keys
    /// compared without case as the agent's own helpers do.
    pub(crate) fn endpoint_parameter(&self, id: &str, key: &str) -> Option<String> {
        if let Some(value) = self.var(&format!("ENDPOINT_AUTH_PARAMETER_{id}_{key}")) {
            return Some(value.to_owned());
        }
        let auth = self.endpoint_auth(id)?;
        (auth
            .get("parameters")
            .or_else(|| auth.get("Parameters"))?
            .as_object()?)
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
    }

    /// The authorization scheme of an endpoint, when the agent passed one.
    pub(crate) fn endpoint_scheme(&self, id: &str) -> Option<String> {
        if let Some(scheme) = self.var(&format!("ENDPOINT_AUTH_SCHEME_{id}")) {
            return Some(scheme.to_owned());
        }
        let auth = self.endpoint_auth(id)?;
        let scheme = auth.get("scheme").or_else(|| auth.get("Scheme"))?;
        scheme.as_str().map(str::to_owned)
    }

    /// One data parameter of an endpoint (an Azure Resource Manager
    /// connection's `environmentAuthorityUrl`, say): `ENDPOINT_DATA_<id>_<KEY>`,
    /// else the `ENDPOINT_DATA_<id>` JSON, keys compared without case.
    pub(crate) fn endpoint_data(&self, id: &str, key: &str) -> Option<String> {
        if let Some(value) = self.var(&format!("ENDPOINT_DATA_{id}_{key}")) {
            return Some(value.to_owned());
        }
        let data: serde_json::Value =
            serde_json::from_str(self.var(&format!("ENDPOINT_DATA_{id}"))?).ok()?;
        (data.as_object()?.iter())
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// The `ENDPOINT_AUTH_<id>` JSON, which holds an endpoint's scheme and
    /// parameters when their own variables are not set.
    fn endpoint_auth(&self, id: &str) -> Option<serde_json::Value> {
        serde_json::from_str(self.var(&format!("ENDPOINT_AUTH_{id}"))?).ok()
    }
}

/// The environment variable the agent uses for an input.
pub(crate) fn input_variable(name: &str) -> String {
    format!(
        "INPUT_{}",
        name.replace(['.', ' '], "_").to_ascii_uppercase()
    )
}
