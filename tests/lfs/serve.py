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
import sys
import threading

from giftless.app import init_app
from giftless.auth.identity import Identity, Permission
from werkzeug.serving import make_server


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
                "basic": {"options": {"storage_options": {"path": storage}}}
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
