#!/bin/sh
# Install what bench/run.py needs (Debian/Ubuntu, as root): nginx and fcgiwrap
# to serve git http-backend, GNU time to measure peak memory.
set -eu
apt-get update -qq
apt-get install -y -qq nginx fcgiwrap time
