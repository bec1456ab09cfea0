#!/usr/bin/env bash
# Installs what `cargo xtask dist` needs on a fresh machine, and nothing when
# it is already there, so CI can call it on every run.
#
#   rustup targets   static musl Linux (x64, arm64) and Windows (GNU ABI)
#   ziglang (PyPI)   the C compiler/linker cargo-zigbuild drives; `ring` has C
#   cargo-zigbuild   cross-links every target with zig, no per-target gcc
#   tfx-cli (npm)    packs and validates the .vsix, kept under xtask/node_modules
#
# Versions are pinned: a packaging tool that changes under us changes what
# we ship.
set -euo pipefail
cd "$(dirname "$0")"

ZIGLANG_VERSION=0.14.1
CARGO_ZIGBUILD_VERSION=0.24.1
TFX_CLI_VERSION=0.23.1
TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl x86_64-pc-windows-gnu)

export PATH="$HOME/.cargo/bin:$PATH"

installed_targets=$(rustup target list --installed)
for target in "${TARGETS[@]}"; do
    if ! grep -qx "$target" <<<"$installed_targets"; then
        rustup target add "$target"
    fi
done

python=$(command -v python3 || command -v python)
if ! "$python" -m ziglang version 2>/dev/null | grep -qx "$ZIGLANG_VERSION"; then
    "$python" -m pip install --quiet "ziglang==$ZIGLANG_VERSION"
fi

if ! cargo-zigbuild --version 2>/dev/null | grep -q "$CARGO_ZIGBUILD_VERSION"; then
    cargo install --locked --quiet --version "$CARGO_ZIGBUILD_VERSION" cargo-zigbuild
fi

if [ "$(cat node_modules/tfx-cli/package.json 2>/dev/null | sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p')" != "$TFX_CLI_VERSION" ]; then
    if ! command -v npm >/dev/null; then
        apt-get update -qq && apt-get install -y -qq nodejs npm
    fi
    npm install --silent --no-save --no-package-lock --prefix . "tfx-cli@$TFX_CLI_VERSION"
fi

echo "tools: $(rustup target list --installed | tr '\n' ' ')"
echo "tools: zig $("$python" -m ziglang version), $(cargo-zigbuild --version), tfx-cli $TFX_CLI_VERSION"
