#!/usr/bin/env bash
# Installs what s3cryptfs needs on a Debian/Ubuntu machine, then installs npm dependencies and builds.
#
#   scripts/setup.sh          # for the demo: Node.js (if missing), FUSE runtime
#   scripts/setup.sh --test   # for the whole test suite: also FUSE headers, rsync, fio, git, rclone, awscli
#
# Safe to re-run: system packages already present are not touched (and apt-get update is skipped when
# nothing is missing). Non-interactive; uses sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=demo
[[ "${1:-}" == "--test" ]] && mode=test

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 's3cryptfs setup: %s\n' "$*" >&2; exit 1; }

# ---- system packages --------------------------------------------------------------------------------
packages=(fuse3 libfuse2 ca-certificates)
if [[ $mode == test ]]; then
  # libfuse3-dev/libfuse-dev, build-essential, pkg-config, python3: native FUSE bindings (node-gyp).
  # rsync, fio, git, rclone, awscli: end-to-end tests against the mount and the S3 gateway.
  packages+=(libfuse3-dev libfuse-dev build-essential pkg-config python3 rsync fio git rclone awscli)
  # ruby-aws-sdk-s3, golang-go, golang-github-aws-aws-sdk-go-dev: AWS S3 Encryption Client interop tests (test/aws-cse).
  packages+=(ruby-aws-sdk-s3 golang-go golang-github-aws-aws-sdk-go-dev)
  # chromium: the dashboard is rendered headless and screenshotted (test/ops).
  packages+=(chromium)
  # s3cmd, python3-boto3: S3 clients driven against serve-s3 (test/e2e/gateway-*).
  packages+=(s3cmd python3-boto3)
fi

node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'
}
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

# The addons build against Node's headers: nodesource's nodejs ships them (OpenSSL's too); Debian's
# nodejs has them in libnode-dev and links the system OpenSSL, whose headers are libssl-dev's.
if [[ $mode == test ]] && command -v node >/dev/null 2>&1; then
  node_inc="$(dirname "$(dirname "$(command -v node)")")/include/node"
  [[ -f $node_inc/node_api.h || -f /usr/include/node/node_api.h ]] || packages+=(libnode-dev)
  [[ -f $node_inc/openssl/evp.h || -f /usr/include/node/openssl/evp.h ]] || packages+=(libssl-dev)
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
else
  say "not a Debian-based system: skipping system packages (${packages[*]})"
fi

if ((${#missing[@]})); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: ${missing[*]}"
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  say "apt-get install ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node_ok || die "Node.js >= 20.19 is required (found $(node --version 2>/dev/null || echo none)); Debian's own nodejs package may be older: install Node.js 20 or newer"

# ---- npm dependencies and build ---------------------------------------------------------------------
# `npm ci` runs only when node_modules is missing or older than the lockfile.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "npm ci"
  npm ci --no-audit --no-fund
fi
say "npm run build"
npm run --silent build
