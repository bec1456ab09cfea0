"""The results: machine facts and the markdown report."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from .common import REPO_ROOT, SCENARIO_TITLES, TOOLS, git, human_bytes, human_seconds


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

