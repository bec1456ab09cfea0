"""Building git-relay, and finding the programs the servers need."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .common import (DEFAULT_TARGET_DIR, GNU_TIME, REPO_ROOT, TARGET_DIR_ENV, git, log,
                     run)


def default_target_dir() -> Path:
    """The build directory when --target-dir is not given: the environment's
    GIT_RELAY_BENCH_TARGET_DIR, else target/bench in the repository."""
    value = os.environ.get(TARGET_DIR_ENV)
    return Path(value) if value else DEFAULT_TARGET_DIR


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

