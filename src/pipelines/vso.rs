//! Azure Pipelines logging commands (`##vso[...]`) and formatting lines
//! (`##[group]`), written so the agent parses exactly what we mean.
//!
//! The agent reads a command from any line of the task's stdout or stderr
//! that contains `##vso[`; properties end at `;` and `]`, the message at the
//! end of the line. Every value we put in a command is therefore escaped
//! (`%` as `%AZP25`, CR as `%0D`, LF as `%0A`, and in properties `]` as
//! `%5D` and `;` as `%3B`), and redacted *before* escaping, because an
//! escaped secret no longer looks like the secret the redactor knows.
//!
//! Every line goes to stderr through [`crate::output`], the stream the engine
//! writes its progress to, so that a `##[group]` opens before the lines it
//! groups: the agent reads stdout and stderr separately and would not keep
//! their relative order. The one exception is [`set_secret`], which must
//! print the secret itself.

use std::io::Write;

use super::words::in_task_words;
use crate::auth;
use crate::output;

/// Escapes a property value of a logging command.
pub(crate) fn escape_property(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' => out.push_str("%AZP25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            ']' => out.push_str("%5D"),
            ';' => out.push_str("%3B"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes the message of a logging command.
pub(crate) fn escape_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%AZP25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

/// Makes text that came from elsewhere (a server's error message, a
/// reason) safe to print on a line of its own: the agent would otherwise
/// obey a `##vso[` inside it, so a hostile server could set variables or
/// fail the task. This is the agent's own neutralisation.
pub(crate) fn neutralize(text: &str) -> String {
    output::defuse(text).into_owned()
}

/// Formats `##vso[area.action key=value;...]message`, redacted and escaped.
pub(crate) fn command(name: &str, properties: &[(&str, &str)], message: &str) -> String {
    let mut line = format!("##vso[{name}");
    if !properties.is_empty() {
        line.push(' ');
        for (key, value) in properties {
            line.push_str(key);
            line.push('=');
            line.push_str(&escape_property(&auth::redact(value)));
            line.push(';');
        }
    }
    line.push(']');
    line.push_str(&escape_message(&auth::redact(message)));
    line
}

fn emit(line: &str) {
    output::logging_command(line);
}

/// Tells the agent to mask `secret` in everything it logs from now on.
///
/// Written straight to stderr: [`crate::output`] would mask the very
/// secret this line must carry, and the agent does not log this line.
pub(crate) fn set_secret(secret: &str) {
    if secret.is_empty() {
        return;
    }
    let line = format!("##vso[task.setsecret]{}", escape_message(secret));
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// How serious an issue is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Issue {
    /// Shown as an error on the run's summary page.
    Error,
    /// Shown as a warning.
    Warning,
}

/// Records an error or warning on the run's summary page.
pub(crate) fn log_issue(kind: Issue, message: &str) {
    let kind = match kind {
        Issue::Error => "error",
        Issue::Warning => "warning",
    };
    emit(&command(
        "task.logissue",
        &[("type", kind)],
        &in_task_words(message),
    ));
}

/// The task's final result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TaskResult {
    /// Everything asked for was done.
    Succeeded,
    /// Done, but some refs were protected or rejected.
    SucceededWithIssues,
    /// Not done.
    Failed,
}

impl TaskResult {
    /// The name the agent expects.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TaskResult::Succeeded => "Succeeded",
            TaskResult::SucceededWithIssues => "SucceededWithIssues",
            TaskResult::Failed => "Failed",
        }
    }
}

/// Sets the task's result; the last thing the task prints.
pub(crate) fn complete(result: TaskResult, message: &str) {
    emit(&command(
        "task.complete",
        &[("result", result.name())],
        &in_task_words(message),
    ));
}

/// Moves the progress shown next to the running task.
pub(crate) fn set_progress(percent: u8, label: &str) {
    emit(&command(
        "task.setprogress",
        &[("value", &percent.min(100).to_string())],
        label,
    ));
}

