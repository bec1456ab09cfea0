#!/usr/bin/env python3
"""Benchmark git-relay against `git clone --mirror` + `git push --mirror`.

What is measured
----------------
For each generated repository size, four scenarios, each run by both tools
against the same real smart-HTTP servers on 127.0.0.1 (nginx + fcgiwrap +
`git http-backend`, Basic auth, protocol v2 passed through):

  first    mirror into an empty destination repository;
  commit   the source gained one commit on its main branch;
  rewrite  one branch of the source was rewritten (force-pushed);
  noop     source and destination already agree.

The two tools:

  git-relay  `git-relay mirror SRC DST` (one process, nothing on local disk);
  git        `git clone --mirror SRC tmp` then `git -C tmp push --mirror DST`,
             the usual mirror job, which runs from scratch every time as it
             does on a fresh CI agent.

For every run we record:

  wall      elapsed time of the whole job (both git commands for `git`);
  cpu       user + system CPU time of the job's processes and all their
            descendants (git's remote-http, index-pack, pack-objects...),
            from the rusage of each finished command (wait4: Linux fills it
            in for the child and every descendant it waited for);
  rss       peak resident set size: the largest `ru_maxrss` of any single
            process of the job (for `git`, the max over the clone and the push
            and their helpers); memory of concurrent processes is not summed.
            Commands run under GNU time, which reports that rusage: a process
            forked straight from this interpreter would inherit its
            high-water mark, since Linux keeps ru_maxrss across exec;
  recv/sent bytes the client received from / sent to the servers, read from
            nginx's access log (`$bytes_sent` and `$request_length` of every
            request made during the run), so both tools are counted the same
            way, headers included;
  server    CPU and largest process of both servers' `git http-backend`
            processes and their git children (upload-pack, pack-objects,
            receive-pack, index-pack, rev-list), with http-backend run under
            GNU time too. Not in the client figures, but in the wall time, as
            it is for a user: it is what bounds a first mirror.

Each repetition starts from a freshly prepared destination (an empty bare
repository for `first`, a copy of a mirror of the base source otherwise), and
the tools alternate within a repetition so slow drift in machine load hits
both. Results are the median with the min-max spread over the repetitions.

Repositories are generated deterministically (seeded content, fixed dates)
with `git fast-import` and cached under bench/.cache/ keyed by their
parameters, so reruns skip generation.

Run `python3 bench/run.py --help` for the options; bench/README.md explains
the method and caveats.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CACHE_DIR = BENCH_DIR / ".cache"
RESULTS_DIR = BENCH_DIR / "results"
# A target dir of its own, so builds do not wait on other cargo runs' locks.
DEFAULT_TARGET_DIR = (Path("/work/target-bench") if Path("/work").is_dir()
                      else REPO_ROOT / "target" / "bench")
GNU_TIME = Path("/usr/bin/time")  # measures the client and the CGI processes

# Bump when the generator changes so cached repositories are rebuilt.
GENERATOR_VERSION = 4

USER = "bench"
PASSWORD = "bench-secret"

SCENARIOS = ("first", "commit", "rewrite", "noop")
SCENARIO_TITLES = {
    "first": "first mirror (empty destination)",
    "commit": "one new commit",
    "rewrite": "rewritten branch (force-push)",
    "noop": "no-op",
}
TOOLS = ("git-relay", "git")


@dataclass(frozen=True)
class RepoSpec:
    """Parameters of one generated repository; they also key the cache."""

    name: str
    commits: int  # total commits, main branch plus side branches
    branches: int  # side branches, each 1-5 commits forked from main
    tags: int  # half annotated, half lightweight, spread along main
    files: int  # text files edited along the history
    binaries: int  # incompressible files added along main
    binary_kib: int  # size of each of them
    seed: int = 1

    def key(self) -> str:
        """A cache key that changes when any parameter or the generator does."""
        text = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


SIZES = {
    "tiny": RepoSpec("tiny", commits=1_000, branches=10, tags=6, files=50,
                     binaries=2, binary_kib=512),
    "small": RepoSpec("small", commits=5_000, branches=40, tags=20, files=200,
                      binaries=2, binary_kib=1024),
    "medium": RepoSpec("medium", commits=50_000, branches=300, tags=100,
                       files=1_000, binaries=4, binary_kib=2048),
    # About 100 MiB of pack: the size the design notes quote figures for.
    "large": RepoSpec("large", commits=60_000, branches=600, tags=200,
                      files=2_000, binaries=6, binary_kib=4096),
    # Not in the default run: about 150 MiB, for a look at the trend.
    "xlarge": RepoSpec("xlarge", commits=100_000, branches=600, tags=200,
                       files=2_000, binaries=6, binary_kib=4096),
}

# The organization sweep: many small repositories.
ORG_SPEC = RepoSpec("org", commits=30, branches=2, tags=1, files=10,
                    binaries=0, binary_kib=0)


# --------------------------------------------------------------------------
# Small helpers


def log(message: str) -> None:
    """Progress line on stderr, timestamped, so stdout stays the report."""
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a setup command (not measured), failing loudly with its output."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    done = subprocess.run(cmd, **kwargs)
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace") if done.stderr else ""
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(cmd)}\n{err}")
    return done


def git(*args: str, cwd: Path | None = None, env: dict | None = None) -> str:
    """Run git for setup work and return its stdout as text."""
    return run(["git", *args], cwd=cwd, env=env).stdout.decode().strip()


def human_bytes(n: float) -> str:
    """Bytes in binary units, three significant digits."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n} B"


def human_seconds(s: float) -> str:
    """Seconds with a precision that suits their size."""
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 10:
        return f"{s:.2f} s"
    return f"{s:.1f} s"


