"""The web server: nginx + fcgiwrap running `git http-backend`, with the
logs each run's traffic and server usage are read from."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .common import CACHE_DIR, GNU_TIME, PASSWORD, USER


class WebServer:
    """nginx + fcgiwrap serving `git http-backend` on 127.0.0.1 with Basic auth.

    The project root holds `src` (a symlink to the repository cache, read
    only) and `dst` (destinations, rewritten for every run). Every request is
    logged with its request and response sizes so each run's traffic can be
    read back from the access log.

    With `allow_filter`, upload-pack serves filtered fetches
    (`uploadpack.allowFilter`, as GitHub and GitLab do), which a batched
    push uses to learn the history as commits only.

    With `cap` (bytes), a second server on `capped_port` serves the same
    repositories with `client_max_body_size` set to it: a host, or a proxy
    before it, that answers 413 to any request body larger than that, as
    nginx does by default at 1 MiB. nginx counts a chunked body as it
    arrives, so a streamed push is refused once it passes the cap, not only
    one that announces its length.
    """

    def __init__(self, tools: dict[str, str], workdir: Path, trace_dir: Path | None = None,
                 cap: int | None = None, allow_filter: bool = False, lfs_port: int = 0):
        self.tools = tools
        self.trace_dir = trace_dir
        self.cap = cap
        self.allow_filter = allow_filter
        self.lfs_port = lfs_port
        self.dir = workdir / "server"
        self.root = workdir / "srv"
        self.port = 0
        self.capped_port = 0
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        """Write the configuration and start fcgiwrap, then nginx."""
        for sub in ("", "tmp", "home"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "dst").mkdir(exist_ok=True)
        (self.root / "api").mkdir(exist_ok=True)
        link = self.root / "src"
        if not link.exists():
            link.symlink_to(CACHE_DIR)
        # http-backend runs as root on root-owned repositories; make sure no
        # ownership check can refuse them, and keep the server's git config
        # independent of the user's.
        # With allow_filter, upload-pack takes `filter` (partial clone), as
        # the large hosts' do; git's default, and the bench's, is without.
        (self.dir / "home" / ".gitconfig").write_text(
            "[safe]\n\tdirectory = *\n"
            + ("[uploadpack]\n\tallowFilter = true\n" if self.allow_filter else ""))
        # nginx reads `{PLAIN}` entries in htpasswd files literally.
        (self.dir / "htpasswd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        self.port = free_port()
        if self.cap:
            self.capped_port = free_port()
        sock = self.dir / "fcgiwrap.sock"
        if sock.exists():
            sock.unlink()
        (self.dir / "nginx.conf").write_text(self._nginx_conf(sock, self._cgi_script()))
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
               "HOME": str(self.dir / "home")}
        # One fcgiwrap child serves one request at a time: enough for --jobs 8
        # sweeps (two requests per repository in flight at most).
        self.procs.append(subprocess.Popen(
            [self.tools["fcgiwrap"], "-c", "20", "-s", f"unix:{sock}"],
            env=env, stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "fcgiwrap.log", "wb"), start_new_session=True))
        self.procs.append(subprocess.Popen(
            [self.tools["nginx"], "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir),
             "-e", str(self.dir / "error.log")],
            env=env, stdout=subprocess.DEVNULL, stderr=open(self.dir / "nginx.out", "wb"),
            start_new_session=True))
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                for port in (self.port, self.capped_port):
                    if port:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                if sock.exists():
                    return
            except OSError:
                pass
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.05)
        raise SystemExit(f"web server did not start; see {self.dir}/error.log and nginx.out")

    def _cgi_script(self) -> str:
        """The CGI program fcgiwrap runs: http-backend, under GNU time if present.

        fcgiwrap lets the kernel reap its CGI processes, so their CPU time is
        lost to /proc accounting; GNU time waits for http-backend (which waits
        for its git children) and appends `user sys maxrss` to a log instead.
        """
        if not GNU_TIME.exists():
            return self.tools["http-backend"]
        script = self.dir / "http-backend.sh"
        # The request's method and path follow the figures, so that server
        # CPU can be told apart by service (upload-pack, receive-pack).
        script.write_text(
            "#!/bin/sh\n"
            f"exec {GNU_TIME} -q -a -o {self.dir}/cgi-usage.log "
            "-f \"%U %S %M $REQUEST_METHOD $PATH_INFO\" "
            f"{self.tools['http-backend']}\n")
        script.chmod(0o755)
        return str(script)

    def _nginx_conf(self, sock: Path, cgi: str) -> str:
        """The generated nginx.conf: one server, git under auth, a static fake API;
        with a cap, a second server for git only, refusing larger bodies."""
        tmp = self.dir / "tmp"
        capped = ""
        if self.cap:
            capped = f"""
    server {{
        listen 127.0.0.1:{self.capped_port};
        server_name capped;
        # The cap under test: 413 for any request body beyond it, chunked or not.
        client_max_body_size {self.cap};
        keepalive_timeout 60s;
        location / {{{self._git_location(sock, cgi)}
        }}
    }}"""
        return f"""
