//! The `git-relay` binary: parse the command line, run, print, exit.

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
    };
    std::process::exit(code as i32);
}

fn relay(args: &RelayArgs, mode: Mode) -> ExitCode {
    let settings = (args.options(mode)).and_then(|o| Ok((o, args.local_options()?)));
    let (options, local) = match settings {
        Ok(settings) => settings,
        Err(message) => return fail(&Failure::usage(message), false),
    };
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
            report.exit_code()
        }
        Err(err) => fail(&Failure::from(&err), args.json),
    }
}

fn mirror_all(args: &MirrorAllArgs) -> ExitCode {
    let summary = match git_relay::sweep::sweep(&args.config()) {
        Ok(summary) => summary,
        Err(failure) => return fail(&failure, args.json),
    };
    for line in summary.table() {
        output::info(line);
    }
    if args.json {
        output::stdout(&summary.to_json());
    }
    summary.exit_code()
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
