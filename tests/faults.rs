//! Networks and servers that misbehave: connections cut in the middle of
//! the source's pack, of the upload to the destination and of its report;
//! a stalled server; garbage instead of a ref advertisement.
//!
//! A [`HostileServer`] says what no git server would, to check the bounds
//! on what a server can make a run hold in memory or wait for: an endless
//! ref advertisement, a trickle of one byte every half second, side-band
//! progress that never becomes a pack. Each of those runs ends within a
//! documented time, with an error naming the side.
//!
//! A [`FaultProxy`] sits in front of one side of a real git http-backend
//! server. Whatever happens, the run ends with a clear error naming the
//! side, or with a successful retry; the destination is never left with a
//! ref pointing at missing objects (`git fsck`), and the next run converges.

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use support::*;

/// 2 MiB of incompressible content, so packs are far larger than the
/// thresholds at which the proxy cuts, and ref listings far smaller.
fn big_source(server: &GitServer) {
    let work = WorkRepo::new();
    git(work.path(), &["config", "core.compression", "0"]);
    let mut data = Vec::with_capacity(2 << 20);
    let mut x: u32 = 2463534242;
    while data.len() < 2 << 20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.extend_from_slice(&x.to_le_bytes());
    }
    work.commit_file("blob.bin", &data, "big");
    work.commit("small");
    work.tag("v1");
    server.create_bare("src.git");
    work.push_mirror_to(&server.repo_path("src.git"));
    server.create_bare("dst.git");
}

const THRESHOLD: u64 = 512 * 1024;

fn mirror(src: &str, dst: &str, server: &GitServer, extra: &[&str]) -> Output {
    relay()
        .args(["mirror", src, dst])
        .args(extra)
        .args(["--retry-base-ms", "50"])
        .env("GIT_RELAY_SOURCE_TOKEN", server.password())
        .env("GIT_RELAY_DEST_TOKEN", server.password())
        .env("GIT_RELAY_SOURCE_USERNAME", server.username())
        .env("GIT_RELAY_DEST_USERNAME", server.username())
        .output()
        .expect("run git-relay")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The destination is either untouched or complete, and consistent.
fn assert_destination_sound(server: &GitServer) {
    fsck_strict(&server.repo_path("dst.git"));
    let dst = refs_of(&server.repo_path("dst.git"));
    let src = refs_of(&server.repo_path("src.git"));
    for (name, oid) in &dst {
        assert!(
            src.contains(&(name.clone(), oid.clone())),
            "{name} points at {oid}, which the source never had there"
        );
    }
}

fn assert_converges(server: &GitServer) {
    let out = mirror(
        &server.url("src.git"),
        &server.url("dst.git"),
        server,
        &["--retries", "0"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        refs_of(&server.repo_path("dst.git")),
        refs_of(&server.repo_path("src.git"))
    );
    fsck_strict(&server.repo_path("dst.git"));
}

/// Which side of the relay the faulty proxy stands in front of.
#[derive(Clone, Copy)]
enum Faulty {
    Source,
    Destination,
}

/// A server with a big source, and a proxy that will fail once.
struct Setup {
    server: GitServer,
    proxy: FaultProxy,
    faulty: Faulty,
}

impl Setup {
    fn new(faulty: Faulty, fault: Fault) -> Setup {
        let server = GitServer::start();
        big_source(&server);
        let proxy = FaultProxy::start(server.port(), fault, 1);
        Setup {
            server,
            proxy,
            faulty,
        }
    }

    fn mirror(&self, retries: &str) -> Output {
        let (src, dst) = match self.faulty {
            Faulty::Source => (self.proxy.url("src.git"), self.server.url("dst.git")),
            Faulty::Destination => (self.server.url("src.git"), self.proxy.url("dst.git")),
        };
        mirror(&src, &dst, &self.server, &["--retries", retries])
    }

    /// With retries, the run starts over after the fault and succeeds.
    fn assert_retry_succeeds(&self) {
        let out = self.mirror("2");
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(self.proxy.fired(), 1);
        assert!(stderr(&out).contains("retrying"), "{}", stderr(&out));
        assert_eq!(
            refs_of(&self.server.repo_path("dst.git")),
            refs_of(&self.server.repo_path("src.git"))
        );
        fsck_strict(&self.server.repo_path("dst.git"));
    }

    /// Without retries, the run fails naming `side`, the destination is
    /// sound (and `untouched`, when the fault struck before the push could
    /// complete), and the next run converges.
    fn assert_fails_naming(&self, side: &str, untouched: bool) {
        let out = self.mirror("0");
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("error: {side}")),
            "{}",
            stderr(&out)
        );
        assert_destination_sound(&self.server);
        if untouched {
            assert!(refs_of(&self.server.repo_path("dst.git")).is_empty());
        }
        assert_converges(&self.server);
    }
}