user root;
daemon off;
master_process on;
worker_processes 2;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format bench '$msec $request_method $uri $status $request_length $bytes_sent $request_time $server_port';
    access_log {self.dir}/access.log bench;
    client_body_temp_path {tmp}/body;
    fastcgi_temp_path {tmp}/fastcgi;
    proxy_temp_path {tmp}/proxy;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/json;
    map $arg_page $api_page {{ "" 1; default $arg_page; }}
    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;
        client_max_body_size 0;
        keepalive_timeout 60s;
        # Fake forge API for the organization sweep: static JSON, no auth.
        location /api/ {{
            root {self.root};
            try_files $uri.page$api_page.json /api/empty.json;
        }}
{self._lfs_location()}
        location / {{{self._git_location(sock, cgi)}
        }}
    }}{capped}
}}
"""

    def _git_location(self, sock: Path, cgi: str) -> str:
        """The body of the location that serves git: http-backend under Basic auth."""
        return f"""
            auth_basic "git";
            auth_basic_user_file {self.dir}/htpasswd;
            fastcgi_pass unix:{sock};
            # Stream bodies both ways, as hosted git servers do.
            fastcgi_request_buffering off;
            fastcgi_buffering off;
            fastcgi_read_timeout 900s;
            fastcgi_send_timeout 900s;
            fastcgi_param SCRIPT_FILENAME {cgi};
            fastcgi_param GIT_PROJECT_ROOT {self.root};
            fastcgi_param GIT_HTTP_EXPORT_ALL 1;
            fastcgi_param PATH_INFO $uri;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param REMOTE_USER $remote_user;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            # Without this http-backend only ever speaks protocol v0.
            fastcgi_param GIT_PROTOCOL $http_git_protocol;
            fastcgi_param HOME {self.dir}/home;
            fastcgi_param GIT_CONFIG_NOSYSTEM 1;
            fastcgi_param PATH /usr/local/bin:/usr/bin:/bin;{self._trace_param()}"""

    def _lfs_location(self) -> str:
        """With an LFS server (giftless, see lfs.py), its paths under the same
        Basic auth as git: `/<repo>.git/info/lfs/...`, passed on unchanged,
        bodies streamed both ways. A regex location, so it wins over `/`."""
        if not self.lfs_port:
            return ""
        return f"""
        location ~ ^/.+\\.git/info/lfs/ {{
            auth_basic "git";
            auth_basic_user_file {self.dir}/htpasswd;
            proxy_pass http://127.0.0.1:{self.lfs_port};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # giftless builds its hrefs from Host: they must name nginx.
            proxy_set_header Host $http_host;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 900s;
            proxy_send_timeout 900s;
        }}"""

    def _trace_param(self) -> str:
        """With --server-trace, git on the server writes trace2 perf logs."""
        if not self.trace_dir:
            return ""
        self.trace_dir.mkdir(parents=True, exist_ok=True)
        return f"\n            fastcgi_param GIT_TRACE2_PERF {self.trace_dir};"

    def stop(self) -> None:
        """Stop nginx and fcgiwrap with all their workers.

        Each was started as the leader of a process group of its own, so the
        group holds exactly what was started here (fcgiwrap's pre-forked
        workers outlive their parent if only the parent is signalled).
        """
        for proc in reversed(self.procs):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    continue
                if group_gone(proc.pid, timeout=5):
                    break
        self.procs.clear()

    def url(self, path: str, credentials: bool = False, capped: bool = False) -> str:
        """The http:// URL of a path under the project root, through the
        capped server if asked."""
        auth = f"{USER}:{PASSWORD}@" if credentials else ""
        port = self.capped_port if capped else self.port
        if capped and not port:
            raise ValueError("the web server was started without a cap")
        return f"http://{auth}127.0.0.1:{port}/{path.lstrip('/')}"

    def log_offset(self) -> int:
        """Current end of the access log, to read one run's requests later."""
        path = self.dir / "access.log"
        return path.stat().st_size if path.exists() else 0

    def usage_offset(self) -> int:
        """Current end of the CGI usage log (see _cgi_script)."""
        path = self.dir / "cgi-usage.log"
        return path.stat().st_size if path.exists() else 0

    def usage_since(self, offset: int) -> tuple[float, int] | None:
        """Server CPU seconds and the largest server process (KiB) since offset.

        Covers every http-backend with its git children (upload-pack,
        pack-objects, receive-pack, index-pack, rev-list), not nginx itself.
        None when GNU time is missing and nothing was recorded.
        """
        by_service = self.usage_by_service(offset)
        if by_service is None:
            return None
        return (sum(cpu for cpu, _ in by_service.values()),
                max((rss for _, rss in by_service.values()), default=0))

    def usage_by_service(self, offset: int) -> dict[str, tuple[float, int]] | None:
        """Server CPU seconds and largest process (KiB) since offset, by what
        the requests were: `GET info/refs`, `POST git-upload-pack`, `POST
        git-receive-pack`."""
        path = self.dir / "cgi-usage.log"
        if not path.exists():
            return None
        with open(path, "rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
        out: dict[str, tuple[float, int]] = {}
        for line in lines:
            parts = line.split()
            if len(parts) < 3:
                continue
            try:
                cpu, rss = float(parts[0]) + float(parts[1]), int(parts[2])
            except ValueError:
                continue
            service = "unknown"
            if len(parts) >= 5:
                service = f"{parts[3]} {parts[4].rsplit('/', 1)[-1]}"
            before = out.get(service, (0.0, 0))
            out[service] = (before[0] + cpu, max(before[1], rss))
        return out

    def requests_since(self, offset: int) -> list[Request]:
        """The requests logged since offset, in the order they ended."""
        time.sleep(0.1)  # nginx logs a request just after its last byte went out
        with open(self.dir / "access.log", "rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
        out = []
        for line in lines:
            parts = line.split()
            if len(parts) < 7:
                continue
            port = int(parts[7]) if len(parts) > 7 else self.port
            out.append(Request(end=float(parts[0]), method=parts[1], uri=parts[2],
                               status=int(parts[3]), sent=int(parts[4]),
                               received=int(parts[5]), seconds=float(parts[6]),
                               capped=bool(self.capped_port) and port == self.capped_port))
        return out

    def traffic_since(self, offset: int) -> tuple[int, int, int, list[str]]:
        """Requests logged since offset: (requests, bytes to client, bytes from client, bad lines)."""
        requests = self.requests_since(offset)
        errors = [f"{r.method} {r.uri} {r.status}" for r in requests if not 200 <= r.status < 300]
        return (len(requests), sum(r.received for r in requests), sum(r.sent for r in requests),
                errors)


@dataclass
class Request:
    """One request of the access log, as the client saw it: `sent` is the
    request's length (headers and body), `received` the response's."""

    end: float
    method: str
    uri: str
    status: int
    sent: int
    received: int
    seconds: float
    capped: bool


def group_gone(pgid: int, timeout: float) -> bool:
    """Wait until no process of a process group is left."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

