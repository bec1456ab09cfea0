#!/usr/bin/env python3
"""Benchmark `git-relay serve`: how long from a push's webhook to the
mirror being done, and how much memory the service holds at rest and
under a burst of webhooks.

What it does, on 127.0.0.1 (nginx + fcgiwrap + `git http-backend`, the
same server as bench/run.py, with Basic auth):

1. Five copies of a generated repository as sources, five mirrors of them
   as destinations, and `git-relay serve` with one `[[mirror]]` each,
   polling off, so that only webhooks move anything.
2. Latency: `--pushes` times, one commit is pushed to a source (rotating
   over the five) and a GitHub-signed push webhook is sent; the clock runs
   from sending the webhook until the destination's branch holds the
   commit (read from the destination's files every millisecond). The
   same change is then mirrored by `git clone --mirror` + `git push
   --mirror` a few times (`--git-reps`), what a pipeline triggered by the
   same webhook would run, agent start not counted.
3. Memory: the service's resident memory (VmRSS) after the startup check
   and a pause ("at rest"), then a burst: one commit pushed to each source
   and 200 webhooks for the five within one second, from 8 threads; the
   peak (VmHWM) over the whole run, the runs the burst cost (from
   /metrics) and the time until all five were in sync.

Usage:
    python3 bench/serve.py --binary target/release/git-relay
    python3 bench/serve.py --binary target/release/git-relay --size large --pushes 100

Results go to bench/results/<date>-serve.md (or --output) and stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

from relaybench.build import check_deps  # noqa: E402
from relaybench.common import (PASSWORD, RESULTS_DIR, USER, copy_repo, git,  # noqa: E402
                               human_bytes, human_seconds, log)
from relaybench.report import loadavg, machine_info  # noqa: E402
from relaybench.repos import SIZES, prepare_repos  # noqa: E402
from relaybench.server import WebServer, free_port  # noqa: E402
from relaybench.common import CACHE_DIR  # noqa: E402

MIRRORS = 5
SECRET = "bench-webhook-secret"
BURST = 200


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", type=Path, required=True, help="the git-relay binary to measure")
    p.add_argument("--size", default="large", choices=sorted(SIZES), help="repository size (bench/run.py's)")
    p.add_argument("--pushes", type=int, default=100, help="pushes measured one by one")
    p.add_argument("--git-reps", type=int, default=5, help="clone --mirror + push --mirror runs to compare")
    p.add_argument("--spacing", default="1s",
                   help="the service's `spacing` (least time between two runs of one mirror; 'off' for none)")
    p.add_argument("--output", type=Path, help="the results file")
    return p.parse_args()


class Service:
    """`git-relay serve` started on a config file, read through its endpoints."""

    def __init__(self, binary: Path, config: Path, log_path: Path):
        self.port = free_port()
        text = config.read_text().replace("@PORT@", str(self.port))
        config.write_text(text)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_RELAY_")}
        env["GIT_RELAY_SOURCE_TOKEN"] = PASSWORD
        env["GIT_RELAY_DEST_TOKEN"] = PASSWORD
        env["BENCH_WEBHOOK_SECRET"] = SECRET
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([str(binary), "--quiet", "serve", "--config", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"git-relay serve did not become ready; see {log_path}")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def hook(self, clone_url: str) -> int:
        """A GitHub push delivery for the repository at `clone_url`."""
        body = json.dumps({
            "ref": "refs/heads/main",
            "repository": {"full_name": clone_url.rsplit("/", 1)[-1], "clone_url": clone_url,
                           "html_url": clone_url},
        }).encode()
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/hooks/github", data=body, method="POST",
            headers={"Content-Type": "application/json", "X-GitHub-Event": "push",
                     "X-GitHub-Delivery": str(uuid.uuid4()),
                     "X-Hub-Signature-256": f"sha256={signature}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM, bytes."""
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
        return out

    def runs(self) -> int:
        total = 0
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith("git_relay_serve_runs_total{"):
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def branch(repo: Path, name: str = "refs/heads/main") -> str | None:
    """The commit a branch of a bare repository points at, from its files."""
    try:
        return (repo / name).read_text().strip()
    except OSError:
        pass
    try:
        for line in (repo / "packed-refs").read_text().splitlines():
            if line.endswith(" " + name):
                return line.split(" ", 1)[0]
    except OSError:
        pass
    return None


