"""The Git LFS scenarios (issue 12): a repository whose large files live on
an LFS server, mirrored by git-relay and by the documented way with git-lfs.

The LFS server is giftless as the tests run it (`tests/lfs/serve.py`, local
storage, installed by `tests/lfs/install.sh`), behind the bench's nginx:
nginx checks Basic auth as for git and proxies `/<repo>.git/info/lfs/` to
giftless unchanged. giftless routes `<organization path>/<repo>.git/info/lfs/`
and stores `<storage>/<organization path>/<repo>/<oid>`, so the bench's
paths need no rewriting: `src/<key>/s0.git` keeps its objects in
`<storage>/src/<key>/s0/`, a symlink into the cache, and a destination
`dst/<key>.git` in `<storage>/dst/<key>/`, rebuilt for every run. The
`href`s giftless returns name nginx's host and port (nginx passes the
`Host` header), carry no header of their own, and are under the same path,
so both clients send the same Basic credentials to them.

The repository is generated once and cached: seeded content, pointers
written as git-lfs writes them, objects stored as files. s0 is the source,
s1 has one commit more adding one new LFS file, d0 mirrors s0's git side
(its LFS side is s0's objects, hard-linked into the destination's storage).
Sources allow filtered fetches (`uploadpack.allowFilter`), which git-relay's
`--lfs auto` needs to look for pointers without reading the whole pack.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .common import (CACHE_DIR, PASSWORD, REPO_ROOT, USER, copy_repo, git, human_bytes,
                     human_seconds, log)
from .measure import Sample, measured_commands, ref_difference
from .repos import Stream, fast_import, init_bare

# Bump when the generator changes so the cached repository is rebuilt.
LFS_GENERATOR_VERSION = 1
POINTER_VERSION = "https://git-lfs.github.com/spec/v1"
ATTRIBUTES = b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
# Where tests/lfs/install.sh puts giftless unless told otherwise (the same
# variable as the tests read).
GIFTLESS_ENV = "GIT_RELAY_TEST_GIFTLESS"


@dataclass(frozen=True)
class LfsSpec:
    """Parameters of the generated LFS repository; they also key the cache."""

    name: str = "lfs"
    commits: int = 300  # on main
    paths: int = 160  # distinct LFS files; the other objects are new versions of them
    objects: int = 240  # LFS objects in the history, all distinct
    big: int = 4  # of them, this many large ones
    big_mib: int = 32
    min_kib: int = 1024  # the others' sizes, uniform between these
    max_kib: int = 2816
    new_kib: int = 2048  # the one new file of s1
    branches: int = 4
    tags: int = 4
    seed: int = 12

    def key(self) -> str:
        text = json.dumps({"v": LFS_GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


LFS_SPEC = LfsSpec()


def pointer(oid: str, size: int) -> bytes:
    """A pointer file as git-lfs writes it."""
    return f"version {POINTER_VERSION}\noid sha256:{oid}\nsize {size}\n".encode()


def store_object(directory: Path, content: bytes) -> tuple[str, int]:
    """Writes content into an LFS storage directory; returns (oid, size)."""
    oid = hashlib.sha256(content).hexdigest()
    (directory / oid).write_bytes(content)
    return oid, len(content)


def link_objects(src: Path, dst: Path) -> None:
    """Hard-links every object of one storage directory into another (copies
    when they are on different file systems)."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(src):
        try:
            os.link(entry.path, dst / entry.name)
        except OSError:
            shutil.copyfile(entry.path, dst / entry.name)


def objects_in(directory: Path) -> dict[str, int]:
    """oid -> size of every object in a storage directory."""
    if not directory.is_dir():
        return {}
    return {e.name: e.stat().st_size for e in os.scandir(directory)
            if len(e.name) == 64 and e.is_file()}


