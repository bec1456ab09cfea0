//! The `git-relay` binary: parse the command line, run, print, exit.

use std::time::{Instant, SystemTime};

use clap::Parser;

use git_relay::cli::{Cli, Command, MirrorAllArgs, RelayArgs, VerifyArgs};
use git_relay::error::{ExitCode, Failure};
use git_relay::mirror::{self, Mode};
use git_relay::output::{self, Verbosity};

fn main() {
    // A panic message can quote anything the program held, secrets included.
    std::panic::set_hook(Box::new(|info| {
        output::error(format_args!(
            "git-relay crashed (this is a bug, please report it): {info}"
        ));
    }));
    let cli = Cli::parse();
    // A service stops at signals in its own way: it lets running mirrors
    // finish first.
    if !matches!(cli.command, Command::Serve(_)) {
        stop_cleanly_at_signals();
    }
    output::set_verbosity(if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    });
    let code = match &cli.command {
        Command::Mirror(args) => relay(args, Mode::Mirror),
        Command::Status(args) => relay(args, Mode::Status),
        Command::MirrorAll(args) => mirror_all(args),
        Command::Task => git_relay::pipelines::run(),
        Command::Verify(args) => verify(args),
        Command::Serve(args) => {
            if args.log_format == "json" {
                output::log_as_json_lines();
            }
            git_relay::serve::run(&args.config, args.check)
        }
    };
    std::process::exit(code as i32);
}

/// At SIGINT, SIGTERM or SIGHUP (a cancelled pipeline, a Ctrl+C), the SSH
/// key files the run wrote are removed before it exits; the destination is
/// never left half-updated (ref updates are compare-and-swap), so nothing
/// else needs undoing.
#[cfg(unix)]
fn stop_cleanly_at_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                git_relay::transport::remove_temporary_files();
                // Then die of it, as without this handler: callers (the
                // task's wrapper, a shell) read how the process ended.
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        });
}

#[cfg(not(unix))]
fn stop_cleanly_at_signals() {}

fn relay(args: &RelayArgs, mode: Mode) -> ExitCode {
    let settings = (args.options(mode)).and_then(|o| Ok((o, args.local_options()?)));
    let (options, local) = match settings {
        Ok(settings) => settings,
        Err(message) => return fail(&Failure::usage(message), false),
    };
    let files = args.reports.files();
    let (started, clock) = (SystemTime::now(), Instant::now());
    match mirror::run_with_retries_and_local(&options, args.network.retry_policy(), &local) {
        Ok(report) => {
            print_ref_lines(&report);
            output::info(report.summary());
            if report.totals.protected > 0 {
                output::warn(format_args!(
                    "{} ref(s) protected: the destination has commits the source does not; inspect them, then rerun with --force to overwrite",
                    report.totals.protected
                ));
            }
            if args.json {
                output::stdout(&report.to_json());
            }
            let written = files.write_mirror(&options, Ok(&report), started, clock.elapsed());
            with_reports(report.exit_code(), written)
        }
        Err(err) => {
            let failure = Failure::from(&err);
            let code = fail(&failure, args.json);
            files.write_mirror(&options, Err(&failure), started, clock.elapsed());
            code
        }
    }
}

fn mirror_all(args: &MirrorAllArgs) -> ExitCode {
    let files = args.reports.files();
    let config = args.config();
    let (started, clock) = (SystemTime::now(), Instant::now());
    let summary = match git_relay::sweep::sweep(&config) {
        Ok(summary) => summary,
        Err(failure) => {
            let code = fail(&failure, args.json);
            // A usage error stopped the sweep before it began: there is
            // no run to report.
            if failure.code != ExitCode::Usage {
                files.write_sweep(&config, Err(&failure), started, clock.elapsed());
            }
            return code;
        }
    };
    for line in summary.table() {
        output::info(line);
    }
    if args.json {
        output::stdout(&summary.to_json());
    }
    let written = files.write_sweep(&config, Ok(&summary), started, clock.elapsed());
    with_reports(summary.exit_code(), written)
}

/// A report file that could not be written fails a run that otherwise
/// succeeded: a monitor reading a stale file would believe all is well.
fn with_reports(code: ExitCode, written: bool) -> ExitCode {
    if written || code != ExitCode::Success {
        code
    } else {
        ExitCode::Failed
    }
}

fn verify(args: &VerifyArgs) -> ExitCode {
    let path = match git_relay::transport::Location::parse(&args.path) {
        Ok(location) => match location.local_path() {
            Some(path) => path.to_owned(),
            None => {
                let message = "verify checks a local repository: give a path or a file:// URL";
                return fail(&Failure::usage(message), false);
            }
        },
        Err(message) => return fail(&Failure::usage(message), false),
    };
    match git_relay::store::verify(&path) {
        Ok(report) => {
            for problem in &report.problems {
                output::error(problem);
            }
            output::info(report.summary());
            if args.json {
                output::stdout(&git_relay::auth::redacted_json(&report));
            }
            if report.is_sound() {
                ExitCode::Success
            } else {
                ExitCode::Failed
            }
        }
        // The verify report itself has no error document.
        Err(err) => fail(&Failure::failed(err.to_string(), None), false),
    }
}

/// Prints a failure and, with `--json`, its document on stdout; returns
/// its exit code. A usage error has no document: it is for the person
/// typing, as with every command.
fn fail(failure: &Failure, json: bool) -> ExitCode {
    output::error(&failure.message);
    if let Some(hint) = &failure.hint {
        output::hint(hint);
    }
    if json && failure.code != ExitCode::Usage {
        output::stdout(&failure.to_json());
    }
    failure.code
}

/// The refs that changed, one line each. A first mirror can create
/// thousands: past a screenful only the refs that need attention are
/// listed, and `--verbose` or `--json` give every one.
fn print_ref_lines(report: &mirror::Report) {
    const SHOWN: usize = 40;
    let all = output::verbose();
    let mut hidden = 0;
    for (i, (line, r)) in report.ref_lines().into_iter().zip(&report.refs).enumerate() {
        let trouble = !matches!(r.result, mirror::Outcome::Ok | mirror::Outcome::Planned);
        if all || trouble || i < SHOWN {
            output::info(line);
        } else {
            hidden += 1;
        }
    }
    if hidden > 0 {
        output::info(format_args!(
            "  ... and {hidden} more (--verbose or --json lists every ref)"
        ));
    }
    for line in report.lfs_lines() {
        output::info(line);
    }
}
