"""Paths, constants and small helpers shared by every part of the benchmark."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent  # bench/
REPO_ROOT = BENCH_DIR.parent
CACHE_DIR = BENCH_DIR / ".cache"
RESULTS_DIR = BENCH_DIR / "results"
# Where the benchmark builds git-relay: --target-dir, else this variable,
# else a directory of its own inside the repository's target dir, so that
# builds do not wait on the locks of other cargo runs in the same checkout.
TARGET_DIR_ENV = "GIT_RELAY_BENCH_TARGET_DIR"
DEFAULT_TARGET_DIR = REPO_ROOT / "target" / "bench"
GNU_TIME = Path("/usr/bin/time")  # measures the client and the CGI processes

USER = "bench"
PASSWORD = "bench-secret"

# The Git LFS scenarios run on a repository of their own (lfs.py), not on
# the sizes; `--scenarios lfs` names all three.
LFS_SCENARIOS = ("lfs-first", "lfs-commit", "lfs-noop")
SCENARIOS = ("first", "commit", "rewrite", "noop", "capped", "capped-learnt", *LFS_SCENARIOS)
# Run only when asked with --scenarios: they need the capped server.
DEFAULT_SCENARIOS = ("first", "commit", "rewrite", "noop")
CAPPED_SCENARIOS = ("capped", "capped-learnt")
SCENARIO_TITLES = {
    "first": "first mirror (empty destination)",
    "commit": "one new commit",
    "rewrite": "rewritten branch (force-push)",
    "noop": "no-op",
    "capped": "first mirror, capped destination, budget set",
    "capped-learnt": "first mirror, capped destination, budget learnt",
    "lfs-first": "LFS: first mirror (empty destination)",
    "lfs-commit": "LFS: one new LFS file",
    "lfs-noop": "LFS: no-op",
}
TOOLS = ("git-relay", "git")
# The tools of each scenario: without a budget flag git has nothing to
# learn, so `capped-learnt` would run the same git job as `capped` again.
SCENARIO_TOOLS = {s: TOOLS for s in SCENARIOS} | {"capped-learnt": ("git-relay",)}
# What `--cap` means when not given: the 8 MiB per push.
DEFAULT_CAP = 8 << 20


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
            # 3 significant digits, without exponents for 1000-1023.
            return f"{n:.0f} {unit}" if unit == "B" or n >= 999.5 else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n} B"


def human_seconds(s: float) -> str:
    """Seconds with a precision that suits their size."""
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 10:
        return f"{s:.2f} s"
    return f"{s:.1f} s"


def parse_size(text: str) -> int:
    """`8MiB`, `512KiB`, `8m`, `1048576`: a size in bytes."""
    units = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
             "g": 1 << 30, "gib": 1 << 30}
    t = text.strip().lower()
    digits = len(t) - len(t.lstrip("0123456789"))
    if digits == 0 or t[digits:].strip() not in units:
        raise ValueError(f"{text!r} is not a size (e.g. 8MiB, 512KiB, 1048576)")
    return int(t[:digits]) * units[t[digits:].strip()]


def copy_repo(src: Path, dst: Path) -> None:
    """Copy a bare repository (plain copy: repositories are small enough)."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)

