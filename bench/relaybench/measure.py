"""Running one job under measurement, and the scenarios of one size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .common import (CACHE_DIR, CAPPED_SCENARIOS, GNU_TIME, PASSWORD, SCENARIO_TOOLS, USER,
                     copy_repo, git, human_bytes, human_seconds, log)
from .repos import init_bare
from .server import WebServer


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
    exit_code: int = 0
    # A job that must fail (git into a capped destination): `ok` then means
    # it failed and left the destination as it was.
    expected_failure: bool = False
    # From git-relay's --json report: receive-pack requests with commands,
    # pack bytes relayed (refused pushes included), history in increments.
    pushes: int | None = None
    pack_bytes: int | None = None
    batched: bool | None = None
    increments: int = 0  # "pushed increment"/"pushed piece" lines on git-relay's stderr
    refused: int = 0  # pushes the server refused as too large (413, 408, 504)
    cut: int = 0  # pushes git-relay stopped sending at its budget
    wasted: int | None = None  # pack bytes relayed in pushes that did not land
    # Per kind of request (see request_kind): count, bytes up, bytes down,
    # seconds (overlapping: git-relay streams upload-pack into receive-pack).
    breakdown: dict = field(default_factory=dict)
    load: float | None = None  # 1-minute load average when the job started
    # Server CPU seconds and largest process (KiB) by request, e.g.
    # "POST git-receive-pack" (see WebServer.usage_by_service).
    server_by_service: dict = field(default_factory=dict)
    # Wall seconds of each command of the job, in order (git: clone, push...).
    steps: list = field(default_factory=list)


def measured_commands(cmds: list[list[str]], env: dict, logdir: Path,
                      cwd: Path | None = None) -> Sample:
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
        proc = subprocess.Popen(wrapped, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        sample.steps.append(time.perf_counter() - started)
        sample.wall += sample.steps[-1]
        proc.returncode = os.waitstatus_to_exitcode(status)
        sample.exit_code = proc.returncode
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
            tail = " / ".join(line.strip() for line in tail.splitlines() if line.strip())
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
        # A binary older than --dest-max-push-bytes runs `capped` without
        # it, like `capped-learnt`; the results say so.
        help_text = subprocess.run([str(binary), "mirror", "--help"], capture_output=True,
                                   text=True).stdout
        self.has_budget_flag = "--dest-max-push-bytes" in help_text
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
        if scenario == "first" or scenario in CAPPED_SCENARIOS:
            init_bare(dst)
        else:
            copy_repo(CACHE_DIR / meta["key"] / "d0.git", dst)
        return dst

    def budget(self) -> int | None:
        """What `capped` passes as --dest-max-push-bytes: just under the cap.

        The cap counts the whole request body, the budget only its pack;
        the commands before it are about 100 bytes a ref, so 256 KiB (1/32
        of small caps) leaves room for a couple of thousand of them.
        """
        cap = self.server.cap
        return cap - min(256 << 10, cap // 32) if cap else None

    def commands(self, tool: str, src_path: str, dst_path: str, clone_dir: Path,
                 scenario: str = "first") -> list[list[str]]:
        """The command lines of one job for one tool."""
        capped = scenario in CAPPED_SCENARIOS
        if tool == "git-relay":
            cmd = [str(self.binary), "mirror", self.server.url(src_path),
                   self.server.url(dst_path, capped=capped), "--json"]
            if scenario == "capped" and self.has_budget_flag:
                cmd += ["--dest-max-push-bytes", str(self.budget())]
            return [cmd]
        return [
            ["git", "clone", "--quiet", "--mirror", self.server.url(src_path, True), str(clone_dir)],
            ["git", "-C", str(clone_dir), "push", "--quiet", "--mirror",
             self.server.url(dst_path, True, capped=capped)],
        ]

    def run_one(self, meta: dict, scenario: str, tool: str, rep: int) -> Sample:
        """Prepare the destination, run one job, read its traffic, verify the result."""
        source = {"first": "s0", "commit": "s1", "rewrite": "s2", "noop": "s0",
                  "capped": "s0", "capped-learnt": "s0"}[scenario]
        src_path = f"src/{meta['key']}/{source}.git"
        dst = self.reset_destination(meta, scenario)
        dst_path = f"dst/{dst.name}"
        refs_before = list_refs(dst)
        clone_dir = self.workdir / "clone.git"
        if clone_dir.exists():
            shutil.rmtree(clone_dir)
        logdir = self.workdir / "logs" / f"{meta['spec']['name']}-{scenario}-{tool}-{rep}"
        logdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["sync"])  # start every run with no dirty pages queued
        offset = self.server.log_offset()
        usage_offset = self.server.usage_offset()
        try:
            sample_load = float(Path("/proc/loadavg").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            sample_load = None
        cmds = self.commands(tool, src_path, dst_path, clone_dir, scenario)
        (logdir / "commands").write_text("\n".join(" ".join(c) for c in cmds) + "\n")
        sample = measured_commands(cmds, self.env, logdir)
        sample.load = sample_load
        requests = self.server.requests_since(offset)
        sample.requests = len(requests)
        sample.received = sum(r.received for r in requests)
        sample.sent = sum(r.sent for r in requests)
        bad = [f"{r.method} {r.uri} {r.status}" for r in requests if not 200 <= r.status < 300
               and r.status != 401]
        for r in requests:
            kind = request_kind(r)
            entry = sample.breakdown.setdefault(kind, [0, 0, 0, 0.0])
            entry[0] += 1
            entry[1] += r.sent
            entry[2] += r.received
            entry[3] += r.seconds
            if kind == "push refused as too large":
                sample.refused += 1
            elif kind == "push cut by the client":
                sample.cut += 1
        usage = self.server.usage_by_service(usage_offset)
        if usage:
            sample.server_by_service = usage
            sample.server_cpu = sum(cpu for cpu, _ in usage.values())
            sample.server_rss_kib = max((rss for _, rss in usage.values()), default=0)
        if tool == "git-relay":
            read_relay_report(sample, logdir)
        if scenario in CAPPED_SCENARIOS and tool == "git":
            # git sends the whole pack in one request: the cap must refuse it,
            # and the destination must be left as it was.
            sample.expected_failure = True
            changed = list_refs(dst) != refs_before
            if sample.ok:
                sample.ok = False
                sample.note = "git succeeded: the cap did not refuse its push"
            elif changed:
                sample.note = f"failed but changed the destination's refs; {sample.note}"
            else:
                sample.ok = True
                sample.note = (f"exit {sample.exit_code}, destination unchanged; "
                               f"{sample.note.split(': ', 1)[-1]}")
        elif sample.ok:
            difference = ref_difference(CACHE_DIR / meta["key"] / f"{source}.git", dst)
            if difference:
                sample.ok = False
                sample.note = f"after the run, {difference}"
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
                tools = SCENARIO_TOOLS[scenario]
                order = tools if rep % 2 == 0 else tuple(reversed(tools))
                for tool in order:
                    sample = self.run_one(meta, scenario, tool, rep)
                    results.setdefault(scenario, {}).setdefault(tool, []).append(sample)
                    status = "ok" if sample.ok else f"FAILED {sample.note}"
                    if sample.expected_failure and sample.ok:
                        status = f"failed as expected ({sample.note[:120]})"
                    if sample.pushes is not None:
                        status += (f", {sample.pushes} pushes"
                                   f"{' (batched)' if sample.batched else ''}, "
                                   f"{sample.refused} refused, {sample.cut} cut, "
                                   f"pack {human_bytes(sample.pack_bytes or 0)}")
                    log(f"  {meta['spec']['name']:6} {scenario:13} {tool:9} rep {rep + 1}: "
                        f"{human_seconds(sample.wall)}, cpu {human_seconds(sample.cpu)}, "
                        f"rss {human_bytes(sample.rss_kib * 1024)}, "
                        f"server cpu {human_seconds(sample.server_cpu)}, "
                        f"recv {human_bytes(sample.received)}, sent {human_bytes(sample.sent)}, "
                        f"load {sample.load} "
                        f"{status}")
        return results


def list_refs(path: Path) -> dict[str, str]:
    """Every ref of a repository and its value."""
    out = git("-C", str(path), "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def ref_difference(source: Path, dst: Path) -> str:
    """How a destination's refs differ from the source's, or "" when they agree.

    Checkpoint refs a batched push left behind (`refs/git-relay/`) are named
    apart: the source has none, so any left is a leak of the run.
    """
    a, b = list_refs(source), list_refs(dst)
    checkpoints = [r for r in b if r.startswith("refs/git-relay/")]
    missing = [r for r in a if r not in b]
    wrong = [r for r in a if r in b and a[r] != b[r]]
    extra = [r for r in b if r not in a and r not in checkpoints]
    parts = []
    if checkpoints:
        parts.append(f"{len(checkpoints)} checkpoint refs (refs/git-relay/) left on the destination")
    for what, refs in (("missing", missing), ("with another value", wrong), ("extra", extra)):
        if refs:
            parts.append(f"{len(refs)} refs {what} (e.g. {refs[0]})")
    return "; ".join(parts)


def same_refs(a: Path, b: Path) -> bool:
    """Whether two repositories have exactly the same refs and values."""
    return not ref_difference(a, b)


def request_kind(r) -> str:
    """What a logged request was, for the breakdown of a run's time and bytes."""
    if r.status == 401:
        return "auth challenge"
    if r.uri.endswith("/info/refs"):
        return "ref listing"
    if r.uri.endswith("/git-upload-pack"):
        return "fetch"
    if r.uri.endswith("/git-receive-pack"):
        # git's first POST of a large push is a 4-byte probe (http.postBuffer).
        if 200 <= r.status < 300:
            return "push"
        if r.status in (408, 413, 504):
            return "push refused as too large"
        if r.status in (400, 499):
            # nginx's word for a body that ended before its last chunk: the
            # client stopped sending, as git-relay does at its budget.
            return "push cut by the client"
        return f"push failed ({r.status})"
    return "other"


def read_relay_report(sample: Sample, logdir: Path) -> None:
    """Pushes, pack bytes and batching from git-relay's --json report, and
    the increments it printed on stderr."""
    try:
        report = json.loads((logdir / "cmd0.out").read_text())
    except (ValueError, OSError):
        report = {}
    if isinstance(report, dict):
        sample.pushes = report.get("pushes")
        sample.pack_bytes = report.get("pack_bytes")
        sample.batched = report.get("batched")
        # Pack bytes that did not land: pushes refused or cut. The 2xx pushes'
        # request lengths include a few hundred bytes of headers and commands.
        landed = sample.breakdown.get("push", [0, 0])[1]
        if sample.pack_bytes is not None:
            sample.wasted = max(0, sample.pack_bytes - landed)
        if sample.ok:
            sample.note = f"pack_bytes={sample.pack_bytes}"
    try:
        err = (logdir / "cmd0.err").read_text(errors="replace")
    except OSError:
        err = ""
    sample.increments = sum(
        1 for line in err.splitlines() if "pushed increment" in line or "pushed piece" in line
    )
