#!/usr/bin/env bash
# run_fuzz.sh TARGET SEEDS WORKDIR [SECONDS [libFuzzer flags...]]
# Runs the libFuzzer binary TARGET for SECONDS (default 30) on a copy of the seed corpus SEEDS,
# made afresh in WORKDIR/corpus (which gets the inputs it finds; WORKDIR/artifacts the crash,
# leak, timeout or out-of-memory input if there is one; the git tree is never written). Exits 0
# only when the target ran the whole time without any finding; prints the last coverage line and
# libFuzzer's final statistics, and on failure the end of the log. ctest runs it as fuzz_<target>.
set -uo pipefail
[ $# -ge 3 ] || { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
target=$1 seeds=$2 work=$3 secs=${4:-30}
shift $(($# >= 4 ? 4 : 3))
name=$(basename "$target")
here=$(cd "$(dirname "$0")" && pwd)
target=$(realpath "$target") seeds=$(realpath "$seeds") work=$(realpath -m "$work")
[ -x "$target" ] || { echo "run_fuzz: $target is not an executable"; exit 1; }
ls "$seeds"/* >/dev/null 2>&1 || { echo "run_fuzz: no seeds in $seeds"; exit 1; }
rm -rf "$work/corpus" "$work/artifacts" "$work/fuzz.log"
mkdir -p "$work/corpus" "$work/artifacts"
cp "$seeds"/* "$work/corpus/"
dict=()
[ -f "$here/$name.dict" ] && dict=(-dict="$here/$name.dict")
# leaks fail a run (libFuzzer checks after every input that allocated more than it freed)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"
cd "$work" || exit 1
"$target" -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
  -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${dict[@]}" "$@" \
  "$work/corpus" >"$work/fuzz.log" 2>&1
rc=$?
findings=$(ls "$work/artifacts" | wc -l)
if [ $rc -ne 0 ] || [ "$findings" -ne 0 ]; then
  tail -80 "$work/fuzz.log"
  echo "FAIL $name: libFuzzer exit code $rc, $findings input(s) in $work/artifacts:"
  ls -l "$work/artifacts"
  echo "reproduce: $target $work/artifacts/<file>"
  exit 1
fi
grep -E '^#[0-9]+ +DONE' "$work/fuzz.log" | tail -1
grep -E '^stat::' "$work/fuzz.log"
echo "ok $name: ${secs} s, $(ls "$work/corpus" | wc -l) inputs in the corpus ($(ls "$seeds" | wc -l) seeds)"
