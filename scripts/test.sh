#!/usr/bin/env bash
# The test command: installs what is missing, checks formatting, then builds and runs the whole
# suite twice, in the normal build (gcc) and in the AddressSanitizer + UBSan build (clang), which
# also has the libFuzzer targets of tests/fuzz: each fuzzes for SIAM_FUZZ_SECONDS (default 30)
# as a test of its own (every target in tests/fuzz; docs/DEVELOPING.md lists them).
#   scripts/test.sh            both builds
#   scripts/test.sh --quick    normal build only
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=0
[ "${1:-}" = "--quick" ] && quick=1

scripts/install-deps.sh

echo "== format check (clang-format)"
unformatted=$(for f in $(git ls-files '*.c' '*.h' 2>/dev/null || find lib client server tools tests -name '*.[ch]'); do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || echo "$f"; done)
if [ -n "$unformatted" ]; then
  echo "not formatted (run clang-format -i on them):"; echo "$unformatted"; exit 1
fi

run_suite() {
  local dir=$1 cc=$2; shift 2
  # CMake keeps the compiler a build directory was first configured with: start afresh if the
  # directory was made with another one
  if [ -f "$dir/CMakeCache.txt" ] && ! grep -q "^CMAKE_C_COMPILER:[A-Z]*=\(.*/\)\?$cc\$" "$dir/CMakeCache.txt"; then
    echo "== $dir was configured with another compiler: removing it"
    rm -rf "$dir"
  fi
  echo "== build $dir (CC=$cc $*)"
  CC=$cc cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
  echo "== test $dir"
  (cd "$dir" && ctest --output-on-failure) | tee "$dir/ctest.log"
  local n
  n=$(sed -n 's/.*tests passed, 0 tests failed out of \([0-9]*\).*/\1/p' "$dir/ctest.log")
  total=$((total + ${n:-0}))
}
total=0

run_suite build/normal "${CC:-cc}"
if [ $quick -eq 0 ]; then
  # leak checks on; OpenBLAS's thread pool is not instrumented, so keep its threads to one.
  # clang: libFuzzer comes with it, and its UBSan checks more than gcc's
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_suite build/sanitize clang -DSIAM_SANITIZE=ON -DSIAM_FUZZ=ON \
    -DSIAM_FUZZ_SECONDS="${SIAM_FUZZ_SECONDS:-30}"
fi
echo "== all test suites passed"
echo "tests: $total passed, 0 failed"
