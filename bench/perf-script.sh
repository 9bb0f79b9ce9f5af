#!/usr/bin/env bash
# Times `traceunwind script` and `traceunwind fold` against `perf script` on one large capture,
# in the same run, and prints the wall-time and peak-memory ratios (issue 2's goal: >= 10x faster).
#
# The capture is made here (never committed): `perf record -F 5000 -g -a` over a busy
# workload until the file is at least $MIN_MB MiB. Needs root and perf. Re-uses
# bench/data/big-fp.data when it exists (delete it to record anew).
#
# usage: bench/perf-script.sh [MIN_MB]
source "$(dirname "$0")/common.sh"
MIN_MB=${1:-120}
CAP="$DATA/big-fp.data"

record() {
  local scratch; scratch=$(mktemp -d)
  echo "recording system-wide until $CAP >= ${MIN_MB} MiB ..." >&2
  # A busy, varied workload: compression, a shell loop of short processes, file walking.
  ( cd "$scratch" && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      perf record -q -F 5000 -g -a -o "$CAP" -- sh -c '
        (while :; do head -c 20000000 /dev/urandom | gzip -1 > /dev/null; done) & a=$!
        (while :; do for i in 1 2 3 4 5 6 7 8; do ls /usr/lib > /dev/null; cat /etc/os-release > /dev/null; done; done) & b=$!
        (while :; do find /usr/share -name "*.gz" > /dev/null 2>&1; done) & c=$!
        while [ "$(stat -c %s '"$CAP"' 2>/dev/null || echo 0)" -lt $(('"$MIN_MB"' * 1048576)) ]; do sleep 1; done
        kill $a $b $c 2>/dev/null; wait 2>/dev/null; true' ) >&2 2>/dev/null || true
  rm -rf "$scratch"
}

[ -s "$CAP" ] || record
build_cli
size_mb=$(( $(stat -c %s "$CAP") / 1048576 ))
echo "capture: $CAP (${size_mb} MiB), $(perf --version), traceunwind $(git -C "$REPO" rev-parse --short HEAD)"
echo
measure "perf script" perf script -i "$CAP";                   P_WALL=$WALL; P_RSS=$RSS
measure "traceunwind script" "$TU" script "$CAP";               S_WALL=$WALL; S_RSS=$RSS
measure "traceunwind fold" "$TU" fold "$CAP";                   F_WALL=$WALL; F_RSS=$RSS
echo
echo "script: $(ratio "$P_WALL" "$S_WALL")x faster than perf script, peak memory $(ratio "$S_RSS" "$P_RSS")x of perf's"
echo "fold:   $(ratio "$P_WALL" "$F_WALL")x faster than perf script, peak memory $(ratio "$F_RSS" "$P_RSS")x of perf's"
