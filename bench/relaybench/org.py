"""The organization sweep: `git-relay mirror-all` over many small
repositories listed by a fake Gitea API."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

from .common import CACHE_DIR, copy_repo, git, human_seconds, log
from .measure import Bench, measured_commands, same_refs
from .repos import EPOCH, ORG_SPEC, RepoSpec, Stream, fast_import, init_bare, write_history
from .server import WebServer


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

