#!/usr/bin/env bash
# npm run test:native-asan: memory checks of the libfuse3 addon and the chunk AEAD addon (native-bindings/aead).
#  1. AddressSanitizer + UBSan: both addons are rebuilt with -fsanitize=address,undefined
#     (build-asan/*.node, loaded through S3CRYPTFS_FUSE3_ADDON / S3CRYPTFS_AEAD_ADDON) and
#     test/native/addon.test.ts, test/native/aead.test.ts, test/engine/writer-runs.test.ts and
#     test/native/mount.test.ts (whose writes are sealed by the AEAD addon) run with the sanitizer runtime preloaded into node (not into the
#     commands the tests run). Any memory error aborts the run.
#  2. valgrind (memcheck) over test/native/addon.test.ts and test/native/aead.test.ts with the regular
#     builds: no leaked block and no error whose stack passes through fuse3.node or aead.node. (Node
#     leaks by design at exit; only our frames count.)
set -euo pipefail
cd "$(dirname "$0")/../.."
here=native-bindings/fuse3
node $here/build.mjs
node $here/build.mjs --asan
aead=native-bindings/aead
node $aead/build.mjs
node $aead/build.mjs --asan
asan=$(cc -print-file-name=libasan.so)
ubsan=$(cc -print-file-name=libubsan.so)
[[ -f $asan ]] || { echo "test:native-asan: libasan not found (apt-get install gcc)" >&2; exit 1; }
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
status=0

for f in test/native/addon.test.ts test/native/aead.test.ts test/engine/writer-runs.test.ts test/native/mount.test.ts; do
  echo "==> $f (AddressSanitizer + UBSan)" >&2
  S3CRYPTFS_MALLOC_REPLACED=1 S3CRYPTFS_FUSE3_ADDON="$PWD/$here/build-asan/fuse3.node" S3CRYPTFS_AEAD_ADDON="$PWD/$aead/build-asan/aead.node" S3CRYPTFS_STRIP_PRELOAD=1 S3CRYPTFS_NATIVE_QUICK=1 TAP_TIMEOUT=0 \
  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:log_path=$logdir/asan" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logdir/ubsan" \
  LD_PRELOAD="$asan:$ubsan" \
    node --import tsx "$f" > "$logdir/out" 2>&1 || status=$?
  grep -E '^(not ok|ok|# \{)' "$logdir/out" >&2 || true
  if grep -q '^not ok' "$logdir/out"; then status=1; fi
done
for log in "$logdir"/asan.* "$logdir"/ubsan.*; do
  [[ -f $log ]] || continue
  echo "==> sanitizer report ($log):" >&2
  cat "$log" >&2
  status=1
done

if command -v valgrind >/dev/null 2>&1; then
  for f in test/native/addon.test.ts test/native/aead.test.ts; do
    echo "==> $f (valgrind memcheck; slow)" >&2
    S3CRYPTFS_MALLOC_REPLACED=1 TAP_TIMEOUT=0 valgrind --leak-check=full --show-leak-kinds=definite,indirect --suppressions=$here/valgrind.supp \
      --log-file="$logdir/vg" node --import tsx "$f" > "$logdir/vgout" 2>&1 || status=$?
    grep -E '^# \{' "$logdir/vgout" >&2 || true
    if grep -q '^not ok' "$logdir/vgout"; then status=1; fi
    grep -E 'definitely lost|indirectly lost|ERROR SUMMARY' "$logdir/vg" >&2 || true
    # Error and leak records that pass through our code.
    if awk '/^==[0-9]+== $/{if (rec ~ /fuse3\.node|fuse3\.c|aead\.node|aead\.c/) {print rec; found=1} rec=""; next} {rec=rec "\n" $0} END{exit found?0:1}' "$logdir/vg" >&2; then
      echo "==> valgrind found the records above in our addons" >&2
      status=1
    fi
  done
else
  echo "==> valgrind not installed: skipping the leak check" >&2
fi
if ((status == 0)); then echo "test:native-asan: no memory errors; no leaks or errors in fuse3.node or aead.node" >&2; fi
exit "$status"
