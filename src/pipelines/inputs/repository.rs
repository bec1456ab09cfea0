//! Repository mode: one repository to another, the old task's job.

use super::credentials::{read_credentials, read_ssh, SideInputs, DESTINATION, SOURCE};
use super::{
    described_with_url, read_bool, read_lfs, read_network, read_push, read_selection, side_network,
    Collector, Environment, Reading,
};
use crate::mirror::{Endpoint, Mode, Options};
use crate::transport::NetworkOptions;

/// Reads and validates every input.
pub(crate) fn read(env: &Environment) -> Reading<Options> {
    let mut c = Collector::default();
    let network = read_network(env, &mut c);
    let source = read_side(env, &SOURCE, &mut c, &network);
    let destination = read_side(env, &DESTINATION, &mut c, &network);
    let selection = read_selection(env, &mut c);
    let prune = read_bool(env, "prune", true, &mut c);
    let force = read_bool(env, "force", false, &mut c);
    let dry_run = read_bool(env, "dryRun", false, &mut c);
    let push = read_push(env, &mut c);
    let lfs = read_lfs(env, &mut c, true);

    let run = match (source, destination, selection) {
        (Some(source), Some(destination), Some(selection)) => Some((
            Options {
                source: source.0,
                destination: destination.0,
                selection,
                prune,
                force,
                mode: if dry_run { Mode::DryRun } else { Mode::Mirror },
                push,
                lfs,
            },
            (source.1, destination.1),
        )),
        _ => None,
    };
    c.finish(env, run)
}

/// Reads one side; returns the endpoint and how it signs in.
fn read_side(
    env: &Environment,
    names: &SideInputs,
    c: &mut Collector,
    network: &NetworkOptions,
) -> Option<(Endpoint, String)> {
    let verify = read_bool(env, names.verify, true, c);
    let credentials = read_credentials(env, names, c);
    let ssh = read_ssh(env, names, c);
    let uri = env.input(names.uri);
    if uri.is_empty() {
        c.error(
            names.uri,
            format!("required: the URL of the {} repository", names.side),
        );
        return None;
    }
    // The URL is checked even when the credentials were not usable, so that
    // every problem is reported at once.
    let chosen = credentials.is_some();
    let credentials = credentials.unwrap_or_default();
    // The command line's own rules turn a URL and a token into credentials;
    // sign-in messages (a GitHub App's) name the side.
    let endpoint = credentials
        .config(side_network(network, verify, ssh))
        .endpoint(names.side, uri, None)
        .map_err(|e| {
            let message = e
                .strip_prefix(&format!("{}: ", names.side))
                .unwrap_or(&e)
                .to_owned();
            c.error(names.uri, message)
        })
        .ok()?;
    c.url_secret(uri);
    // A token source (Entra ID, a GitHub App) has no secret yet: its
    // tokens are told to the agent as they arrive, and the forms of an
    // empty one (`x-access-token:`) would only mask harmless text.
    if let Some(credentials) = (endpoint.credentials.as_ref()).filter(|c| c.identity().is_none()) {
        c.secrets.extend(credentials.secret_forms());
    }
    let described = described_with_url(credentials.described, uri);
    chosen.then_some((endpoint, described))
}