#[test]
fn a_source_cut_mid_pack_is_retried() {
    Setup::new(Faulty::Source, Fault::CutResponseAfter(THRESHOLD)).assert_retry_succeeds();
}

#[test]
fn a_source_cut_without_retries_blames_the_source_and_changes_nothing() {
    let setup = Setup::new(Faulty::Source, Fault::CutResponseAfter(THRESHOLD));
    setup.assert_fails_naming("source", true);
}

#[test]
fn a_destination_cut_mid_upload_is_retried() {
    Setup::new(Faulty::Destination, Fault::CutRequestAfter(THRESHOLD)).assert_retry_succeeds();
}

#[test]
fn a_destination_cut_mid_upload_blames_the_destination_and_changes_nothing() {
    let setup = Setup::new(Faulty::Destination, Fault::CutRequestAfter(THRESHOLD));
    setup.assert_fails_naming("destination", true);
}

#[test]
fn a_lost_push_report_is_retried_from_the_start() {
    // The destination may have applied the push before its report was lost;
    // the retry lists it again and finds nothing (or everything) to do.
    let setup = Setup::new(
        Faulty::Destination,
        Fault::CutResponseAfterRequest(THRESHOLD),
    );
    setup.assert_retry_succeeds();
}

#[test]
fn a_lost_push_report_without_retries_is_an_error_and_the_next_run_converges() {
    let setup = Setup::new(
        Faulty::Destination,
        Fault::CutResponseAfterRequest(THRESHOLD),
    );
    setup.assert_fails_naming("destination", false);
}

#[test]
fn a_stalled_source_times_out_naming_the_side() {
    let server = GitServer::start();
    big_source(&server);
    let proxy = FaultProxy::start(server.port(), Fault::StallResponseAfter(THRESHOLD), 1);
    let started = Instant::now();
    let out = mirror(
        &proxy.url("src.git"),
        &server.url("dst.git"),
        &server,
        &["--timeout", "2", "--retries", "3"],
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: source") && err.contains("timed out") && err.contains("2s"),
        "{err}"
    );
    assert!(
        err.contains("--timeout"),
        "the hint names the option: {err}"
    );
    assert!(took < Duration::from_secs(20), "gave up after {took:?}");
    assert_destination_sound(&server);
    assert!(refs_of(&server.repo_path("dst.git")).is_empty());
}