/// Sets an output variable, readable by later steps as `$(step.name)`.
pub(crate) fn set_output(name: &str, value: &str) {
    emit(&command(
        "task.setvariable",
        &[("variable", name), ("isoutput", "true")],
        value,
    ));
}

/// Attaches a markdown file to the run's summary page as a section
/// titled `name`. `task.uploadsummary` would title it with the file's
/// name, which is unique per run; this is the command it stands for,
/// with a name that stays the same.
pub(crate) fn attach_summary(name: &str, path: &str) {
    emit(&command(
        "task.addattachment",
        &[("type", "Distributedtask.Core.Summary"), ("name", name)],
        path,
    ));
}

/// Opens a collapsible section of the log.
pub(crate) fn group(title: &str) {
    emit(&format!("##[group]{}", one_line(title)));
}

/// Closes the section [`group`] opened.
pub(crate) fn end_group() {
    emit("##[endgroup]");
}

/// An error line, shown in red in the log (not on the summary page: that
/// is [`log_issue`]).
pub(crate) fn error_line(text: &str) {
    emit(&format!("##[error]{}", one_line(&in_task_words(text))));
}

/// A warning line, shown in yellow in the log.
pub(crate) fn warning_line(text: &str) {
    emit(&format!("##[warning]{}", one_line(&in_task_words(text))));
}

/// A highlighted heading line.
pub(crate) fn section(text: &str) {
    emit(&format!("##[section]{}", one_line(text)));
}

/// Flattens text onto one neutralised line for the formatting commands,
/// which end at the end of the line.
fn one_line(text: &str) -> String {
    neutralize(&text.replace(['\r', '\n'], " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_escape_every_delimiter() {
        assert_eq!(escape_property("a;b]c%d\re\nf"), "a%3Bb%5Dc%AZP25d%0De%0Af");
        assert_eq!(escape_property("plain value"), "plain value");
    }

    #[test]
    fn messages_keep_brackets_and_semicolons() {
        assert_eq!(
            escape_message("50% done; [ok]\r\nnext"),
            "50%AZP25 done; [ok]%0D%0Anext"
        );
    }

    #[test]
    fn percent_is_escaped_once() {
        // An already-escaped looking input must round-trip, not be decoded.
        assert_eq!(escape_message("%0A"), "%AZP250A");
        assert_eq!(escape_property("%AZP25"), "%AZP25AZP25");
    }

    #[test]
    fn commands_are_assembled_and_escaped() {
        assert_eq!(
            command(
                "task.setvariable",
                &[("variable", "x"), ("isoutput", "true")],
                "a\nb"
            ),
            "##vso[task.setvariable variable=x;isoutput=true;]a%0Ab"
        );
        assert_eq!(
            command(
                "task.addattachment",
                &[
                    ("type", "Distributedtask.Core.Summary"),
                    ("name", "git-relay")
                ],
                "/t/s.md"
            ),
            "##vso[task.addattachment type=Distributedtask.Core.Summary;name=git-relay;]/t/s.md"
        );
        assert_eq!(
            command("task.logissue", &[("type", "error")], "bad ] ; value"),
            "##vso[task.logissue type=error;]bad ] ; value"
        );
    }

    #[test]
    fn commands_are_redacted_before_escaping() {
        auth::register_secret("vso-test;secret]");
        let line = command(
            "task.complete",
            &[("result", "Failed")],
            "x vso-test;secret] y",
        );
        // Other tests register secrets in the same process-wide redactor, so
        // only this one's fate is asserted: masked, not escaped and kept.
        assert!(
            line.starts_with("##vso[task.complete result=Failed;]"),
            "{line}"
        );
        assert!(line.contains("***") && !line.contains("vso-test"), "{line}");
    }

    #[test]
    fn foreign_commands_are_neutralised() {
        assert_eq!(
            neutralize("remote: ##vso[task.complete result=Failed]x"),
            "remote: **vso[task.complete result=Failed]x"
        );
        assert_eq!(neutralize("a ##VSO[ b ##vso"), "a **vso[ b **vso");
        assert_eq!(
            one_line("x\n##vso[task.setvariable variable=a]1"),
            "x **vso[task.setvariable variable=a]1"
        );
    }
}
