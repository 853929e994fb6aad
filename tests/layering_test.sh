#!/usr/bin/env bash
# layering_test: the layers of lib/ only look down. Two checks:
#  1. The build refuses a wrong-way include: tests/layering/probe.c includes an nn header; built
#     as target layering_right_way (linked to siam_nn) it compiles, built as layering_wrong_way
#     (linked to siam_base, which sits below nn) it must fail for want of that header.
#  2. Every #include "siam_*.h" in lib/, server/, client/ and tools/ names a header of its own
#     layer or one below it (the table below is CMakeLists.txt's), gRPC headers appear only in
#     lib/net, and the wire (the generated protobuf headers, lib/wire's siam_wire.h, a siam
#     service name or method path) never in lib/: the programs and tools speak the protocol, the
#     layers below them take paths as parameters.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${SIAM_BIN_DIR:?SIAM_BIN_DIR is the build directory}
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

if ! out=$(cmake --build "$bin" --target layering_right_way 2>&1); then
  echo "$out" | tail -20; fail "the probe does not compile even against siam_nn"
fi
if out=$(cmake --build "$bin" --target layering_wrong_way 2>&1); then
  fail "siam_base code could include an nn header: the layers are not enforced by the build"
elif ! grep -q "siam_model.h" <<<"$out"; then
  echo "$out" | tail -20; fail "layering_wrong_way failed, but not for the wrong-way include"
else
  echo "ok: a base-layer source including siam_model.h does not build"
fi

# folder -> the folders whose headers it may include (itself first)
declare -A allowed=(
  [lib/base]="lib/base"
  [lib/nn]="lib/nn lib/base"
  [lib/data]="lib/data lib/base"
  [lib/eval]="lib/eval lib/nn lib/base"
  [lib/train]="lib/train lib/eval lib/data lib/nn lib/base"
  [lib/net]="lib/net lib/base"
  [lib/wire]="lib/wire"
  [server]="server lib/wire lib/net lib/train lib/eval lib/data lib/nn lib/base"
  [client]="client lib/wire lib/train lib/eval lib/data lib/nn lib/net lib/base"
  [tools/bench]="tools/bench server lib/wire lib/train lib/eval lib/data lib/nn lib/net lib/base"
  [tools/link]="tools/link lib/base"
)
checked=0
for dir in "${!allowed[@]}"; do
  for f in "$root/$dir"/*.[ch]; do
    [ -e "$f" ] || continue
    rel=${f#"$root"/}
    while IFS= read -r hdr; do
      found=""
      for d in lib/base lib/nn lib/data lib/eval lib/train lib/net lib/wire server client tools/bench tools/link; do
        [ -f "$root/$d/$hdr" ] && found=$d
      done
      [ -n "$found" ] || continue # generated or system header
      checked=$((checked + 1))
      [[ " ${allowed[$dir]} " == *" $found "* ]] || fail "$rel includes $found/$hdr: $dir may include only ${allowed[$dir]}"
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
    if [ "$dir" != lib/net ] && grep -qE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]grpc/(grpc|support|byte_buffer|slice)' "$f"; then
      fail "$rel includes a gRPC header: only lib/net may"
    fi
    if [[ $dir == lib/* && $dir != lib/wire ]] && grep -qE '\.pb-c\.h"' "$f"; then
      fail "$rel includes generated protobuf code: lib/ does not know the wire"
    fi
    if [[ $dir == lib/* && $dir != lib/wire ]] && grep -qE '"/?(siam\.v1\.|grpc\.health\.v1\.)' "$f"; then
      fail "$rel names a service or method of the wire ($(grep -oE '"/?(siam\.v1\.|grpc\.health\.v1\.)[^"]*' "$f" | head -1)\"): lib/ takes paths from its callers"
    fi
  done
done
[ $checked -gt 50 ] || fail "only $checked project includes were checked: is the tree where this test thinks ($root)?"
echo "checked $checked includes"
[ $fails -eq 0 ] && echo "layering_test: passed" || { echo "layering_test: $fails failure(s)"; exit 1; }
