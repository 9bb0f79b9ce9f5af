#!/usr/bin/env bash
# Byte-identity check for performance work: runs `traceunwind` script/fold/csv/report/convert with
# their main options over every perf.data fixture and the big bench capture, and prints one
# "sha256  case" line per run. Save the output before a change and diff it after:
#
#   bench/outputs-sha.sh > /tmp/before.sha   # on the old build
#   bench/outputs-sha.sh > /tmp/after.sha && diff /tmp/before.sha /tmp/after.sha
#
# usage: bench/outputs-sha.sh [--no-big] [--tu PATH]   (default: the Release build in bench/out)
source "$(dirname "$0")/common.sh"
BIG=1
TU=""
while [ $# -gt 0 ]; do
  case $1 in
    --no-big) BIG=0 ;;
    --tu) TU=$2; shift ;;
  esac
  shift
done
[ -n "$TU" ] || build_cli
KALLSYMS="$DATA/kallsyms"   # a fixed copy, so symbol names stay the same between runs
[ -s "$KALLSYMS" ] || cat /proc/kallsyms > "$KALLSYMS"

run() { # run NAME ARGS...: sha256 of stdout (and the exit code) of traceunwind ARGS
  local name=$1; shift
  local sum rc=0
  sum=$("$TU" "$@" 2>/dev/null | sha256sum | cut -c1-64) || rc=$?
  printf '%s  %s\n' "$sum" "$name"
}

cases() { # cases LABEL FILE [extra]
  local label=$1 f=$2
  run "$label script" script "$f"
  run "$label script --no-merge" script --no-merge "$f"
  run "$label script --kallsyms" script --kallsyms "$KALLSYMS" "$f"
  run "$label fold" fold "$f"
  run "$label fold --pid" fold --pid "$f"
  run "$label fold --tid --kernel" fold --tid --kernel "$f"
  run "$label fold --module-names --weight Period" fold --module-names --weight Period "$f"
  run "$label fold --kallsyms --kernel" fold --kallsyms "$KALLSYMS" --kernel "$f"
  run "$label csv" csv "$f"
  run "$label report" report "$f"
  run "$label convert speedscope" convert "$f"
  run "$label convert chromium" convert -f Chromium "$f"
}

while IFS= read -r f; do
  cases "${f#"$REPO"/}" "$f"
  run "${f#"$REPO"/} script (stdin)" script - < "$f"
done < <(find "$REPO/fixtures" -name '*.data' | sort)

inject() { # inject NAME FILE: sha256 of the perf.data `traceunwind inject` writes (and of its summary on stderr)
  local out="$DATA/outputs-sha.inject.tmp" sum
  rm -f "$out"
  "$TU" inject "$2" -o "$out" >/dev/null 2>"$out.err" || true
  sum=$(cat "$out" 2>/dev/null | sha256sum | cut -c1-64)
  printf '%s  %s\n' "$sum" "$1 inject"
  printf '%s  %s\n' "$(sha256sum < "$out.err" | cut -c1-64)" "$1 inject (summary)"
  rm -f "$out" "$out.err"
}
run_err() { # run_err NAME ARGS...: sha256 of stdout and of stderr (the end-of-run summary)
  local name=$1; shift
  local err="$DATA/outputs-sha.err.tmp" sum
  sum=$("$TU" "$@" 2>"$err" | sha256sum | cut -c1-64) || true
  printf '%s  %s\n' "$sum" "$name"
  printf '%s  %s\n' "$(sha256sum < "$err" | cut -c1-64)" "$name (stderr)"
  rm -f "$err"
}
while IFS= read -r f; do
  l=${f#"$REPO"/}
  inject "$l" "$f"
  run_err "$l fold" fold "$f"
  run_err "$l script --max-pending 2" script --max-pending 2 "$f"
  run_err "$l fold --max-pending 1" fold --max-pending 1 "$f"
done < <(find "$REPO/fixtures/perf-defer" -name '*.data' | sort)

if [ "$BIG" = 1 ] && [ -s "$DATA/big-fp.data" ]; then
  f="$DATA/big-fp.data"
  run "big script" script "$f"
  run "big script --kallsyms" script --kallsyms "$KALLSYMS" "$f"
  run "big script --symbols" script --symbols "$f"
  run "big fold" fold "$f"
  run "big fold --tid --kernel" fold --tid --kernel "$f"
  run "big fold --module-names" fold --module-names "$f"
  run "big fold --kallsyms --symbols" fold --kallsyms "$KALLSYMS" --symbols "$f"
  run "big csv" csv "$f"
  run "big report" report "$f"
  run "big convert speedscope" convert "$f"
fi

# The synthetic deferred capture of bench/defer (recur-defer x COPIES), when it has been made.
DEFER=$(find "$DATA" -maxdepth 1 -name 'recur-defer-x*.data' ! -name '*.injected*' | sort | head -1)
if [ "$BIG" = 1 ] && [ -n "$DEFER" ] && [ -s "$DEFER" ]; then
  f=$DEFER; l="defer $(basename "$f")"
  run "$l fold" fold "$f"
  run "$l fold --tid --kernel" fold --tid --kernel "$f"
  run "$l fold --no-merge" fold --no-merge "$f"
  run "$l script" script "$f"
  run "$l script --no-merge" script --no-merge "$f"
  run "$l report" report "$f"
  inject "$l" "$f"
fi