#[test]
fn a_busy_server_is_waited_for_as_its_retry_after_asks() {
    let server = GitServer::start();
    big_source(&server);
    let proxy = FaultProxy::start(server.port(), Fault::Unavailable, 2);
    let out = mirror(
        &proxy.url("src.git"),
        &server.url("dst.git"),
        &server,
        &["--retries", "3"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(proxy.fired(), 2);
    let err = stderr(&out);
    assert!(
        err.contains("HTTP 503") && err.contains("retrying in 1.0 s"),
        "{err}"
    );
    assert_converges(&server);

    // Without retries, the user learns what happened and what to do.
    let proxy = FaultProxy::start(server.port(), Fault::Unavailable, 1);
    let out = mirror(
        &proxy.url("src.git"),
        &server.url("dst.git"),
        &server,
        &["--retries", "0"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--retries"), "{}", stderr(&out));
}

#[test]
fn garbage_from_the_source_is_a_clear_error() {
    let server = GitServer::start();
    big_source(&server);
    let proxy = FaultProxy::start(server.port(), Fault::Garbage, 100);
    let out = mirror(
        &proxy.url("src.git"),
        &server.url("dst.git"),
        &server,
        &["--retries", "0"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: source") && !err.contains("crashed"),
        "{err}"
    );
    assert!(refs_of(&server.repo_path("dst.git")).is_empty());
}

#[test]
fn two_runs_racing_to_one_destination_both_end_correct() {
    let server = GitServer::start();
    big_source(&server);
    let (src, dst) = (server.url("src.git"), server.url("dst.git"));
    let runs: Vec<Output> = std::thread::scope(|s| {
        let a = s.spawn(|| mirror(&src, &dst, &server, &["--retries", "0"]));
        let b = s.spawn(|| mirror(&src, &dst, &server, &["--retries", "0"]));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    // Each run either did the work or was refused a stale update (exit 3);
    // nothing is lost and a third run finds everything in place.
    for out in &runs {
        assert!(
            matches!(out.status.code(), Some(0) | Some(3)),
            "{}",
            stderr(out)
        );
    }
    assert!(runs.iter().any(|o| o.status.success()));
    assert_converges(&server);
}

/// Runs `git-relay ARGS` against a hostile server, killing it after 30 s:
/// without the bounds under test it would never end.
fn run_hostile(args: &[&str], server: &GitServer) -> Bounded {
    let args = [args, &["--retry-base-ms", "50"]].concat();
    let out = run_bounded(&args, &credentials(server), Duration::from_secs(30));
    assert!(
        !out.killed,
        "still running after {:?} (peak memory {} MiB); killed\n--- stderr\n{}",
        out.elapsed,
        out.peak >> 20,
        out.run.stderr
    );
    out.run.assert_code(1);
    eprintln!(
        "{args:?}: ended after {:.1?}, peak memory {} MiB\n{}",
        out.elapsed,
        out.peak >> 20,
        out.run.stderr
    );
    out
}

fn assert_names(out: &Bounded, side: &str, what: &str) {
    let stderr = &out.run.stderr;
    assert!(
        stderr.contains(&format!("{side} (http://127.0.0.1:")) && stderr.contains(what),
        "expected {side} and \"{what}\" in:\n{stderr}"
    );
}

#[test]
fn an_endless_advertisement_is_cut_before_memory_grows() {
    let hostile = HostileServer::start(Script::EndlessAdvertisement);
    let server = GitServer::start();
    server.create_bare("dst.git");
    let (src, dst) = (hostile.url("src.git"), server.url("dst.git"));
    for (flag, value, what) in [
        (
            "--max-advertisement-bytes",
            "16MiB",
            "past the limit of 16777216 bytes",
        ),
        ("--max-advertised-refs", "100000", "more than 100000 refs"),
    ] {
        let out = run_hostile(
            &["mirror", &src, &dst, "--retries", "0", flag, value],
            &server,
        );
        assert_names(&out, "source", what);
        assert!(out.run.stderr.contains(flag), "{}", out.run.stderr);
        assert!(
            out.peak < 64 << 20,
            "peak memory {} MiB with {flag} {value}",
            out.peak >> 20
        );
    }

    // The destination's advertisement is bounded the same way.
    populated_source(&server);
    let out = run_hostile(
        &[
            "status",
            &server.url("src.git"),
            &hostile.url("dst.git"),
            "--max-advertised-refs",
            "1000",
        ],
        &server,
    );
    assert_names(&out, "destination", "more than 1000 refs");
}

/// `--timeout 3` and the default low-speed limit (1 KiB/s over the
/// timeout): a trickle is too slow once the first window is over, within
/// twice the timeout.
#[test]
fn a_trickling_source_ends_within_twice_the_timeout() {
    let hostile = HostileServer::start(Script::Trickle);
    let server = GitServer::start();
    server.create_bare("dst.git");
    let out = run_hostile(
        &[
            "mirror",
            &hostile.url("src.git"),
            &server.url("dst.git"),
            "--timeout",
            "3",
        ],
        &server,
    );
    assert_names(&out, "source", "too slow");
    assert!(out.elapsed < Duration::from_secs(8), "{:?}", out.elapsed);
}

/// Progress on side-band channel 2 is not progress of the transfer: a
/// source may send it (or keep-alives) while it prepares the pack, for at
/// most 5 windows of `--timeout`; one that sends it briskly and never a
/// byte of pack then ends within the next window.
#[test]
fn endless_sideband_progress_ends_after_the_preparation_windows() {
    let hostile = HostileServer::start(Script::EndlessProgress);
    let server = GitServer::start();
    server.create_bare("dst.git");
    let out = run_hostile(
        &[
            "mirror",
            &hostile.url("src.git"),
            &server.url("dst.git"),
            "--timeout",
            "1",
        ],
        &server,
    );
    assert_names(&out, "source", "too slow");
    // 5 windows of preparation, the window that fails, and slack.
    assert!(
        out.elapsed > Duration::from_secs(5) && out.elapsed < Duration::from_secs(10),
        "{:?}",
        out.elapsed
    );
    assert!(server
        .repo_path("dst.git")
        .join("refs/heads")
        .read_dir()
        .unwrap()
        .next()
        .is_none());
}

/// With the low-speed window at a minute, only the deadline ends the run.
#[test]
fn the_deadline_ends_a_slow_run_on_time() {
    let hostile = HostileServer::start(Script::Trickle);
    let server = GitServer::start();
    server.create_bare("dst.git");
    let out = run_hostile(
        &[
            "mirror",
            &hostile.url("src.git"),
            &server.url("dst.git"),
            "--timeout",
            "60",
            "--deadline",
            "5s",
        ],
        &server,
    );
    assert_names(&out, "source", "deadline of 5s");
    assert!(
        out.elapsed > Duration::from_millis(4500) && out.elapsed < Duration::from_secs(7),
        "{:?}",
        out.elapsed
    );
}

/// A forge API answer is read up to 64 MiB: a list of repositories without
/// end is cut there, not collected.
#[test]
fn an_endless_forge_api_answer_is_cut() {
    let hostile = HostileServer::start(Script::EndlessJson);
    let server = GitServer::start();
    let template = format!("{}/{{repo}}.git", server.root().join("backup").display());
    let out = run_hostile(
        &[
            "mirror-all",
            "--source-kind",
            "github",
            &hostile.url("acme"),
            &template,
        ],
        &server,
    );
    assert!(
        out.run.stderr.contains("GitHub API") && out.run.stderr.contains("larger than 64 MiB"),
        "{}",
        out.run.stderr
    );
    assert!(out.peak < 256 << 20, "peak memory {} MiB", out.peak >> 20);
}

/// The push report is a message like the advertisement: a destination
/// that reports on refs without end is cut at the same limit.
#[test]
fn an_endless_push_report_is_cut() {
    let hostile = HostileServer::start(Script::EndlessReport);
    let server = GitServer::start();
    populated_source(&server);
    let out = run_hostile(
        &[
            "mirror",
            &server.url("src.git"),
            &hostile.url("dst.git"),
            "--retries",
            "0",
            "--max-advertisement-bytes",
            "4MiB",
        ],
        &server,
    );
    assert_names(&out, "destination", "past the limit of 4194304 bytes");
    assert!(out.peak < 64 << 20, "peak memory {} MiB", out.peak >> 20);
}

#[test]
fn a_pack_damaged_on_the_way_from_the_source_is_blamed_on_the_source() {
    const MARKER: &[u8] = b"<this line is flipped in transit>";
    let server = GitServer::start();
    let work = WorkRepo::new();
    git(work.path(), &["config", "core.compression", "0"]);
    work.commit_file("marked.txt", &MARKER.repeat(4096), "marked");
    // Stored uncompressed at the source too, so its packs carry the marker.
    let src = server.create_bare("src.git");
    git(&src, &["config", "core.compression", "0"]);
    work.push_mirror_to(&src);
    server.create_bare("dst.git");
    let proxy = FaultProxy::start(server.port(), Fault::CorruptResponse(MARKER), 1);

    let out = mirror(
        &proxy.url("src.git"),
        &server.url("dst.git"),
        &server,
        &["--retries", "0"],
    );
    assert_eq!(proxy.fired(), 1);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: source") && err.contains("checksum"),
        "{err}"
    );
    assert!(refs_of(&server.repo_path("dst.git")).is_empty());
    assert_converges(&server);

    // A backup's pack writer refuses the damaged pack early; the source is
    // blamed all the same.
    let proxy = FaultProxy::start(server.port(), Fault::CorruptResponse(MARKER), 1);
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("backup.git");
    let out = mirror(
        &proxy.url("src.git"),
        backup.to_str().unwrap(),
        &server,
        &["--retries", "0"],
    );
    assert_eq!(proxy.fired(), 1);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: source") && err.contains("checksum"),
        "{err}"
    );
    assert!(refs_of(&backup).is_empty());
}
