#!/usr/bin/env bash
# Installs what the LFS tests need, if missing: the git-lfs client (Debian's
# package) and giftless, the LFS server tests/support/lfs.rs runs, with the
# pinned packages of requirements.txt beside this file.
#
# giftless goes into one directory of its own (pip --target), by default
# target/lfs-python in the repository, or $GIT_RELAY_TEST_GIFTLESS (the
# tests read the same variable): no virtualenv module, no user or system
# site-packages touched, so it works the same for root, for a user, and on a
# Debian whose system Python refuses pip installs (PEP 668). Running it again
# does nothing unless requirements.txt or the Python version changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dest="${GIT_RELAY_TEST_GIFTLESS:-$repo/target/lfs-python}"

apt_install() {
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    local log
    log="$(mktemp)"
    # Quiet unless it fails: apt's progress and debconf notes are noise.
    if ! { "${sudo[@]}" apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@"; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

if ! command -v git-lfs >/dev/null; then
    echo "installing git-lfs"
    apt_install git-lfs
fi

command -v python3 >/dev/null || apt_install python3
python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip

# What the installed copy was made from: the pins and the interpreter.
stamp="$( (cat "$here/requirements.txt"; python3 -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$dest/.installed" 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi

echo "installing giftless into $dest"
# Into a fresh directory first, so an interrupted install is never taken for
# a finished one.
mkdir -p "$(dirname "$dest")"
tmp="$(mktemp -d "$dest.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    --no-deps --no-warn-script-location --target "$tmp" -r "$here/requirements.txt"
PYTHONPATH="$tmp" python3 -s -c 'import giftless.app, werkzeug.serving'
echo "$stamp" >"$tmp/.installed"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
