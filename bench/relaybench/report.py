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

from .common import (CAPPED_SCENARIOS, REPO_ROOT, SCENARIO_TITLES, TOOLS, git, human_bytes,
                     human_seconds)


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
        if scenario in CAPPED_SCENARIOS:
            continue
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


def count_spread(values: list) -> str:
    """Median of whole numbers, with min-max when they differ."""
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    med = statistics.median(values)
    med_text = f"{med:.0f}" if med == int(med) else f"{med:.1f}"
    return med_text if min(values) == max(values) else f"{med_text} ({min(values)}–{max(values)})"


def capped_table(results: dict, cap: int) -> list[str]:
    """The capped scenarios: a row per scenario and tool, wall time against
    git-relay's uncapped first mirror of the same run, pushes and bytes."""
    base = results.get("first", {}).get("git-relay", [])
    base_wall = statistics.median(s.wall for s in base) if base else None
    lines = [f"Destination behind nginx `client_max_body_size {cap}` ({human_bytes(cap)}): "
             "413 for any larger request body, chunked or not. `vs first` is the median "
             "wall time over git-relay's median uncapped first mirror of this run. "
             "`pushes` are receive-pack requests with commands (git-relay's `--json`; for "
             "git, its receive-pack requests, a 4-byte probe included), `refused` those the "
             "server answered 413, `cut` those git-relay stopped at its budget (nginx logs "
             "400), `increments` the history pushes git-relay printed (increments or pieces, "
             "the last one going with the refs not counted), `pack relayed` the "
             "pack bytes it streamed to the destination and `wasted` the part of them in "
             "pushes that did not land (refused or cut). `sent`/`received` are all the "
             "client's HTTP traffic, both servers.", "",
             "| scenario | tool | wall | vs first | CPU (user+sys) | peak RSS | pushes | refused "
             "| cut | increments | pack relayed | wasted | sent | received | server CPU "
             "| server peak RSS |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
             "| --- | --- |"]
    rows = [("first", "git-relay"), ("first", "git")]
    rows += [(sc, t) for sc in CAPPED_SCENARIOS for t in TOOLS]
    for scenario, tool in rows:
        samples = results.get(scenario, {}).get(tool, [])
        if not samples:
            continue
        failed = [s for s in samples if not s.ok]
        if samples[0].expected_failure:
            codes = sorted({s.exit_code for s in samples})
            wall = (f"failed (exit {', '.join(map(str, codes))}), destination unchanged"
                    if not failed else f"**{len(failed)} of {len(samples)} did not fail as "
                                       "they should**")
            ratio = ""
        else:
            wall = spread([s.wall for s in samples], human_seconds)
            if failed:
                wall += f" **{len(failed)} failed**"
            med = statistics.median(s.wall for s in samples)
            ratio = f"{med / base_wall:.2f}x" if base_wall and tool == "git-relay" else ""
        if tool == "git-relay":
            batched = sum(1 for s in samples if s.batched)
            pushes = count_spread([s.pushes for s in samples]) + (
                "" if not batched else " (batched)" if batched == len(samples)
                else f" ({batched} of {len(samples)} batched)")
        else:
            pushes = count_spread([s.breakdown.get("push", [0])[0] for s in samples]) \
                + " requests"
        lines.append("| " + " | ".join([
            SCENARIO_TITLES[scenario], tool, wall, ratio,
            spread([s.cpu for s in samples], human_seconds),
            spread([s.rss_kib * 1024 for s in samples], human_bytes),
            pushes,
            count_spread([s.refused for s in samples]),
            count_spread([s.cut for s in samples]),
            count_spread([s.increments for s in samples]) if tool == "git-relay" else "",
            spread([s.pack_bytes for s in samples], human_bytes)
            if tool == "git-relay" and all(s.pack_bytes is not None for s in samples) else "",
            spread([s.wasted for s in samples], human_bytes)
            if tool == "git-relay" and all(s.wasted is not None for s in samples) else "",
            spread([s.sent for s in samples], human_bytes),
            spread([s.received for s in samples], human_bytes),
            spread([s.server_cpu for s in samples], human_seconds),
            spread([s.server_rss_kib * 1024 for s in samples], human_bytes),
        ]) + " |")
    lines += ["", "Where git-relay's time went, by request, median run of each scenario "
              "(from nginx's access log; the seconds of a fetch and the push it feeds "
              "overlap, since the pack streams from one into the other):", "",
              "| scenario | request | count | sent | received | seconds (sum) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for scenario in ("first", *CAPPED_SCENARIOS):
        samples = results.get(scenario, {}).get("git-relay", [])
        if not samples:
            continue
        median_run = sorted(samples, key=lambda s: s.wall)[len(samples) // 2]
        for kind, (count, sent, received, seconds) in sorted(median_run.breakdown.items()):
            lines.append(f"| {SCENARIO_TITLES[scenario]} | {kind} | {count} | "
                         f"{human_bytes(sent)} | {human_bytes(received)} | "
                         f"{human_seconds(seconds)} |")
    lines += ["", "Server CPU by request, median run of each scenario (both servers' "
              "http-backend and git children: upload-pack and pack-objects for a fetch, "
              "receive-pack, index-pack and the connectivity check for a push):", "",
              "| scenario | tool | request | server CPU | largest process |",
              "| --- | --- | --- | --- | --- |"]
    for scenario in ("first", *CAPPED_SCENARIOS):
        for tool in TOOLS:
            samples = results.get(scenario, {}).get(tool, [])
            if not samples:
                continue
            median_run = sorted(samples, key=lambda s: s.wall)[len(samples) // 2]
            for service, (cpu, rss) in sorted(median_run.server_by_service.items()):
                lines.append(f"| {SCENARIO_TITLES[scenario]} | {tool} | {service} | "
                             f"{human_seconds(cpu)} | {human_bytes(rss * 1024)} |")
    expected = sorted({f"{sc}/{t}: {s.note}" for sc in CAPPED_SCENARIOS
                       for t, ss in results.get(sc, {}).items() for s in ss
                       if s.expected_failure and s.ok})
    if expected:
        lines += ["", "Expected failures:", *[f"- {n}" for n in expected]]
    return lines


def render(args, info: dict, load_before: str, load_after: str, started: dt.datetime,
           finished: dt.datetime, metas: dict, all_results: dict,
           org_rows: list[dict], org_note: str, lfs_meta: dict | None = None,
           lfs_results: dict | None = None) -> str:
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
            *([f"- 1-minute load average at the start of each measured job: "
               f"{min(loads)}–{max(loads)} (median {statistics.median(loads):.2f})"]
              if (loads := [s.load for r in all_results.values() for bt in r.values()
                            for ss in bt.values() for s in ss if s.load is not None]) else []),
            *([f"- capped scenarios: git-relay "
               + (f"`--dest-max-push-bytes {info['budget']}` in `capped`"
                  if info.get("budget_flag") else
                  "**has no `--dest-max-push-bytes`**, so `capped` ran without it, "
                  "like `capped-learnt`")]
              if any(sc in r for r in all_results.values() for sc in CAPPED_SCENARIOS)
              else []),
            "- servers: nginx + fcgiwrap + `git http-backend` on 127.0.0.1, Basic auth, "
            "protocol v2 passed through; source and destination on the same server; "
            + ("upload-pack serves filtered fetches (`--allow-filter`)" if args.allow_filter
               else "no filtered fetches (`uploadpack.allowFilter` unset, git's default)")
            + ("; the Git LFS sources set `uploadpack.allowFilter` in their own config, "
               "which git-relay's `--lfs auto` needs to find pointers" if lfs_results else ""),
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
            "columns. `git` is `git clone --mirror` + `git push --mirror` (for Git LFS, "
            "with `git lfs fetch --all` and `git lfs push --all`), run from "
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
        if any(sc in results for sc in CAPPED_SCENARIOS):
            out += ["", f"### {name}: capped destination", ""]
            out += capped_table(results, args.cap)
        notes = sorted({f"{sc}/{t}: {s.note}" for sc, bt in results.items()
                        for t, ss in bt.items() for s in ss if not s.ok})
        if notes:
            out += ["", "Failures:", *[f"- {n}" for n in notes]]
        out.append("")
    if lfs_results:
        out += lfs_section(lfs_meta, lfs_results)
    if not org_rows and lfs_results:
        return "\n".join(out)
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



def lfs_section(meta: dict, results: dict) -> list[str]:
    """The Git LFS scenarios: a row per scenario and tool, then the issue's
    targets, met or not."""
    spec = meta["spec"]
    out = [f"## Git LFS: {meta['commits']} commits, {meta['refs']} refs, pack "
           f"{human_bytes(meta['pack_bytes'])}, {meta['lfs_objects']} LFS objects of "
           f"{human_bytes(meta['lfs_bytes'])}", "",
           f"Generated: {spec['commits']} commits on main, {spec['paths']} LFS files of which "
           f"{spec['objects'] - spec['paths']} changed once ({spec['big']} objects of "
           f"{spec['big_mib']} MiB, the others {spec['min_kib']}-{spec['max_kib']} KiB, "
           f"random), {spec['branches']} topic branches, {spec['tags']} tags; the new file of "
           f"`one new LFS file` is {human_bytes(meta['new_object']['size'])}. LFS server: "
           "giftless (tests/lfs/serve.py, local storage) behind the same nginx, Basic auth. "
           "git-relay: `git-relay mirror SRC DST --json` (`--lfs auto`). git: `git clone "
           "--mirror SRC`, `git lfs fetch --all`, `git push --mirror DST`, `git lfs push --all "
           "DST`, from scratch every time.", "",
           "`disk` is the largest space used in the job's working directory (its TMPDIR too), "
           "polled every 0.2 s; `LFS requests` every request under `/info/lfs/` in nginx's "
           "access log (401 challenges included); `objects down`/`objects up` the successful "
           "downloads (GET) and uploads (PUT), `LFS down`/`LFS up` the downloads' response "
           "bytes and the uploads' request bytes; "
           "`received`/`sent` all the client's HTTP traffic, git and LFS; `server CPU` the "
           "git http-backend processes, `giftless CPU` the LFS server's.", "",
           "| scenario | tool | wall | CPU (user+sys) | peak RSS | disk | LFS requests "
           "| objects down | objects up | LFS down | LFS up | received | sent | server CPU | giftless CPU "
           "| speed-up |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
           "| --- | --- |"]
    loads = [s.load for bt in results.values() for pairs in bt.values() for s, _ in pairs
             if s.load is not None]
    if loads:
        out[-2:-2] = [f"1-minute load average at the start of each LFS job: {min(loads)}–"
                      f"{max(loads)} (median {statistics.median(loads):.2f}).", ""]
    medians: dict = {}
    for scenario, by_tool in results.items():
        medians[scenario] = {t: statistics.median(s.wall for s, _ in v)
                             for t, v in by_tool.items()}
        for tool in TOOLS:
            pairs = by_tool.get(tool, [])
            if not pairs:
                continue
            samples = [s for s, _ in pairs]
            figs = [f for _, f in pairs]
            failed = [s for s in samples if not s.ok]
            m = medians[scenario]
            speed = (f"{m['git'] / m['git-relay']:.1f}x" if tool == "git-relay" and "git" in m
                     and m["git-relay"] > 0 else "")
            out.append("| " + " | ".join([
                SCENARIO_TITLES[scenario], tool,
                spread([s.wall for s in samples], human_seconds)
                + (f" **{len(failed)} failed**" if failed else ""),
                spread([s.cpu for s in samples], human_seconds),
                spread([s.rss_kib * 1024 for s in samples], human_bytes),
                spread([f.disk_peak for f in figs], human_bytes),
                count_spread([f.lfs_requests for f in figs]),
                count_spread([f.downloads for f in figs]),
                count_spread([f.uploads for f in figs]),
                spread([f.down_bytes for f in figs], human_bytes),
                spread([f.up_bytes for f in figs], human_bytes),
                spread([s.received for s in samples], human_bytes),
                spread([s.sent for s in samples], human_bytes),
                spread([s.server_cpu for s in samples], human_seconds),
                spread([f.giftless_cpu for f in figs], human_seconds),
                speed]) + " |")
    steps = ("git clone --mirror", "git lfs fetch --all", "git push --mirror",
             "git lfs push --all")
    rows = []
    for scenario, by_tool in results.items():
        runs = [s.steps for s, _ in by_tool.get("git", []) if len(s.steps) == len(steps)]
        if runs:
            rows.append(f"| {SCENARIO_TITLES[scenario]} | " + " | ".join(
                spread([r[i] for r in runs], human_seconds) for i in range(len(steps))) + " |")
    if rows:
        out += ["", "Where git's time goes, by command (median, min–max):", "",
                "| scenario | " + " | ".join(f"`{c}`" for c in steps) + " |",
                "| --- |" + " --- |" * len(steps), *rows]
    out += ["", "Against the targets of issue 12 (medians; every repetition for memory, "
            "disk and requests):", ""]

    def relay(scenario: str) -> list:
        return results.get(scenario, {}).get("git-relay", [])

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"
    if "lfs-first" in results and "git" in medians["lfs-first"]:
        m = medians["lfs-first"]
        rss = max(s.rss_kib for s, _ in relay("lfs-first")) * 1024
        disk = max(f.disk_peak for _, f in relay("lfs-first"))
        git_rss = statistics.median(s.rss_kib for s, _ in results["lfs-first"]["git"]) * 1024
        out += [f"- first mirror faster: {human_seconds(m['git-relay'])} against "
                f"{human_seconds(m['git'])} ({m['git'] / m['git-relay']:.2f}x): "
                f"{verdict(m['git-relay'] < m['git'])}",
                f"- peak memory at most 64 MiB: {human_bytes(rss)} at most (git: "
                f"{human_bytes(git_rss)}): {verdict(rss <= 64 << 20)}",
                f"- no local disk: {human_bytes(disk)} at most in git-relay's working "
                f"directory: {verdict(disk == 0)}"]
    if "lfs-commit" in results and "git" in medians["lfs-commit"]:
        m = medians["lfs-commit"]
        moved = sorted({f.uploads for _, f in relay("lfs-commit")})
        out.append(f"- one new LFS file at least 20x faster: {m['git'] / m['git-relay']:.1f}x "
                   f"({human_seconds(m['git-relay'])} against {human_seconds(m['git'])}; "
                   f"git-relay uploaded {', '.join(map(str, moved))} object(s)): "
                   f"{verdict(m['git'] / m['git-relay'] >= 20)}")
    if "lfs-noop" in results:
        reqs = max(f.lfs_requests for _, f in relay("lfs-noop"))
        m = medians["lfs-noop"]
        ratio = f", {m['git'] / m['git-relay']:.0f}x faster than git" if "git" in m else ""
        out.append(f"- no-op, no LFS traffic: {reqs} LFS requests at most (wall "
                   f"{human_seconds(m['git-relay'])}{ratio}): {verdict(reqs == 0)}")
    notes = sorted({f"{sc}/{t}: {s.note}" for sc, bt in results.items()
                    for t, pairs in bt.items() for s, _ in pairs if not s.ok})
    if notes:
        out += ["", "Failures:", *[f"- {n}" for n in notes]]
    out.append("")
    return out