def prepare_lfs_repos(spec: LfsSpec = LFS_SPEC) -> dict:
    """Generate (or reuse from cache) the LFS repositories: s0, s1, d0 and
    their objects under lfs/s0 and lfs/s1."""
    base = CACHE_DIR / spec.key()
    meta_file = base / "meta.json"
    if meta_file.exists():
        return json.loads(meta_file.read_text())
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    started = time.time()
    log(f"generating the LFS repository ({spec.objects} objects) in {base}")
    s0_objects = base / "lfs" / "s0"
    s0_objects.mkdir(parents=True)
    rng = random.Random(spec.seed)
    sizes = [spec.big_mib << 20] * spec.big + [
        rng.randint(spec.min_kib, spec.max_kib) << 10 for _ in range(spec.objects - spec.big)]
    rng.shuffle(sizes)
    # Which commits of main add or replace an LFS file: spread along it.
    at = {max(1, (i + 1) * (spec.commits - 1) // (spec.objects + 1)): i
          for i in range(spec.objects)}
    if len(at) != spec.objects:
        raise SystemExit("LFS spec: more objects than commits")

    def history(out) -> None:
        stream = Stream(out, rng)
        notes = [stream.line() for _ in range(20)]
        marks = [stream.commit("refs/heads/main", "Initial import\n",
                               [(".gitattributes", ATTRIBUTES),
                                ("README.txt", ("\n".join(notes) + "\n").encode())])]
        for n in range(1, spec.commits):
            notes[rng.randrange(len(notes))] = stream.line()
            changes = [("README.txt", ("\n".join(notes) + "\n").encode())]
            if n in at:
                i = at[n]
                oid, size = store_object(s0_objects, rng.randbytes(sizes[i]))
                path = f"assets/file{i % spec.paths:03d}.bin"
                changes.append((path, pointer(oid, size)))
            marks.append(stream.commit("refs/heads/main", f"Change {n}\n", changes))
        for b in range(spec.branches):
            fork = marks[(b + 1) * (len(marks) - 1) // (spec.branches + 1)]
            stream.commit(f"refs/heads/topic/{b}", f"Topic {b}\n",
                          [(f"notes/topic{b}.txt", f"{stream.line()}\n".encode())],
                          parent=f":{fork}")
        for t in range(spec.tags):
            stream.tag(f"v{t}.0", marks[(t + 1) * (len(marks) - 1) // spec.tags],
                       annotated=True)

    s0 = base / "s0.git"
    init_bare(s0)
    fast_import(s0, history)
    git("-C", str(s0), "repack", "-a", "-d", "-f", "-b", "-q")
    git("-C", str(s0), "pack-refs", "--all")
    git("-C", str(s0), "config", "uploadpack.allowFilter", "true")

    d0 = base / "d0.git"
    init_bare(d0)
    git("-C", str(d0), "fetch", "-q", "--no-write-fetch-head", str(s0), "+refs/*:refs/*")
    git("-C", str(d0), "repack", "-a", "-d", "-q")
    git("-C", str(d0), "pack-refs", "--all")

    s1 = base / "s1.git"
    copy_repo(s0, s1)
    s1_objects = base / "lfs" / "s1"
    link_objects(s0_objects, s1_objects)
    new_oid, new_size = store_object(s1_objects, random.Random(spec.seed + 1).randbytes(
        spec.new_kib << 10))

    def one_file(out) -> None:
        stream = Stream(out, random.Random(spec.seed + 1))
        stream.clock += 10**8
        stream.commit("refs/heads/main", "One new LFS file\n",
                      [("assets/new.bin", pointer(new_oid, new_size))],
                      parent="refs/heads/main^0")
    fast_import(s1, one_file)

    objects = objects_in(s0_objects)
    meta = {
        "spec": asdict(spec),
        "key": spec.key(),
        "commits": int(git("-C", str(s0), "rev-list", "--count", "--all")),
        "refs": len(git("-C", str(s0), "for-each-ref", "--format=%(refname)").splitlines()),
        "pack_bytes": sum(p.stat().st_size for p in (s0 / "objects" / "pack").glob("*.pack")),
        "lfs_objects": len(objects),
        "lfs_bytes": sum(objects.values()),
        "new_object": {"oid": new_oid, "size": new_size},
        "generated_in_s": round(time.time() - started, 1),
    }
    meta_file.write_text(json.dumps(meta, indent=1))
    log(f"  lfs: {meta['commits']} commits, {meta['refs']} refs, pack "
        f"{human_bytes(meta['pack_bytes'])}, {len(objects)} LFS objects of "
        f"{human_bytes(meta['lfs_bytes'])}, {meta['generated_in_s']} s")
    return meta


def giftless_dir() -> Path:
    """Where tests/lfs/install.sh installed giftless."""
    value = os.environ.get(GIFTLESS_ENV)
    return Path(value) if value else REPO_ROOT / "target" / "lfs-python"


def check_lfs_deps() -> None:
    """git-lfs and giftless must be there; say how to get them otherwise."""
    missing = []
    if subprocess.run(["git", "lfs", "version"], capture_output=True).returncode != 0:
        missing.append("git-lfs")
    if not (giftless_dir() / ".installed").exists():
        missing.append(f"giftless (in {giftless_dir()})")
    if missing:
        raise SystemExit(f"the LFS scenarios need {', '.join(missing)}: run "
                         "`bash tests/lfs/install.sh` (or bench/install-deps.sh)")


class Giftless:
    """giftless serving local storage on 127.0.0.1, started from
    tests/lfs/serve.py as the tests start it; it trusts every request, so
    nginx in front checks the credentials."""

    def __init__(self, workdir: Path):
        self.dir = workdir / "giftless"
        self.storage = workdir / "lfs-storage"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.storage / "src").mkdir(parents=True, exist_ok=True)
        (self.storage / "dst").mkdir(parents=True, exist_ok=True)
        # giftless reads `.env` in its working directory and GIFTLESS_*
        # variables, Python its PYTHON*: none from the caller's environment.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GIFTLESS_", "PYTHON"))}
        env.update(PYTHONPATH=str(giftless_dir()), PYTHONDONTWRITEBYTECODE="1",
                   LC_ALL="C.UTF-8")
        self.proc = subprocess.Popen(
            ["python3", "-s", str(REPO_ROOT / "tests" / "lfs" / "serve.py"), str(self.storage)],
            cwd=self.dir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(self.dir / "giftless.log", "wb"), start_new_session=True)
        first = self.proc.stdout.readline().decode().strip()
        if not first.startswith("port "):
            self.stop()
            raise SystemExit(f"giftless did not start; see {self.dir}/giftless.log")
        self.port = int(first.split()[1])

    def source_storage(self, meta: dict, source: str) -> Path:
        """The storage directory giftless serves for src/<key>/<source>.git:
        a symlink to the cached objects."""
        link = self.storage / "src" / meta["key"]
        if not link.exists():
            link.symlink_to(CACHE_DIR / meta["key"] / "lfs")
        return link / source

    def destination_storage(self, meta: dict) -> Path:
        return self.storage / "dst" / meta["key"]

    def cpu_seconds(self) -> float:
        """User + system time of the giftless process so far (all threads)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError, AttributeError):
            return 0.0

    def stop(self) -> None:
        """giftless exits when its stdin closes; kill it if it does not."""
        if not self.proc:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class DiskWatch:
    """The largest disk use of a directory tree during a job, polled."""

    def __init__(self, path: Path, interval: float = 0.2):
        self.path = path
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "DiskWatch":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, disk_used(self.path))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, disk_used(self.path))


def disk_used(path: Path) -> int:
    """Bytes allocated to the files under path (st_blocks, as du counts)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass  # removed while walking: git's temporary files come and go
    return total


@dataclass
class LfsFigures:
    """What an LFS run adds to a Sample, from the access log and the storage."""

    disk_peak: int = 0  # bytes, the job's working directory (and TMPDIR)
    lfs_requests: int = 0  # every request under /info/lfs/, auth challenges included
    batches: int = 0
    uploads: int = 0  # objects PUT with success
    downloads: int = 0  # objects GET with success
    down_bytes: int = 0  # response bytes of the downloads
    up_bytes: int = 0  # request bytes of the uploads
    giftless_cpu: float = 0.0
    relay_moved: int | None = None  # git-relay's --json: lfs.moved
    relay_bytes: int | None = None


class LfsBench:
    """Runs the LFS scenarios: git-relay against clone --mirror + git-lfs."""

    def __init__(self, bench, giftless: Giftless, meta: dict):
        self.bench = bench  # measure.Bench: server, binary, workdir, reps, env
        self.giftless = giftless
        self.meta = meta
        # git-lfs sends credentials to the action hrefs, which have none in
        # their URL, through git's credential helpers: a store file, as a CI
        # job would configure. Set through the environment so that the
        # client's gitconfig, shared with the other scenarios, is unchanged.
        creds = bench.workdir / "git-credentials"
        creds.write_text(f"http://{USER}:{PASSWORD}@127.0.0.1:{bench.server.port}\n")
        self.git_env = dict(bench.env, GIT_CONFIG_COUNT="1",
                            GIT_CONFIG_KEY_0="credential.helper",
                            GIT_CONFIG_VALUE_0=f"store --file={creds}")

    def reset(self, scenario: str) -> Path:
        """A fresh destination, git side and LFS side."""
        server = self.bench.server
        dst = server.root / "dst" / f"{self.meta['key']}.git"
        if dst.exists():
            shutil.rmtree(dst)
        storage = self.giftless.destination_storage(self.meta)
        if storage.exists():
            shutil.rmtree(storage)
        if scenario == "lfs-first":
            init_bare(dst)
            storage.mkdir(parents=True)
        else:
            copy_repo(CACHE_DIR / self.meta["key"] / "d0.git", dst)
            link_objects(self.giftless.source_storage(self.meta, "s0"), storage)
        return dst

    def commands(self, tool: str, src: str, dst: str, clone: Path) -> list[list[str]]:
        url = self.bench.server.url
        if tool == "git-relay":
            return [[str(self.bench.binary), "mirror", url(src), url(dst), "--json"]]
        # The documented way to mirror a repository with its LFS objects
        # (GitHub's "Duplicating a repository"), from scratch.
        return [
            ["git", "clone", "--quiet", "--mirror", url(src, True), str(clone)],
            ["git", "-C", str(clone), "lfs", "fetch", "--all"],
            ["git", "-C", str(clone), "push", "--quiet", "--mirror", url(dst, True)],
            ["git", "-C", str(clone), "lfs", "push", "--all", url(dst, True)],
        ]

    def run_one(self, scenario: str, tool: str, rep: int) -> tuple[Sample, LfsFigures]:
        bench, server = self.bench, self.bench.server
        source = "s1" if scenario == "lfs-commit" else "s0"
        src = f"src/{self.meta['key']}/{source}.git"
        dst_repo = self.reset(scenario)
        dst = f"dst/{dst_repo.name}"
        src_storage = self.giftless.source_storage(self.meta, source)
        job = bench.workdir / "job"
        if job.exists():
            shutil.rmtree(job)
        job.mkdir()
        logdir = bench.workdir / "logs" / f"{scenario}-{tool}-{rep}"
        logdir.mkdir(parents=True, exist_ok=True)
        cmds = self.commands(tool, src, dst, job / "clone.git")
        (logdir / "commands").write_text("\n".join(" ".join(c) for c in cmds) + "\n")
        # Temporary files count as the job's disk too.
        env = dict(self.git_env if tool == "git" else bench.env, TMPDIR=str(job))
        subprocess.run(["sync"])
        offset = server.log_offset()
        usage_offset = server.usage_offset()
        giftless_before = self.giftless.cpu_seconds()
        try:
            load = float(Path("/proc/loadavg").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            load = None
        with DiskWatch(job) as watch:
            sample = measured_commands(cmds, env, logdir, cwd=job)
        sample.load = load
        figures = LfsFigures(disk_peak=watch.peak,
                             giftless_cpu=self.giftless.cpu_seconds() - giftless_before)
        requests = server.requests_since(offset)
        sample.requests = len(requests)
        sample.received = sum(r.received for r in requests)
        sample.sent = sum(r.sent for r in requests)
        for r in requests:
            if "/info/lfs/" not in r.uri:
                continue
            figures.lfs_requests += 1
            ok = 200 <= r.status < 300
            if r.uri.endswith("/objects/batch"):
                figures.batches += 1
            elif "/objects/storage/" in r.uri and r.method == "PUT" and ok:
                figures.uploads += 1
                figures.up_bytes += r.sent
            elif "/objects/storage/" in r.uri and r.method == "GET" and ok:
                figures.downloads += 1
                figures.down_bytes += r.received
        usage = server.usage_by_service(usage_offset)
        if usage:
            sample.server_cpu = sum(cpu for cpu, _ in usage.values())
            sample.server_rss_kib = max((rss for _, rss in usage.values()), default=0)
        if tool == "git-relay":
            try:
                report = json.loads((logdir / "cmd0.out").read_text())
                lfs = report.get("lfs") or {}
                figures.relay_moved, figures.relay_bytes = lfs.get("moved"), lfs.get("bytes")
            except (ValueError, OSError, AttributeError):
                pass
        if sample.ok:
            problem = ref_difference(CACHE_DIR / self.meta["key"] / f"{source}.git", dst_repo)
            want = objects_in(src_storage)
            have = objects_in(self.giftless.destination_storage(self.meta))
            lacking = [oid for oid, size in want.items() if have.get(oid) != size]
            if lacking:
                problem += (("; " if problem else "") + f"{len(lacking)} of {len(want)} LFS "
                            f"objects missing on the destination (e.g. {lacking[0]})")
            if problem:
                sample.ok = False
                sample.note = f"after the run, {problem}"
        shutil.rmtree(job, ignore_errors=True)
        return sample, figures

    def run(self, scenarios: list[str]) -> dict:
        """scenario -> tool -> [(Sample, LfsFigures)], tools alternating."""
        results: dict = {}
        for scenario in scenarios:
            for rep in range(self.bench.reps):
                order = ("git-relay", "git") if rep % 2 == 0 else ("git", "git-relay")
                for tool in order:
                    sample, fig = self.run_one(scenario, tool, rep)
                    results.setdefault(scenario, {}).setdefault(tool, []).append((sample, fig))
                    log(f"  {scenario:10} {tool:9} rep {rep + 1}: {human_seconds(sample.wall)}, "
                        f"cpu {human_seconds(sample.cpu)}, rss {human_bytes(sample.rss_kib * 1024)}, "
                        f"disk {human_bytes(fig.disk_peak)}, lfs requests {fig.lfs_requests}, "
                        f"up {fig.uploads} ({human_bytes(fig.up_bytes)}), down {fig.downloads} "
                        f"({human_bytes(fig.down_bytes)}), giftless cpu "
                        f"{human_seconds(fig.giftless_cpu)}, load {sample.load} "
                        f"{'ok' if sample.ok else 'FAILED ' + sample.note}")
        return results