def copy_repo(src: Path, dst: Path) -> None:
    """Copy a bare repository (plain copy: repositories are small enough)."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)


# --------------------------------------------------------------------------
# Build and dependency checks


def build_binary(target_dir: Path, rev: str | None) -> Path:
    """Build git-relay in release mode in a target dir of its own.

    With rev, the sources of that commit are exported (git archive) to a
    directory under the target dir and built there, so edits in progress in
    the working tree do not change what is measured.
    """
    source = REPO_ROOT
    if rev:
        commit = git("-C", str(REPO_ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}")
        source = target_dir / "src-export" / commit[:12]
        if not (source / "Cargo.toml").exists():
            source.mkdir(parents=True, exist_ok=True)
            archive = subprocess.Popen(["git", "-C", str(REPO_ROOT), "archive", commit],
                                       stdout=subprocess.PIPE)
            run(["tar", "-x", "-C", str(source)], stdin=archive.stdout)
            archive.wait()
            drop_missing_workspace_members(source / "Cargo.toml")
    log(f"building git-relay from {source} (cargo build --release -j 2, target {target_dir})")
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
    done = subprocess.run(["cargo", "build", "--release", "-j", "2", "--bin", "git-relay"],
                          cwd=source, env=env)
    if done.returncode != 0:
        raise SystemExit("cargo build failed; pass --binary PATH to use a prebuilt git-relay")
    return target_dir / "release" / "git-relay"


def drop_missing_workspace_members(manifest: Path) -> None:
    """In an exported tree, forget workspace members the commit does not hold.

    A commit may list a member (e.g. xtask) whose files were not committed
    yet; cargo would refuse to build anything. Only the exported copy changes.
    """
    lines = manifest.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.strip().startswith("members") and "[" in line and "]" in line:
            inside = line[line.index("[") + 1:line.rindex("]")]
            names = [n.strip().strip('"') for n in inside.split(",") if n.strip()]
            kept = [n for n in names if (manifest.parent / n / "Cargo.toml").exists()]
            if kept != names:
                lines[i] = "members = [" + ", ".join(f'"{n}"' for n in kept) + "]\n"
                log(f"export: dropped workspace members without files: "
                    f"{', '.join(sorted(set(names) - set(kept)))}")
    manifest.write_text("".join(lines))


def check_deps() -> dict[str, str]:
    """Find nginx, fcgiwrap and git http-backend; explain how to get them if missing."""
    found = {name: shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
             for name in ("nginx", "fcgiwrap")}
    missing = [name for name, path in found.items() if not path]
    if missing:
        raise SystemExit(
            f"missing: {', '.join(missing)}. Install them (Debian/Ubuntu, as root) with\n"
            f"    apt-get install -y nginx fcgiwrap\n"
            f"or run bench/install-deps.sh. Nothing is installed automatically.")
    exec_path = git("--exec-path")
    backend = Path(exec_path) / "git-http-backend"
    if not backend.exists():
        raise SystemExit(f"git http-backend not found at {backend}")
    found["http-backend"] = str(backend)
    if not GNU_TIME.exists():
        log("note: /usr/bin/time (GNU time) is missing, so peak RSS figures include this "
            "script's own size; install it with: apt-get install -y time")
    return found


# --------------------------------------------------------------------------
# Web server


class WebServer:
    """nginx + fcgiwrap serving `git http-backend` on 127.0.0.1 with Basic auth.

    The project root holds `src` (a symlink to the repository cache, read
    only) and `dst` (destinations, rewritten for every run). Every request is
    logged with its request and response sizes so each run's traffic can be
    read back from the access log.
    """

    def __init__(self, tools: dict[str, str], workdir: Path, trace_dir: Path | None = None):
        self.tools = tools
        self.trace_dir = trace_dir
        self.dir = workdir / "server"
        self.root = workdir / "srv"
        self.port = 0
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        """Write the configuration and start fcgiwrap, then nginx."""
        for sub in ("", "tmp", "home"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "dst").mkdir(exist_ok=True)
        (self.root / "api").mkdir(exist_ok=True)
        link = self.root / "src"
        if not link.exists():
            link.symlink_to(CACHE_DIR)
        # http-backend runs as root on root-owned repositories; make sure no
        # ownership check can refuse them, and keep the server's git config
        # independent of the user's.
        (self.dir / "home" / ".gitconfig").write_text(
            "[safe]\n\tdirectory = *\n")
        # nginx reads `{PLAIN}` entries in htpasswd files literally.
        (self.dir / "htpasswd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        self.port = free_port()
        sock = self.dir / "fcgiwrap.sock"
        if sock.exists():
            sock.unlink()
        (self.dir / "nginx.conf").write_text(self._nginx_conf(sock, self._cgi_script()))
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
               "HOME": str(self.dir / "home")}
        # One fcgiwrap child serves one request at a time: enough for --jobs 8
        # sweeps (two requests per repository in flight at most).
        self.procs.append(subprocess.Popen(
            [self.tools["fcgiwrap"], "-c", "20", "-s", f"unix:{sock}"],
            env=env, stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "fcgiwrap.log", "wb"), start_new_session=True))
        self.procs.append(subprocess.Popen(
            [self.tools["nginx"], "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir),
             "-e", str(self.dir / "error.log")],
            env=env, stdout=subprocess.DEVNULL, stderr=open(self.dir / "nginx.out", "wb"),
            start_new_session=True))
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                if sock.exists():
                    return
            except OSError:
                pass
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.05)
        raise SystemExit(f"web server did not start; see {self.dir}/error.log and nginx.out")

    def _cgi_script(self) -> str:
        """The CGI program fcgiwrap runs: http-backend, under GNU time if present.

        fcgiwrap lets the kernel reap its CGI processes, so their CPU time is
        lost to /proc accounting; GNU time waits for http-backend (which waits
        for its git children) and appends `user sys maxrss` to a log instead.
        """
        if not GNU_TIME.exists():
            return self.tools["http-backend"]
        script = self.dir / "http-backend.sh"
        script.write_text(
            "#!/bin/sh\n"
            f"exec {GNU_TIME} -q -a -o {self.dir}/cgi-usage.log -f '%U %S %M' "
            f"{self.tools['http-backend']}\n")
        script.chmod(0o755)
        return str(script)

    def _nginx_conf(self, sock: Path, cgi: str) -> str:
        """The generated nginx.conf: one server, git under auth, a static fake API."""
        tmp = self.dir / "tmp"
        return f"""
