"""Command-line options and the whole run: build, serve, generate, measure,
report."""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import socket
import tempfile
from pathlib import Path

import relaybench

from .build import build_binary, check_deps, default_target_dir
from .common import (CACHE_DIR, CAPPED_SCENARIOS, DEFAULT_CAP, DEFAULT_SCENARIOS,
                     DEFAULT_TARGET_DIR, LFS_SCENARIOS, RESULTS_DIR, SCENARIOS, TARGET_DIR_ENV,
                     human_bytes, log, parse_size)
from .lfs import Giftless, LfsBench, check_lfs_deps, prepare_lfs_repos
from .measure import Bench
from .org import run_org_sweep
from .repos import SIZES, prepare_repos
from .report import loadavg, machine_info, render
from .server import WebServer


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
    p = argparse.ArgumentParser(prog="bench/run.py",
                                description=relaybench.__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: the tiny repository, 1 repetition, 20-repository sweep")
    p.add_argument("--sizes", default=None,
                   help=f"comma-separated sizes from {', '.join(SIZES)}, or none "
                        "(default small,medium,large; tiny with --quick)")
    p.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                   help=f"comma-separated scenarios from {','.join(SCENARIOS)} "
                        f"(default {','.join(DEFAULT_SCENARIOS)}; the capped ones push through "
                        "a server refusing bodies over --cap; `lfs` names the Git LFS ones, "
                        "which run on an LFS repository of their own, not on --sizes)")
    p.add_argument("--cap", default=human_bytes(DEFAULT_CAP).replace(" ", ""),
                   help="the capped destination's client_max_body_size, e.g. 8MiB, 512KiB "
                        "(default %(default)s); `capped` passes git-relay a budget just under it")
    p.add_argument("--allow-filter", action="store_true",
                   help="let the source serve filtered fetches (uploadpack.allowFilter), as "
                        "large hosts do; off by default, as in git")
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 3; 1 with --quick)")
    p.add_argument("--binary", type=Path, help="use this git-relay binary instead of building")
    p.add_argument("--rev", help="build this commit (e.g. HEAD) instead of the working tree")
    p.add_argument("--target-dir", type=Path, default=None,
                   help=f"CARGO_TARGET_DIR for the build (default ${TARGET_DIR_ENV}, "
                        f"else {DEFAULT_TARGET_DIR})")
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
    args.scenarios = [s for name in args.scenarios.split(",")
                      for s in (LFS_SCENARIOS if name == "lfs" else (name,))]
    only_lfs = all(s in LFS_SCENARIOS for s in args.scenarios)
    # An LFS-only run measures no size and no sweep unless asked.
    args.sizes = (args.sizes or ("none" if only_lfs else "tiny" if args.quick
                                 else "small,medium,large")).split(",")
    if args.sizes == ["none"]:
        args.sizes = []
    for size in args.sizes:
        if size not in SIZES:
            p.error(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    for scenario in args.scenarios:
        if scenario not in SCENARIOS:
            p.error(f"unknown scenario {scenario!r}")
    try:
        args.cap = parse_size(args.cap)
    except ValueError as e:
        p.error(f"--cap: {e}")
    if args.cap <= 0:
        p.error("--cap must be more than 0")
    args.reps = args.reps or (1 if args.quick else 3)
    if args.org_repos is None:
        args.org_repos = 0 if only_lfs else 20 if args.quick else 200
    args.jobs = [int(j) for j in args.jobs.split(",") if j]
    args.target_dir = args.target_dir or default_target_dir()
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
    lfs_scenarios = [s for s in args.scenarios if s in LFS_SCENARIOS]
    other_scenarios = [s for s in args.scenarios if s not in LFS_SCENARIOS]
    lfs_meta = None
    if lfs_scenarios:
        check_lfs_deps()
        lfs_meta = prepare_lfs_repos()
    workdir = Path(tempfile.mkdtemp(prefix="git-relay-bench-"))
    capped = any(s in CAPPED_SCENARIOS for s in args.scenarios)
    giftless = Giftless(workdir)
    if lfs_scenarios:
        giftless.start()
    server = WebServer(tools, workdir, args.server_trace, args.cap if capped else None,
                       args.allow_filter, lfs_port=giftless.port)
    load_before = loadavg()
    all_results: dict = {}
    lfs_results: dict = {}
    org_rows: list[dict] = []
    org_note = "organization sweep not run (--org-repos 0)"
    try:
        server.start()
        log(f"nginx on 127.0.0.1:{server.port}, work directory {workdir}")
        bench = Bench(server, binary, workdir, args.reps)
        info["budget_flag"] = bench.has_budget_flag
        info["budget"] = bench.budget()
        if other_scenarios:
            for size in args.sizes:
                all_results[size] = bench.run_size(metas[size], other_scenarios)
        if lfs_scenarios:
            log(f"giftless on 127.0.0.1:{giftless.port} behind nginx")
            lfs_results = LfsBench(bench, giftless, lfs_meta).run(lfs_scenarios)
        if args.org_repos > 0:
            org_rows, org_note = run_org_sweep(server, binary, bench, args.org_repos, args.jobs)
    finally:
        server.stop()
        giftless.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    finished = dt.datetime.now(dt.timezone.utc)
    report = render(args, info, load_before, loadavg(), started, finished, metas,
                    all_results, org_rows, org_note, lfs_meta, lfs_results)
    host = socket.gethostname() or "machine"
    # Smoke runs print their tables but keep them out of bench/results/.
    results_dir = Path(tempfile.gettempdir()) if args.quick else RESULTS_DIR
    output = args.output or unused_path(results_dir / f"{started:%Y-%m-%d}-{host}.md")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report)
    print(report)
    log(f"results written to {output}")
