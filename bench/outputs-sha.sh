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