user root;
daemon off;
master_process on;
worker_processes 2;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format bench '$msec $request_method $uri $status $request_length $bytes_sent $request_time';
    access_log {self.dir}/access.log bench;
    client_body_temp_path {tmp}/body;
    fastcgi_temp_path {tmp}/fastcgi;
    proxy_temp_path {tmp}/proxy;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/json;
    map $arg_page $api_page {{ "" 1; default $arg_page; }}
    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;
        client_max_body_size 0;
        keepalive_timeout 60s;
        # Fake forge API for the organization sweep: static JSON, no auth.
        location /api/ {{
            root {self.root};
            try_files $uri.page$api_page.json /api/empty.json;
        }}
        location / {{
            auth_basic "git";
            auth_basic_user_file {self.dir}/htpasswd;
            fastcgi_pass unix:{sock};
            # Stream bodies both ways, as hosted git servers do.
            fastcgi_request_buffering off;
            fastcgi_buffering off;
            fastcgi_read_timeout 900s;
            fastcgi_send_timeout 900s;
            fastcgi_param SCRIPT_FILENAME {cgi};
            fastcgi_param GIT_PROJECT_ROOT {self.root};
            fastcgi_param GIT_HTTP_EXPORT_ALL 1;
            fastcgi_param PATH_INFO $uri;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param REMOTE_USER $remote_user;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            # Without this http-backend only ever speaks protocol v0.
            fastcgi_param GIT_PROTOCOL $http_git_protocol;
            fastcgi_param HOME {self.dir}/home;
            fastcgi_param GIT_CONFIG_NOSYSTEM 1;
            fastcgi_param PATH /usr/local/bin:/usr/bin:/bin;{self._trace_param()}
        }}
    }}
}}
"""

    def _trace_param(self) -> str:
        """With --server-trace, git on the server writes trace2 perf logs."""
        if not self.trace_dir:
            return ""
        self.trace_dir.mkdir(parents=True, exist_ok=True)
        return f"\n            fastcgi_param GIT_TRACE2_PERF {self.trace_dir};"

    def stop(self) -> None:
        """Stop nginx and fcgiwrap with all their workers.

        Each was started as the leader of a process group of its own, so the
        group holds exactly what was started here (fcgiwrap's pre-forked
        workers outlive their parent if only the parent is signalled).
        """
        for proc in reversed(self.procs):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    continue
                if group_gone(proc.pid, timeout=5):
                    break
        self.procs.clear()

    def url(self, path: str, credentials: bool = False) -> str:
        """The http:// URL of a path under the project root."""
        auth = f"{USER}:{PASSWORD}@" if credentials else ""
        return f"http://{auth}127.0.0.1:{self.port}/{path.lstrip('/')}"

    def log_offset(self) -> int:
        """Current end of the access log, to read one run's requests later."""
        path = self.dir / "access.log"
        return path.stat().st_size if path.exists() else 0

    def usage_offset(self) -> int:
        """Current end of the CGI usage log (see _cgi_script)."""
        path = self.dir / "cgi-usage.log"
        return path.stat().st_size if path.exists() else 0

    def usage_since(self, offset: int) -> tuple[float, int] | None:
        """Server CPU seconds and the largest server process (KiB) since offset.

        Covers every http-backend with its git children (upload-pack,
        pack-objects, receive-pack, index-pack, rev-list), not nginx itself.
        None when GNU time is missing and nothing was recorded.
        """
        path = self.dir / "cgi-usage.log"
        if not path.exists():
            return None
        with open(path, "rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
        cpu, rss = 0.0, 0
        for line in lines:
            parts = line.split()
            if len(parts) == 3:
                cpu += float(parts[0]) + float(parts[1])
                rss = max(rss, int(parts[2]))
        return cpu, rss

    def traffic_since(self, offset: int) -> tuple[int, int, int, list[str]]:
        """Requests logged since offset: (requests, bytes to client, bytes from client, bad lines)."""
        time.sleep(0.1)  # nginx logs a request just after its last byte went out
        with open(self.dir / "access.log", "rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
        received = sent = 0
        errors = []
        for line in lines:
            parts = line.split()
            if len(parts) < 7:
                continue
            _, method, uri, status, req_len, bytes_sent, _ = parts[:7]
            sent += int(req_len)
            received += int(bytes_sent)
            if not status.startswith("2"):
                errors.append(f"{method} {uri} {status}")
        return len(lines), received, sent, errors


def group_gone(pgid: int, timeout: float) -> bool:
    """Wait until no process of a process group is left."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Repository generation

AUTHOR = b"Bench Author <author@bench.example>"
COMMITTER = b"Bench Committer <committer@bench.example>"
EPOCH = 1_600_000_000


class Stream:
    """Writes a `git fast-import` stream of seeded content to a pipe."""

    def __init__(self, out, rng: random.Random):
        self.out = out
        self.rng = rng
        self.clock = EPOCH
        self.mark = 0
        self.words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                              for _ in range(rng.randint(3, 10))) for _ in range(3000)]

    def line(self) -> str:
        """A line of plausible source text."""
        w = self.rng.choices(self.words, k=self.rng.randint(2, 7))
        indent = "    " * self.rng.randint(0, 3)
        return f"{indent}{w[0]} = {'.'.join(w[1:3])}({', '.join(w[3:])});"

    def data(self, payload: bytes) -> None:
        """A `data` command with an exact byte count."""
        self.out.write(b"data %d\n" % len(payload))
        self.out.write(payload)
        self.out.write(b"\n")

    def commit(self, ref: str, message: str, changes: list[tuple[str, bytes]],
               parent: str | None = None) -> int:
        """One commit on ref; returns its mark. parent is a mark or ref spec."""
        self.mark += 1
        self.clock += 97
        when = b"%d +0000" % self.clock
        self.out.write(b"commit %s\nmark :%d\n" % (ref.encode(), self.mark))
        self.out.write(b"author %s %s\ncommitter %s %s\n" % (AUTHOR, when, COMMITTER, when))
        self.data(message.encode())
        if parent:
            self.out.write(b"from %s\n" % parent.encode())
        for path, content in changes:
            self.out.write(b"M 100644 inline %s\n" % path.encode())
            self.data(content)
        self.out.write(b"\n")
        return self.mark

    def tag(self, name: str, target_mark: int, annotated: bool) -> None:
        """An annotated tag object or a lightweight tag ref."""
        if annotated:
            self.clock += 1
            self.out.write(b"tag %s\nfrom :%d\n" % (name.encode(), target_mark))
            self.out.write(b"tagger %s %d +0000\n" % (COMMITTER, self.clock))
            self.data(f"Release {name}\n".encode())
        else:
            self.out.write(b"reset refs/tags/%s\nfrom :%d\n\n" % (name.encode(), target_mark))


def write_history(stream: Stream, spec: RepoSpec) -> None:
    """The whole history of a spec: main, side branches, tags, binaries."""
    rng = stream.rng
    paths = [f"src/mod{i % 40:02d}/file{i:05d}.txt" for i in range(spec.files)]
    texts = {p: [stream.line() for _ in range(rng.randint(10, 40))] for p in paths}
    side = [rng.randint(1, 5) for _ in range(spec.branches)]
    main_commits = max(spec.commits - sum(side), 2)
    binary_at = {max(1, (i + 1) * main_commits // (spec.binaries + 1)): i
                 for i in range(spec.binaries)}
    main_marks = []
    first = [(p, ("\n".join(t) + "\n").encode()) for p, t in texts.items()]
    main_marks.append(stream.commit("refs/heads/main", "Initial import\n", first))
    for n in range(1, main_commits):
        changes = []
        for path in rng.sample(paths, k=min(len(paths), rng.randint(1, 3))):
            text = texts[path]
            for _ in range(rng.randint(1, 3)):
                text[rng.randrange(len(text))] = stream.line()
            if rng.random() < 0.3:
                text.insert(rng.randrange(len(text) + 1), stream.line())
            changes.append((path, ("\n".join(text) + "\n").encode()))
        if n in binary_at:
            i = binary_at[n]
            changes.append((f"assets/blob{i:02d}.bin", rng.randbytes(spec.binary_kib * 1024)))
        message = f"Change {n}: {' '.join(rng.choices(stream.words, k=6))}\n"
        main_marks.append(stream.commit("refs/heads/main", message, changes))
    for b, length in enumerate(side):
        ref = f"refs/heads/topic/{b:04d}"
        fork = main_marks[rng.randrange(len(main_marks))]
        note = [stream.line() for _ in range(5)]
        for c in range(length):
            note.append(stream.line())
            stream.commit(ref, f"Topic {b} step {c}\n",
                          [(f"notes/topic{b:04d}.txt", ("\n".join(note) + "\n").encode())],
                          parent=f":{fork}" if c == 0 else None)
    for t in range(spec.tags):
        target = main_marks[(t + 1) * (len(main_marks) - 1) // max(spec.tags, 1)]
        stream.tag(f"v{t // 10}.{t % 10}.0" if t % 2 == 0 else f"build-{t:04d}",
                   target, annotated=t % 2 == 0)


def fast_import(repo: Path, writer, force: bool = False) -> None:
    """Feed a stream produced by writer(stream) into git fast-import in repo."""
    cmd = ["git", "fast-import", "--quiet"] + (["--force"] if force else [])
    proc = subprocess.Popen(cmd, cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    writer(proc.stdin)
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit(f"git fast-import failed in {repo}")


def init_bare(path: Path) -> None:
    """An empty bare repository with settings that keep timings steady."""
    git("init", "-q", "--bare", "-b", "main", str(path))
    # No background or automatic repacking in the middle of a measurement.
    for key, value in (("gc.auto", "0"), ("receive.autogc", "false"),
                       ("maintenance.auto", "false")):
        git("-C", str(path), "config", key, value)


def prepare_repos(spec: RepoSpec) -> dict:
    """Generate (or reuse from cache) the repositories of one size.

    s0.git is the base source; s1.git has one more commit on main; s2.git has
    topic/0000 rewritten (reset two commits back, three new ones); d0.git is a
    mirror of s0.git, the starting destination of every scenario but `first`.
    """
    base = CACHE_DIR / spec.key()
    meta_file = base / "meta.json"
    if meta_file.exists():
        return json.loads(meta_file.read_text())
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    started = time.time()
    log(f"generating {spec.name} repository ({spec.commits} commits) in {base}")
    s0 = base / "s0.git"
    init_bare(s0)
    fast_import(s0, lambda out: write_history(Stream(out, random.Random(spec.seed)), spec))
    log(f"  imported in {time.time() - started:.0f} s; repacking")
    # One fully deltified pack with a bitmap, like a maintained server
    # repository (fast-import's own pack stores most blobs whole).
    git("-C", str(s0), "repack", "-a", "-d", "-f", "-b", "-q")
    git("-C", str(s0), "pack-refs", "--all")

    d0 = base / "d0.git"
    init_bare(d0)
    git("-C", str(d0), "fetch", "-q", "--no-write-fetch-head", str(s0), "+refs/*:refs/*")
    git("-C", str(d0), "repack", "-a", "-d", "-q")
    git("-C", str(d0), "pack-refs", "--all")

    s1 = base / "s1.git"
    copy_repo(s0, s1)

    def one_commit(out):
        stream = Stream(out, random.Random(spec.seed + 1))
        stream.clock = EPOCH + 10**8
        stream.commit("refs/heads/main", "One new commit\n",
                      [("NEWS.txt", b"one new line\n")], parent="refs/heads/main^0")
    fast_import(s1, one_commit)

    s2 = base / "s2.git"
    copy_repo(s0, s2)
    victim = "refs/heads/topic/0000"
    depth = int(git("-C", str(s2), "rev-list", "--count", victim + "~0", "^refs/heads/main"))
    back = git("-C", str(s2), "rev-parse", f"{victim}~{min(depth, 2)}")

    def rewrite(out):
        stream = Stream(out, random.Random(spec.seed + 2))
        stream.clock = EPOCH + 2 * 10**8
        for c in range(3):
            stream.commit(victim, f"Rewritten step {c}\n",
                          [("notes/rewritten.txt", f"{stream.line()}\n".encode())],
                          parent=back if c == 0 else None)
    fast_import(s2, rewrite, force=True)

    pack = sum(p.stat().st_size for p in (s0 / "objects" / "pack").glob("*.pack"))
    meta = {
        "spec": asdict(spec),
        "key": spec.key(),
        "commits": int(git("-C", str(s0), "rev-list", "--count", "--all")),
        "refs": len(git("-C", str(s0), "for-each-ref", "--format=%(refname)").splitlines()),
        "pack_bytes": pack,
        "generated_in_s": round(time.time() - started, 1),
    }
    meta_file.write_text(json.dumps(meta, indent=1))
    log(f"  {spec.name}: {meta['commits']} commits, {meta['refs']} refs, "
        f"pack {human_bytes(pack)}, {meta['generated_in_s']} s")
    return meta


# --------------------------------------------------------------------------
# Measuring


@dataclass
class Sample:
    """One measured run of one tool in one scenario."""

    wall: float = 0.0
    cpu: float = 0.0
    rss_kib: int = 0
    received: int = 0
    sent: int = 0
    requests: int = 0
    server_cpu: float = 0.0  # every http-backend of the run and its git children
    server_rss_kib: int = 0  # the largest of those processes
    ok: bool = True
    note: str = ""


def measured_commands(cmds: list[list[str]], env: dict, logdir: Path) -> Sample:
    """Run commands one after another, measuring time, CPU and peak RSS.

    The rusage of a finished process (wait4) covers it and every descendant
    it waited for, so a git command's helpers (remote-http, index-pack,
    pack-objects) are included; ru_maxrss is the largest single process.

    A process forked from this Python interpreter starts with the
    interpreter's own high-water mark (Linux keeps ru_maxrss across exec), so
    the command runs under GNU time, a small process whose child's rusage it
    reports (`%M %U %S`). Without /usr/bin/time, os.wait4 is used directly
    and peak RSS cannot read below this script's own size.
    """
    sample = Sample()
    for i, cmd in enumerate(cmds):
        out = open(logdir / f"cmd{i}.out", "wb")
        err = open(logdir / f"cmd{i}.err", "wb")
        usage_file = logdir / f"cmd{i}.rusage"
        wrapped = cmd
        if GNU_TIME.exists():
            wrapped = [str(GNU_TIME), "-q", "-f", "%M %U %S", "-o", str(usage_file), *cmd]
        started = time.perf_counter()
        proc = subprocess.Popen(wrapped, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        sample.wall += time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.close()
        err.close()
        cpu, rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss
        if GNU_TIME.exists():
            fields = usage_file.read_text().split()[-3:]
            rss, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
        sample.cpu += cpu
        sample.rss_kib = max(sample.rss_kib, rss)
        if proc.returncode != 0:
            sample.ok = False
            tail = (logdir / f"cmd{i}.err").read_text(errors="replace").strip()[-300:]
            sample.note = f"`{Path(cmd[0]).name} {cmd[1]}` exited {proc.returncode}: {tail}"
            break
    return sample


class Bench:
    """Runs the scenarios for one repository size against one web server."""

    def __init__(self, server: WebServer, binary: Path, workdir: Path, reps: int):
        self.server = server
        self.binary = binary
        self.workdir = workdir
        self.reps = reps
        home = workdir / "client-home"
        home.mkdir(exist_ok=True)
        (home / ".gitconfig").write_text("[safe]\n\tdirectory = *\n")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_RELAY_SOURCE_USERNAME": USER,
            "GIT_RELAY_SOURCE_TOKEN": PASSWORD,
            "GIT_RELAY_DEST_USERNAME": USER,
            "GIT_RELAY_DEST_TOKEN": PASSWORD,
            "LC_ALL": "C",
        }

    def reset_destination(self, meta: dict, scenario: str) -> Path:
        """A fresh destination for one run: empty, or a copy of the base mirror."""
        dst = self.server.root / "dst" / f"{meta['key']}.git"
        if dst.exists():
            shutil.rmtree(dst)
        if scenario == "first":
            init_bare(dst)
        else:
            copy_repo(CACHE_DIR / meta["key"] / "d0.git", dst)
        return dst

    def commands(self, tool: str, src_path: str, dst_path: str, clone_dir: Path) -> list[list[str]]:
        """The command lines of one job for one tool."""
        if tool == "git-relay":
            return [[str(self.binary), "mirror", self.server.url(src_path),
                     self.server.url(dst_path), "--json"]]
        return [
            ["git", "clone", "--quiet", "--mirror", self.server.url(src_path, True), str(clone_dir)],
            ["git", "-C", str(clone_dir), "push", "--quiet", "--mirror",
             self.server.url(dst_path, True)],
        ]

    def run_one(self, meta: dict, scenario: str, tool: str, rep: int) -> Sample:
        """Prepare the destination, run one job, read its traffic, verify the result."""
        source = {"first": "s0", "commit": "s1", "rewrite": "s2", "noop": "s0"}[scenario]
        src_path = f"src/{meta['key']}/{source}.git"
        dst = self.reset_destination(meta, scenario)
        dst_path = f"dst/{dst.name}"
        clone_dir = self.workdir / "clone.git"
        if clone_dir.exists():
            shutil.rmtree(clone_dir)
        logdir = self.workdir / "logs" / f"{meta['spec']['name']}-{scenario}-{tool}-{rep}"
        logdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["sync"])  # start every run with no dirty pages queued
        offset = self.server.log_offset()
        usage_offset = self.server.usage_offset()
        sample = measured_commands(self.commands(tool, src_path, dst_path, clone_dir),
                                   self.env, logdir)
        sample.requests, sample.received, sample.sent, bad = self.server.traffic_since(offset)
        usage = self.server.usage_since(usage_offset)
        if usage:
            sample.server_cpu, sample.server_rss_kib = usage
        if tool == "git-relay" and sample.ok:
            try:
                report = json.loads((logdir / "cmd0.out").read_text())
                sample.note = f"pack_bytes={report.get('pack_bytes')}"
            except (ValueError, OSError):
                pass
        if sample.ok and not same_refs(CACHE_DIR / meta["key"] / f"{source}.git", dst):
            sample.ok = False
            sample.note = "destination refs differ from the source after the run"
        if bad and not sample.ok:
            sample.note += f" (HTTP: {', '.join(bad[:3])})"
        if clone_dir.exists():
            shutil.rmtree(clone_dir)
        return sample

    def run_size(self, meta: dict, scenarios: list[str]) -> dict:
        """All scenarios x tools x repetitions for one size; tools alternate."""
        results: dict = {}
        for scenario in scenarios:
            for rep in range(self.reps):
                order = TOOLS if rep % 2 == 0 else tuple(reversed(TOOLS))
                for tool in order:
                    sample = self.run_one(meta, scenario, tool, rep)
                    results.setdefault(scenario, {}).setdefault(tool, []).append(sample)
                    status = "ok" if sample.ok else f"FAILED {sample.note}"
                    log(f"  {meta['spec']['name']:6} {scenario:7} {tool:9} rep {rep + 1}: "
                        f"{human_seconds(sample.wall)}, cpu {human_seconds(sample.cpu)}, "
                        f"rss {human_bytes(sample.rss_kib * 1024)}, "
                        f"server cpu {human_seconds(sample.server_cpu)}, "
                        f"recv {human_bytes(sample.received)}, sent {human_bytes(sample.sent)} "
                        f"{status}")
        return results


def same_refs(a: Path, b: Path) -> bool:
    """Whether two repositories have exactly the same refs and values."""
    def refs(path: Path) -> str:
        return git("-C", str(path), "for-each-ref", "--format=%(objectname) %(refname)")
    return refs(a) == refs(b)


# --------------------------------------------------------------------------
# Organization sweep


def mirror_all_available(binary: Path) -> bool:
    """Whether this git-relay has the `mirror-all` command."""
    done = subprocess.run([str(binary), "mirror-all", "--help"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return done.returncode == 0


def prepare_org(server: WebServer, count: int) -> dict:
    """count small repositories in two states, served behind a fake Gitea API.

    Base sources live in the cache (org-<key>/base/rNNN.git, and changed/ with
    one more commit each); org `bench-base` and `bench-changed` list them at
    /api/v1/orgs/<org>/repos (all on page 1; later pages are empty lists).
    """
    base = CACHE_DIR / f"{ORG_SPEC.key()}-x{count}"
    if not (base / "ready").exists():
        if base.exists():
            shutil.rmtree(base)
        log(f"generating {count} small repositories for the organization sweep")
        for i in range(count):
            spec = RepoSpec(f"r{i:03d}", **{k: v for k, v in asdict(ORG_SPEC).items()
                                            if k not in ("name", "seed")}, seed=1000 + i)
            repo = base / "base" / f"r{i:03d}.git"
            init_bare(repo)
            fast_import(repo, lambda out, s=spec: write_history(Stream(out, random.Random(s.seed)), s))
            changed = base / "changed" / f"r{i:03d}.git"
            copy_repo(repo, changed)

            def one(out, seed=i):
                stream = Stream(out, random.Random(seed))
                stream.clock = EPOCH + 10**8
                stream.commit("refs/heads/main", "One change\n", [("NEWS.txt", b"news\n")],
                              parent="refs/heads/main^0")
            fast_import(changed, one)
            mirror = base / "mirror" / f"r{i:03d}.git"
            init_bare(mirror)
            git("-C", str(mirror), "fetch", "-q", "--no-write-fetch-head", str(repo),
                "+refs/*:refs/*")
        (base / "ready").write_text("ok\n")
    for org, state in (("bench-base", "base"), ("bench-changed", "changed")):
        repos = [{
            "id": i + 1, "name": f"r{i:03d}", "full_name": f"{org}/r{i:03d}",
            "owner": {"login": org, "username": org},
            "clone_url": server.url(f"src/{base.name}/{state}/r{i:03d}.git"),
            "html_url": server.url(f"{org}/r{i:03d}"), "empty": False,
            "archived": False, "mirror": False, "default_branch": "main",
        } for i in range(count)]
        page = server.root / "api" / "v1" / "orgs" / org / "repos.page1.json"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(json.dumps(repos))
    (server.root / "api" / "empty.json").write_text("[]")
    return {"base": base, "count": count}


def run_org_sweep(server: WebServer, binary: Path, bench: Bench, count: int,
                  jobs_list: list[int]) -> tuple[list[dict], str]:
    """No-op and one-change sweeps with each --jobs value; returns rows and a note."""
    if not mirror_all_available(binary):
        note = ("organization sweep skipped: `git-relay mirror-all --help` failed "
                "(the command does not exist in this build yet)")
        log(note)
        return [], note
    org = prepare_org(server, count)
    rows = []
    dst_root = server.root / "dst" / "org"
    template = server.url("dst/org/{repo}.git")
    for jobs in jobs_list:
        for kind, org_name in (("no-op", "bench-base"), ("one change each", "bench-changed")):
            if dst_root.exists():
                shutil.rmtree(dst_root)
            shutil.copytree(org["base"] / "mirror", dst_root, symlinks=True)
            logdir = bench.workdir / "logs" / f"org-{kind.replace(' ', '_')}-j{jobs}"
            logdir.mkdir(parents=True, exist_ok=True)
            # A self-hosted Gitea organization: the scope URL is <base>/<org>.
            cmd = [str(binary), "mirror-all", server.url(org_name), template,
                   "--source-kind", "gitea", "--jobs", str(jobs)]
            offset = server.log_offset()
            sample = measured_commands([cmd], bench.env, logdir)
            sample.requests, sample.received, sample.sent, _ = server.traffic_since(offset)
            state = "base" if org_name == "bench-base" else "changed"
            wrong = [r.name for r in sorted((org["base"] / state).iterdir())
                     if not same_refs(r, dst_root / r.name)]
            if wrong and sample.ok:
                sample.ok = False
                sample.note = f"{len(wrong)} destinations differ from their source, e.g. {wrong[0]}"
            rows.append({"jobs": jobs, "kind": kind, "sample": sample})
            log(f"  org {kind:16} --jobs {jobs}: {human_seconds(sample.wall)} "
                f"{'ok' if sample.ok else 'FAILED ' + sample.note}")
    return rows, (f"{count} repositories (30 commits, 4 refs each), listed by a fake Gitea "
                  "API on the same nginx; one run per setting. `no-op`: every destination "
                  "already matches; `one change each`: every source has one new commit.")


# --------------------------------------------------------------------------
# Reporting


def machine_info(binary: Path, rev: str | None, binary_given: bool = False) -> dict:
    """CPU, cores, memory, versions: what a reader needs to compare results."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = human_bytes(int(line.split()[1]) * 1024)
    except OSError:
        pass
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", rev or "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = "" if rev else subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src", "Cargo.toml"],
        capture_output=True, text=True).stdout.strip()
    nginx = subprocess.run([shutil.which("nginx") or "/usr/sbin/nginx", "-v"],
                           capture_output=True, text=True).stderr.strip()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory": mem,
        "kernel": platform.release(),
        "git": git("--version"), "nginx": nginx.replace("nginx version: ", ""),
        "git-relay": (f"{version}, prebuilt binary {binary} (sources unknown; the "
                      f"repository's HEAD is {commit})" if binary_given else
                      f"{version} (commit {commit}"
                      f"{', working tree with uncommitted src/ changes' if dirty else ''})"),
        "python": platform.python_version(),
    }


