#!/bin/sh
# Install what bench/run.py needs (Debian/Ubuntu, as root): nginx and fcgiwrap
# to serve git http-backend, GNU time to measure peak memory; for the Git LFS
# scenarios, the git-lfs client and giftless (the LFS server the tests run,
# pinned, into target/lfs-python: tests/lfs/install.sh).
set -eu
apt-get update -qq
apt-get install -y -qq nginx fcgiwrap time git-lfs python3 python3-pip
bash "$(dirname "$0")/../tests/lfs/install.sh"