def commit_to(work: Path, source: Path, n: int) -> str:
    """One new commit on main, pushed straight into the source's files."""
    (work / "serve-bench.txt").write_text(f"push {n}\n")
    git("-C", str(work), "add", "serve-bench.txt")
    git("-C", str(work), "commit", "-q", "-m", f"serve bench {n}")
    git("-C", str(work), "push", "-q", str(source), "HEAD:refs/heads/main")
    return git("-C", str(work), "rev-parse", "HEAD")


def wait_for(repo: Path, commit: str, timeout: float = 120) -> float:
    started = time.perf_counter()
    while branch(repo) != commit:
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"{repo} never reached {commit}")
        time.sleep(0.001)
    return time.perf_counter()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main() -> None:
    args = parse_args()
    started = dt.datetime.now(dt.timezone.utc)
    tools = check_deps()
    binary = args.binary.resolve()
    info = machine_info(binary, None, True)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    meta = prepare_repos(SIZES[args.size])
    base = CACHE_DIR / meta["key"]
    workdir = Path(tempfile.mkdtemp(prefix="git-relay-serve-bench-"))
    server = WebServer(tools, workdir)
    load_before = loadavg()
    service = None
    try:
        server.start()
        srv = workdir / "srv" / "dst"
        sources, destinations, urls = [], [], []
        for i in range(MIRRORS):
            copy_repo(base / "s0.git", srv / f"s{i}.git")
            copy_repo(base / "d0.git", srv / f"d{i}.git")
            sources.append(srv / f"s{i}.git")
            destinations.append(srv / f"d{i}.git")
            urls.append(server.url(f"dst/s{i}.git"))
        # main may not exist in the generated history under that name:
        # the bench's repositories have it (repos.py writes refs/heads/main).
        work = workdir / "work"
        git("clone", "-q", "--single-branch", "--branch", "main", str(sources[0]), str(work))
        git("-C", str(work), "config", "user.name", "Bench")
        git("-C", str(work), "config", "user.email", "bench@example.com")
        config = workdir / "serve.toml"
        lines = ['listen = "127.0.0.1:@PORT@"', 'poll = "off"', "concurrency = 4",
                 f'spacing = "{args.spacing}"', "",
                 "[webhooks.github]", 'secret = { env = "BENCH_WEBHOOK_SECRET" }', ""]
        for i in range(MIRRORS):
            lines += ["[[mirror]]", f'name = "m{i}"', f'source = "{urls[i]}"',
                      f'destination = "{server.url(f"dst/d{i}.git")}"',
                      f'source-username = "{USER}"', f'dest-username = "{USER}"', ""]
        config.write_text("\n".join(lines))
        service = Service(binary, config, workdir / "serve.log")
        # Every mirror checked once at startup: wait for those runs.
        deadline = time.time() + 120
        while service.runs() < MIRRORS and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(2)
        at_rest = service.memory()
        log(f"at rest: {human_bytes(at_rest['VmRSS'])} resident")

        # Latency, one push at a time. Every source gets every commit in
        # turn (the work clone pushes to the one of this round), so each
        # push is one new commit on top of what that source had.
        latencies = []
        for n in range(args.pushes):
            i = n % MIRRORS
            git("-C", str(work), "fetch", "-q", str(sources[i]), "refs/heads/main")
            git("-C", str(work), "reset", "-q", "--hard", "FETCH_HEAD")
            commit = commit_to(work, sources[i], n)
            sent = time.perf_counter()
            status = service.hook(urls[i])
            if status != 202:
                raise SystemExit(f"webhook answered {status}")
            latencies.append(wait_for(destinations[i], commit) - sent)
            if (n + 1) % 20 == 0:
                log(f"{n + 1} pushes, median so far {human_seconds(statistics.median(latencies))}")

        # The same change by clone --mirror + push --mirror.
        git_times = []
        for r in range(args.git_reps):
            i = r % MIRRORS
            git("-C", str(work), "fetch", "-q", str(sources[i]), "refs/heads/main")
            git("-C", str(work), "reset", "-q", "--hard", "FETCH_HEAD")
            commit_to(work, sources[i], 10_000 + r)
            clone = workdir / f"clone-{r}.git"
            t0 = time.perf_counter()
            src_url = server.url(f"dst/s{i}.git", credentials=True)
            dst_url = server.url(f"dst/d{i}.git", credentials=True)
            subprocess.run(["git", "clone", "-q", "--mirror", src_url, str(clone)], check=True)
            subprocess.run(["git", "-C", str(clone), "push", "-q", "--mirror", dst_url], check=True)
            git_times.append(time.perf_counter() - t0)
            shutil.rmtree(clone)
        # Let the service catch up with those pushes' own (absent) webhooks:
        # nothing to do, no webhook was sent.

        # The burst: a commit on every source, then 200 webhooks in a second.
        runs_before = service.runs()
        heads = []
        for i in range(MIRRORS):
            git("-C", str(work), "fetch", "-q", str(sources[i]), "refs/heads/main")
            git("-C", str(work), "reset", "-q", "--hard", "FETCH_HEAD")
            heads.append(commit_to(work, sources[i], 20_000 + i))
        statuses: list[int] = []
        lock = threading.Lock()

        def sender(k: int) -> None:
            for j in range(k, BURST, 8):
                s = service.hook(urls[j % MIRRORS])
                with lock:
                    statuses.append(s)

        burst_start = time.perf_counter()
        threads = [threading.Thread(target=sender, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent_in = time.perf_counter() - burst_start
        done = max(wait_for(destinations[i], heads[i]) for i in range(MIRRORS))
        burst_synced = done - burst_start
        time.sleep(1)
        burst_runs = service.runs() - runs_before
        peak = service.memory()
        accepted = sum(1 for s in statuses if s == 202)
    finally:
        if service:
            service.stop()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    median, p95 = statistics.median(latencies), percentile(latencies, 0.95)
    git_median = statistics.median(git_times) if git_times else float("nan")
    out = [
        f"# git-relay serve benchmark, {started:%Y-%m-%d}",
        "",
        f"- started {started:%Y-%m-%d %H:%M:%S} UTC",
        f"- command: `python3 bench/serve.py {' '.join(sys.argv[1:])}`",
        f"- machine: {info['cpu']}, {info['cores']} cores, {info['memory']} RAM, Linux {info['kernel']}",
        f"- {info['git']}, nginx {info['nginx']}, git-relay {info['git-relay']}",
        f"- load average before: {load_before}; after: {loadavg()}",
        f"- repository: {args.size} ({meta['commits']} commits, {meta['refs']} refs, pack "
        f"{human_bytes(meta['pack_bytes'])}), {MIRRORS} mirrors of it, nginx + fcgiwrap + "
        "git http-backend on 127.0.0.1 with Basic auth; polling off; concurrency 4; "
        f"spacing {args.spacing}",
        "",
        "Latency: from sending a signed GitHub push webhook to the destination's",
        "`refs/heads/main` holding the pushed commit (read from its files every",
        "millisecond); one commit per push. `clone + push` is `git clone --mirror` +",
        "`git push --mirror` of the same kind of change, what a pipeline run per event",
        "would do (agent start not counted).",
        "",
        "| measure | git-relay serve | clone + push |",
        "| --- | --- | --- |",
        f"| event to mirrored, median of {len(latencies)} pushes | {human_seconds(median)} | "
        f"{human_seconds(git_median)} ({len(git_times)} runs) |",
        f"| event to mirrored, p95 | {human_seconds(p95)} | {human_seconds(max(git_times)) if git_times else ''} (max) |",
        f"| event to mirrored, min-max | {human_seconds(min(latencies))}-{human_seconds(max(latencies))} | |",
        "",
        "Memory of the service process (`/proc/PID/status`):",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| resident at rest (after the startup check of {MIRRORS} mirrors) | {human_bytes(at_rest['VmRSS'])} |",
        f"| peak resident over the whole run, burst included (VmHWM) | {human_bytes(peak['VmHWM'])} |",
        f"| resident after the burst | {human_bytes(peak['VmRSS'])} |",
        "",
        f"Burst: one commit pushed to each of the {MIRRORS} sources, then {BURST} webhooks",
        f"for them from 8 threads: sent in {human_seconds(sent_in)}, {accepted} accepted (202),",
        f"**{burst_runs} runs**, all {MIRRORS} destinations in sync {human_seconds(burst_synced)} after the first webhook.",
        "",
    ]
    report = "\n".join(out)
    output = args.output or RESULTS_DIR / f"{started:%Y-%m-%d}-serve-spacing-{args.spacing}.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report)
    print(report)
    log(f"results written to {output}")


if __name__ == "__main__":
    main()
