"""Running one job under measurement, and the scenarios of one size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .common import (CACHE_DIR, GNU_TIME, PASSWORD, TOOLS, USER, copy_repo, git, human_bytes,
                     human_seconds, log)
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

