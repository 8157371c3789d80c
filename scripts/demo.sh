#!/usr/bin/env bash
# One-command demo on a fresh Debian machine: installs what is missing (scripts/setup.sh), then runs
# `s3cryptfs demo`: a local S3 server (s3rver, data under ./.s3cryptfs-demo/s3), a new key
# (./.s3cryptfs-demo/demo.key, mode 0600), an initialised bucket s3://demo, and then either the FUSE
# mount at ./.s3cryptfs-demo/mnt (once `s3cryptfs mount` exists) or a put/get/ls round trip that shows
# the bucket holds only ciphertext. Extra arguments go to `s3cryptfs demo` (e.g. --serve, --no-mount).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec ./bin/s3cryptfs.js demo "$@" # as an executable: its shebang adds the node flags
