#!/usr/bin/env bash
# coretype_test: inference answers do not depend on which kernels OpenBLAS picks. Under every
# OPENBLAS_CORETYPE of Haswell, SkylakeX, Zen, Sandybridge and Prescott that this CPU can run
# (read from /proc/cpuinfo; the others are skipped, saying why) and with OPENBLAS_NUM_THREADS 1 and
# 2, it runs
#   test_embed_shape  an image's embedding is the same bits alone or at any row of any batch;
#                     it prints OpenBLAS's core name, which must be the type asked for (proof that
#                     the library used it), and a hash of the embeddings' bits, which must be the
#                     same under every type and thread count (the inference product is our own)
#   test_service_sync image Similarity: an image and itself at distance exactly 0, distances equal
#                     to embeddings computed elsewhere
#   test_averaging    the averaging's rounds, bit for bit
#   test_service      the loss head's answers and gradients
# Exits 77 (skipped) when the CPU can run none of the types (not x86-64).
set -uo pipefail
bin=${SIAM_BIN_DIR:?SIAM_BIN_DIR is the build directory}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 runs=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
# the instructions each core type's kernels use (/proc/cpuinfo calls SSE3 "pni")
declare -A needs=(
  [Haswell]="avx2 fma"
  [SkylakeX]="avx512f avx512cd avx512bw avx512dq avx512vl avx2 fma"
  [Zen]="avx2 fma"
  [Sandybridge]="avx"
  [Prescott]="pni"
)
hash_seen="" hash_from=""
for type in Haswell SkylakeX Zen Sandybridge Prescott; do
  missing=""
  for f in ${needs[$type]}; do
    [[ $flags == *" $f "* ]] || missing+=" $f"
  done
  if [ -n "$missing" ]; then
    echo "skip $type: this CPU lacks${missing}"
    continue
  fi
  for threads in 1 2; do
    what="OPENBLAS_CORETYPE=$type OPENBLAS_NUM_THREADS=$threads"
    export OPENBLAS_CORETYPE=$type OPENBLAS_NUM_THREADS=$threads
    runs=$((runs + 1))
    out=$tmp/embed.out
    if ! SIAM_EMBED_QUICK=1 "$bin/test_embed_shape" >"$out" 2>&1; then
      tail -20 "$out"; fail "$what: test_embed_shape"
    fi
    core=$(sed -n 's/^openblas core \([^,]*\), threads \([0-9]*\)$/\1/p' "$out")
    used_threads=$(sed -n 's/^openblas core [^,]*, threads \([0-9]*\)$/\1/p' "$out")
    if [ "${core,,}" != "${type,,}" ]; then
      fail "$what: OpenBLAS used core '$core'"
    elif [ "$used_threads" != "$threads" ]; then
      fail "$what: OpenBLAS used $used_threads threads"
    fi
    hash=$(sed -n 's/^embedding bits hash \([0-9a-f]*\)$/\1/p' "$out")
    if [ -z "$hash" ]; then
      fail "$what: test_embed_shape printed no hash"
    elif [ -z "$hash_seen" ]; then
      hash_seen=$hash hash_from=$what
    elif [ "$hash" != "$hash_seen" ]; then
      fail "$what: embeddings hash $hash, $hash_seen under $hash_from"
    fi
    for t in test_averaging test_service test_service_sync; do
      if ! "$bin/$t" >"$tmp/$t.out" 2>&1; then
        grep FAIL "$tmp/$t.out" | head -10; fail "$what: $t"
      fi
    done
    [ "$fails" -eq 0 ] && echo "ok   $what: core $core, embeddings hash $hash, 3 tests passed"
  done
done
if [ "$runs" -eq 0 ]; then
  echo "skip: this CPU runs none of the core types"
  exit 77
fi
if [ "$fails" -ne 0 ]; then
  echo "$fails failures in $runs runs"
  exit 1
fi
echo "all $runs runs passed, embeddings the same bits under each"
