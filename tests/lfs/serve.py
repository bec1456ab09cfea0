"""Serves giftless for git-relay's LFS tests (tests/support/lfs.rs).

Usage: serve.py STORAGE_DIR

giftless stores objects under STORAGE_DIR and trusts every request: the Rust
front in tests/support/lfs.rs checks credentials before anything reaches it,
as a host's gateway would. It binds 127.0.0.1 on a port the kernel picks and
prints `port N` on stdout once it accepts connections, so the harness never
races another process for a port. It stops when its stdin closes, so a test
process that dies without dropping its LfsServer leaves no server behind.
"""

import logging
import os
import shutil
import sys
import threading
from pathlib import Path

from giftless.app import init_app
from giftless.auth.identity import Identity, Permission
from giftless.storage.local_storage import LocalStorage
from werkzeug.serving import make_server
from werkzeug.wsgi import FileWrapper


class TrustedUser(Identity):
    """Whoever the front let through may do anything.

    giftless's own `allow_anon:read_write` grants nothing on a request that
    names an object (its permission tree is looked up by oid), so object
    uploads and downloads would be refused with it.
    """

    def is_authorized(
        self,
        organization: str,
        repo: str,
        permission: Permission,
        oid: str | None = None,
    ) -> bool:
        return True


class BlockStorage(LocalStorage):
    """giftless's local storage, with three things a host does better.

    - Reads in blocks of 1 MiB: giftless hands the open file to the
      response, and iterating a binary file yields it line by line, a few
      hundred bytes of random data per write (100 MiB took seconds).
    - Directories made race-free: two uploads at once into a new
      repository both tried to create its directory, and one failed.
    - An object appears whole or not at all: it is written beside its
      final name and renamed, so a download or a size check never sees
      half an upload.
    """

    def get(self, prefix: str, oid: str):  # type: ignore[no-untyped-def]
        return FileWrapper(super().get(prefix, oid), 1 << 20)

    def put(self, prefix: str, oid: str, data_stream) -> int:  # type: ignore[no-untyped-def]
        path = self._get_path(prefix, oid)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{oid}.{threading.get_ident()}.partial")
        try:
            with partial.open("wb") as dest:
                shutil.copyfileobj(data_stream, dest, 1 << 20)
                size = dest.tell()
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return size

    @staticmethod
    def _create_path(spath: str) -> None:
        Path(spath).mkdir(parents=True, exist_ok=True)


def trusted(_request: object) -> TrustedUser:
    return TrustedUser(name="front")


def main() -> None:
    storage = sys.argv[1]
    app = init_app(
        additional_config={
            # Authentication is the front's job; here everyone may do all.
            "AUTH_PROVIDERS": ["__main__:trusted"],
            # No JWTs in actions: the front adds the header each action needs.
            "PRE_AUTHORIZED_ACTION_PROVIDER": None,
            # Paths as git-lfs derives them: <org-path>/<repo>.git/info/lfs/.
            "LEGACY_ENDPOINTS": False,
            "TRANSFER_ADAPTERS": {
                "basic": {
                    "options": {
                        "storage_class": "__main__:BlockStorage",
                        "storage_options": {"path": storage},
                    }
                }
            },
        }
    )
    # The front logs every request; one line each here would only be noise.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Threaded: git-lfs transfers several objects at once.
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"port {server.server_port}", flush=True)

    def watch_stdin() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
