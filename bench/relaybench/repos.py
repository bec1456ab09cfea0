"""Deterministic repositories, generated with `git fast-import` and cached."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .common import CACHE_DIR, copy_repo, git, human_bytes, log

# Bump when the generator changes so cached repositories are rebuilt.
GENERATOR_VERSION = 4


@dataclass(frozen=True)
class RepoSpec:
    """Parameters of one generated repository; they also key the cache."""

    name: str
    commits: int  # total commits, main branch plus side branches
    branches: int  # side branches, each 1-5 commits forked from main
    tags: int  # half annotated, half lightweight, spread along main
    files: int  # text files edited along the history
    binaries: int  # incompressible files added along main
    binary_kib: int  # size of each of them
    seed: int = 1

    def key(self) -> str:
        """A cache key that changes when any parameter or the generator does."""
        text = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


SIZES = {
    "tiny": RepoSpec("tiny", commits=1_000, branches=10, tags=6, files=50,
                     binaries=2, binary_kib=512),
    "small": RepoSpec("small", commits=5_000, branches=40, tags=20, files=200,
                      binaries=2, binary_kib=1024),
    "medium": RepoSpec("medium", commits=50_000, branches=300, tags=100,
                       files=1_000, binaries=4, binary_kib=2048),
    # About 100 MiB of pack: the size README.md quotes figures for.
    "large": RepoSpec("large", commits=60_000, branches=600, tags=200,
                      files=2_000, binaries=6, binary_kib=4096),
    # Not in the default run: about 150 MiB, for a look at the trend.
    "xlarge": RepoSpec("xlarge", commits=100_000, branches=600, tags=200,
                       files=2_000, binaries=6, binary_kib=4096),
}

# The organization sweep: many small repositories.
ORG_SPEC = RepoSpec("org", commits=30, branches=2, tags=1, files=10,
                    binaries=0, binary_kib=0)


AUTHOR = b"Bench Author <author@bench.example>"
COMMITTER = b"Bench Committer <committer@bench.example>"
EPOCH = 1_600_000_000


class Stream:
    """Writes a `git fast-import` stream of seeded content to a pipe."""

    def __init__(self, out, rng: random.Random):
        self.out = out
        self.rng = rng
        self.clock = EPOCH
        self.mark = 0
        self.words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                              for _ in range(rng.randint(3, 10))) for _ in range(3000)]

    def line(self) -> str:
        """A line of plausible source text."""
        w = self.rng.choices(self.words, k=self.rng.randint(2, 7))
        indent = "    " * self.rng.randint(0, 3)
        return f"{indent}{w[0]} = {'.'.join(w[1:3])}({', '.join(w[3:])});"

    def data(self, payload: bytes) -> None:
        """A `data` command with an exact byte count."""
        self.out.write(b"data %d\n" % len(payload))
        self.out.write(payload)
        self.out.write(b"\n")

    def commit(self, ref: str, message: str, changes: list[tuple[str, bytes]],
               parent: str | None = None) -> int:
        """One commit on ref; returns its mark. parent is a mark or ref spec."""
        self.mark += 1
        self.clock += 97
        when = b"%d +0000" % self.clock
        self.out.write(b"commit %s\nmark :%d\n" % (ref.encode(), self.mark))
        self.out.write(b"author %s %s\ncommitter %s %s\n" % (AUTHOR, when, COMMITTER, when))
        self.data(message.encode())
        if parent:
            self.out.write(b"from %s\n" % parent.encode())
        for path, content in changes:
            self.out.write(b"M 100644 inline %s\n" % path.encode())
            self.data(content)
        self.out.write(b"\n")
        return self.mark

    def tag(self, name: str, target_mark: int, annotated: bool) -> None:
        """An annotated tag object or a lightweight tag ref."""
        if annotated:
            self.clock += 1
            self.out.write(b"tag %s\nfrom :%d\n" % (name.encode(), target_mark))
            self.out.write(b"tagger %s %d +0000\n" % (COMMITTER, self.clock))
            self.data(f"Release {name}\n".encode())
        else:
            self.out.write(b"reset refs/tags/%s\nfrom :%d\n\n" % (name.encode(), target_mark))


def write_history(stream: Stream, spec: RepoSpec) -> None:
    """The whole history of a spec: main, side branches, tags, binaries."""
    rng = stream.rng
    paths = [f"src/mod{i % 40:02d}/file{i:05d}.txt" for i in range(spec.files)]
    texts = {p: [stream.line() for _ in range(rng.randint(10, 40))] for p in paths}
    side = [rng.randint(1, 5) for _ in range(spec.branches)]
    main_commits = max(spec.commits - sum(side), 2)
    binary_at = {max(1, (i + 1) * main_commits // (spec.binaries + 1)): i
                 for i in range(spec.binaries)}
    main_marks = []
    first = [(p, ("\n".join(t) + "\n").encode()) for p, t in texts.items()]
    main_marks.append(stream.commit("refs/heads/main", "Initial import\n", first))
    for n in range(1, main_commits):
        changes = []
        for path in rng.sample(paths, k=min(len(paths), rng.randint(1, 3))):
            text = texts[path]
            for _ in range(rng.randint(1, 3)):
                text[rng.randrange(len(text))] = stream.line()
            if rng.random() < 0.3:
                text.insert(rng.randrange(len(text) + 1), stream.line())
            changes.append((path, ("\n".join(text) + "\n").encode()))
        if n in binary_at:
            i = binary_at[n]
            changes.append((f"assets/blob{i:02d}.bin", rng.randbytes(spec.binary_kib * 1024)))
        message = f"Change {n}: {' '.join(rng.choices(stream.words, k=6))}\n"
        main_marks.append(stream.commit("refs/heads/main", message, changes))
    for b, length in enumerate(side):
        ref = f"refs/heads/topic/{b:04d}"
        fork = main_marks[rng.randrange(len(main_marks))]
        note = [stream.line() for _ in range(5)]
        for c in range(length):
            note.append(stream.line())
            stream.commit(ref, f"Topic {b} step {c}\n",
                          [(f"notes/topic{b:04d}.txt", ("\n".join(note) + "\n").encode())],
                          parent=f":{fork}" if c == 0 else None)
    for t in range(spec.tags):
        target = main_marks[(t + 1) * (len(main_marks) - 1) // max(spec.tags, 1)]
        stream.tag(f"v{t // 10}.{t % 10}.0" if t % 2 == 0 else f"build-{t:04d}",
                   target, annotated=t % 2 == 0)


def fast_import(repo: Path, writer, force: bool = False) -> None:
    """Feed a stream produced by writer(stream) into git fast-import in repo."""
    cmd = ["git", "fast-import", "--quiet"] + (["--force"] if force else [])
    proc = subprocess.Popen(cmd, cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    writer(proc.stdin)
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit(f"git fast-import failed in {repo}")


def init_bare(path: Path) -> None:
    """An empty bare repository with settings that keep timings steady."""
    git("init", "-q", "--bare", "-b", "main", str(path))
    # No background or automatic repacking in the middle of a measurement.
    for key, value in (("gc.auto", "0"), ("receive.autogc", "false"),
                       ("maintenance.auto", "false")):
        git("-C", str(path), "config", key, value)


def prepare_repos(spec: RepoSpec) -> dict:
    """Generate (or reuse from cache) the repositories of one size.

    s0.git is the base source; s1.git has one more commit on main; s2.git has
    topic/0000 rewritten (reset two commits back, three new ones); d0.git is a
    mirror of s0.git, the starting destination of every scenario but `first`.
    """
    base = CACHE_DIR / spec.key()
    meta_file = base / "meta.json"
    if meta_file.exists():
        return json.loads(meta_file.read_text())
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    started = time.time()
    log(f"generating {spec.name} repository ({spec.commits} commits) in {base}")
    s0 = base / "s0.git"
    init_bare(s0)
    fast_import(s0, lambda out: write_history(Stream(out, random.Random(spec.seed)), spec))
    log(f"  imported in {time.time() - started:.0f} s; repacking")
    # One fully deltified pack with a bitmap, like a maintained server
    # repository (fast-import's own pack stores most blobs whole).
    git("-C", str(s0), "repack", "-a", "-d", "-f", "-b", "-q")
    git("-C", str(s0), "pack-refs", "--all")

    d0 = base / "d0.git"
    init_bare(d0)
    git("-C", str(d0), "fetch", "-q", "--no-write-fetch-head", str(s0), "+refs/*:refs/*")
    git("-C", str(d0), "repack", "-a", "-d", "-q")
    git("-C", str(d0), "pack-refs", "--all")

    s1 = base / "s1.git"
    copy_repo(s0, s1)

    def one_commit(out):
        stream = Stream(out, random.Random(spec.seed + 1))
        stream.clock = EPOCH + 10**8
        stream.commit("refs/heads/main", "One new commit\n",
                      [("NEWS.txt", b"one new line\n")], parent="refs/heads/main^0")
    fast_import(s1, one_commit)

    s2 = base / "s2.git"
    copy_repo(s0, s2)
    victim = "refs/heads/topic/0000"
    depth = int(git("-C", str(s2), "rev-list", "--count", victim + "~0", "^refs/heads/main"))
    back = git("-C", str(s2), "rev-parse", f"{victim}~{min(depth, 2)}")

    def rewrite(out):
        stream = Stream(out, random.Random(spec.seed + 2))
        stream.clock = EPOCH + 2 * 10**8
        for c in range(3):
            stream.commit(victim, f"Rewritten step {c}\n",
                          [("notes/rewritten.txt", f"{stream.line()}\n".encode())],
                          parent=back if c == 0 else None)
    fast_import(s2, rewrite, force=True)

    pack = sum(p.stat().st_size for p in (s0 / "objects" / "pack").glob("*.pack"))
    meta = {
        "spec": asdict(spec),
        "key": spec.key(),
        "commits": int(git("-C", str(s0), "rev-list", "--count", "--all")),
        "refs": len(git("-C", str(s0), "for-each-ref", "--format=%(refname)").splitlines()),
        "pack_bytes": pack,
        "generated_in_s": round(time.time() - started, 1),
    }
    meta_file.write_text(json.dumps(meta, indent=1))
    log(f"  {spec.name}: {meta['commits']} commits, {meta['refs']} refs, "
        f"pack {human_bytes(pack)}, {meta['generated_in_s']} s")
    return meta

