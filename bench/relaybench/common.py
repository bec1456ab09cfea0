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

SCENARIOS = ("first", "commit", "rewrite", "noop")
SCENARIO_TITLES = {
    "first": "first mirror (empty destination)",
    "commit": "one new commit",
    "rewrite": "rewritten branch (force-push)",
    "noop": "no-op",
}
TOOLS = ("git-relay", "git")



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