def loadavg() -> str:
    """The 1/5/15 minute load averages."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def spread(values: list[float], fmt) -> str:
    """Median, with min-max when there is more than one value."""
    med = statistics.median(values)
    if len(values) == 1 or fmt(min(values)) == fmt(max(values)):
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(values))}–{fmt(max(values))})"


def size_table(meta: dict, results: dict) -> list[str]:
    """Markdown table of one size: a row per scenario and tool."""
    lines = ["| scenario | tool | wall | CPU (user+sys) | peak RSS | received | sent "
             "| server CPU | server peak RSS | speed-up |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for scenario, by_tool in results.items():
        medians = {t: statistics.median(s.wall for s in v) for t, v in by_tool.items()}
        for tool in TOOLS:
            samples = by_tool.get(tool, [])
            if not samples:
                continue
            failed = [s for s in samples if not s.ok]
            speed = ""
            if tool == "git-relay" and "git" in medians and medians["git-relay"] > 0:
                speed = f"{medians['git'] / medians['git-relay']:.1f}x"
            lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                SCENARIO_TITLES[scenario], tool,
                spread([s.wall for s in samples], human_seconds)
                + (f" **{len(failed)} failed**" if failed else ""),
                spread([s.cpu for s in samples], human_seconds),
                spread([s.rss_kib * 1024 for s in samples], human_bytes),
                spread([s.received for s in samples], human_bytes),
                spread([s.sent for s in samples], human_bytes),
                spread([s.server_cpu for s in samples], human_seconds),
                spread([s.server_rss_kib * 1024 for s in samples], human_bytes),
                speed))
    return lines


def render(args, info: dict, load_before: str, load_after: str, started: dt.datetime,
           finished: dt.datetime, metas: dict, all_results: dict,
           org_rows: list[dict], org_note: str) -> str:
    """The whole markdown report."""
    out = [f"# git-relay benchmark, {started:%Y-%m-%d}", ""]
    out += [f"- started {started:%Y-%m-%d %H:%M:%S} UTC, finished {finished:%H:%M:%S} UTC",
            f"- command: `{' '.join(['python3', 'bench/run.py', *sys.argv[1:]])}`",
            f"- machine: {info['cpu']}, {info['cores']} cores, {info['memory']} RAM, "
            f"Linux {info['kernel']}",
            f"- {info['git']}, nginx {info['nginx']}, git-relay {info['git-relay']}",
            f"- load average (1/5/15 min) before: {load_before}; after: {load_after}. "
            "Other work on the machine (for example concurrent compilations) disturbs "
            "timings; compare the two tools within this run, not across runs.",
            f"- repetitions: {args.reps}; figures are median (min–max)",
            "- servers: nginx + fcgiwrap + `git http-backend` on 127.0.0.1, Basic auth, "
            "protocol v2 passed through; source and destination on the same server",
            ""]
    out += ["Method: wall time of the whole job; CPU is user+sys of the job's process "
            "trees and peak RSS the largest single process (`ru_maxrss`), both from "
            "the rusage of each finished command as GNU time reports it, for git over "
            "clone, push and their helpers; "
            "received/sent are the client's bytes from nginx's access log "
            "(`$bytes_sent`, `$request_length`, headers included). Server CPU and server "
            "peak RSS cover both servers' http-backend processes and their git children "
            "(upload-pack, pack-objects, receive-pack, index-pack, rev-list), measured "
            "by running http-backend under GNU time; they are not in the client "
            "columns. `git` is `git clone --mirror` + `git push --mirror`, run from "
            "scratch each time as on a fresh CI agent. See bench/README.md.", ""]
    for name, results in all_results.items():
        meta = metas[name]
        spec = meta["spec"]
        out += [f"## {name}: {meta['commits']} commits, {meta['refs']} refs, "
                f"pack {human_bytes(meta['pack_bytes'])}", "",
                f"Generated: {spec['commits']} commits requested, {spec['branches']} topic "
                f"branches, {spec['tags']} tags, {spec['files']} text files, "
                f"{spec['binaries']} binary files of {spec['binary_kib']} KiB.", ""]
        out += size_table(meta, results)
        notes = sorted({f"{sc}/{t}: {s.note}" for sc, bt in results.items()
                        for t, ss in bt.items() for s in ss if not s.ok})
        if notes:
            out += ["", "Failures:", *[f"- {n}" for n in notes]]
        out.append("")
    out += ["## Organization sweep", ""]
    if org_rows:
        out += [org_note, "", "| sweep | --jobs | wall | CPU | peak RSS | received | sent |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        for row in org_rows:
            s = row["sample"]
            out.append(f"| {row['kind']} | {row['jobs']} | {human_seconds(s.wall)}"
                       f"{'' if s.ok else ' **failed**'} | {human_seconds(s.cpu)} | "
                       f"{human_bytes(s.rss_kib * 1024)} | {human_bytes(s.received)} | "
                       f"{human_bytes(s.sent)} |")
    else:
        out.append(org_note)
    out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------


def unused_path(path: Path) -> Path:
    """path, or path with -2, -3... before the suffix if it exists already."""
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: the tiny repository, 1 repetition, 20-repository sweep")
    p.add_argument("--sizes", default=None,
                   help=f"comma-separated sizes from {', '.join(SIZES)}, or none "
                        "(default small,medium,large; tiny with --quick)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help="comma-separated scenarios (default all: first,commit,rewrite,noop)")
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 3; 1 with --quick)")
    p.add_argument("--binary", type=Path, help="use this git-relay binary instead of building")
    p.add_argument("--rev", help="build this commit (e.g. HEAD) instead of the working tree")
    p.add_argument("--target-dir", type=Path, default=DEFAULT_TARGET_DIR,
                   help=f"CARGO_TARGET_DIR for the build (default {DEFAULT_TARGET_DIR})")
    p.add_argument("--org-repos", type=int, default=None,
                   help="repositories in the organization sweep (default 200; 20 with --quick; 0 skips)")
    p.add_argument("--jobs", default="1,4,8", help="--jobs values for the sweep (default 1,4,8)")
    p.add_argument("--output", type=Path,
                   help="results file (default bench/results/DATE-HOST.md, with -2, -3... "
                        "if taken; with --quick, the same name in the temp directory)")
    p.add_argument("--server-trace", type=Path, metavar="DIR",
                   help="diagnostics: make git on the server write GIT_TRACE2_PERF logs "
                        "into DIR (slows the servers a little)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, config)")
    args = p.parse_args()
    args.sizes = (args.sizes or ("tiny" if args.quick else "small,medium,large")).split(",")
    if args.sizes == ["none"]:
        args.sizes = []
    for size in args.sizes:
        if size not in SIZES:
            p.error(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    args.scenarios = args.scenarios.split(",")
    for scenario in args.scenarios:
        if scenario not in SCENARIOS:
            p.error(f"unknown scenario {scenario!r}")
    args.reps = args.reps or (1 if args.quick else 3)
    if args.org_repos is None:
        args.org_repos = 20 if args.quick else 200
    args.jobs = [int(j) for j in args.jobs.split(",") if j]
    return args


def main() -> None:
    """Build, start the servers, generate repositories, measure, report."""
    args = parse_args()
    started = dt.datetime.now(dt.timezone.utc)
    tools = check_deps()
    binary = args.binary.resolve() if args.binary else build_binary(args.target_dir, args.rev)
    if not binary.exists():
        raise SystemExit(f"no git-relay binary at {binary}")
    info = machine_info(binary, args.rev if not args.binary else None, bool(args.binary))
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    metas = {size: prepare_repos(SIZES[size]) for size in args.sizes}
    workdir = Path(tempfile.mkdtemp(prefix="git-relay-bench-"))
    server = WebServer(tools, workdir, args.server_trace)
    load_before = loadavg()
    all_results: dict = {}
    org_rows: list[dict] = []
    org_note = "organization sweep not run (--org-repos 0)"
    try:
        server.start()
        log(f"nginx on 127.0.0.1:{server.port}, work directory {workdir}")
        bench = Bench(server, binary, workdir, args.reps)
        for size in args.sizes:
            all_results[size] = bench.run_size(metas[size], args.scenarios)
        if args.org_repos > 0:
            org_rows, org_note = run_org_sweep(server, binary, bench, args.org_repos, args.jobs)
    finally:
        server.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    finished = dt.datetime.now(dt.timezone.utc)
    report = render(args, info, load_before, loadavg(), started, finished, metas,
                    all_results, org_rows, org_note)
    host = socket.gethostname() or "machine"
    # Smoke runs print their tables but keep them out of bench/results/.
    results_dir = Path(tempfile.gettempdir()) if args.quick else RESULTS_DIR
    output = args.output or unused_path(results_dir / f"{started:%Y-%m-%d}-{host}.md")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report)
    print(report)
    log(f"results written to {output}")


if __name__ == "__main__":
    main()
