#!/usr/bin/env bash
# What the deferred-callchain joiner adds to `traceunwind fold` (issue 3: at most 10%).
#
# There is no kernel >= 6.19 here, so the large deferred capture is synthetic (never committed):
# fixtures/perf-defer/recur-defer (a real Linux 7.2.13 fp,defer capture) replicated COPIES times by
# bench/defer (new tids, shifted times), written to bench/data/ (git-ignored), plus the same samples
# with ordinary callchains (`traceunwind inject` of it).
#
# Compared, alternating, RUNS times each (min and median wall and CPU time in ms, peak RSS):
#   fold (joiner)            the deferred capture, joiner on (the default)
#   fold (injected+records)  the joined stacks as ordinary callchains plus the deferred records put back: the same
#                            input records and the same output, nothing to join -> the joiner's own cost
#   fold --no-merge          the deferred capture without the joiner (stacks end at the cookie: less to fold)
#   fold (injected)          the injected capture (no deferred records to read at all)
# then the in-process probe (steady state, no start-up or JIT: front end and fold to a null stream).
#
# usage: bench/defer/run.sh [COPIES] [RUNS]
source "$(dirname "$0")/../common.sh"
COPIES=${1:-400}
RUNS=${2:-7}
CAP="$DATA/recur-defer-x$COPIES.data"
PROBE="$OUT/defer-bench"

if [ ! -x "$PROBE/DeferBench" ] || [ -n "$(find "$REPO/lib" "$BENCH_DIR/defer" -name '*.cs' -newer "$PROBE/DeferBench" -print -quit)" ]; then
  dotnet publish "$BENCH_DIR/defer/DeferBench.csproj" -c Release -o "$PROBE" --nologo -v q >&2
fi
[ -s "$CAP" ] || "$PROBE/DeferBench" make "$CAP" "$COPIES"
build_cli
echo "capture: $CAP ($(( $(stat -c %s "$CAP") / 1048576 )) MiB, synthetic: recur-defer x$COPIES), traceunwind $(git -C "$REPO" rev-parse --short HEAD), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# One run: wall time in ms (bash's EPOCHREALTIME; /usr/bin/time's 10 ms steps are too coarse for a few %), CPU time
# (user + sys) in ms and peak RSS from /usr/bin/time.
declare -A walls cpus
run_one() { # run_one KEY LABEL CMD...
  local key=$1 label=$2; shift 2
  local tf t0 t1 wall u s rss
  tf=$(mktemp)
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%U %S %M' -o "$tf" "$@" >/dev/null 2>"$tf.err" || { echo "failed: $*" >&2; cat "$tf.err" >&2; }
  t1=$EPOCHREALTIME
  read -r u s rss < <(tail -n 1 "$tf")
  rm -f "$tf" "$tf.err"
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
  cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.0f", (u + s) * 1000 }')
  walls[$key]+="$wall "
  cpus[$key]+="$cpu "
  printf '%-26s %6d ms wall %6d ms CPU %9d KiB\n' "$label" "$wall" "$cpu" "$rss"
}
cat "$CAP" "$CAP.injected+records.data" "$CAP.injected.data" >/dev/null # in the page cache before the first run
for i in $(seq "$RUNS"); do
  run_one join "fold (joiner)" "$TU" fold "$CAP"
  run_one records "fold (injected+records)" "$TU" fold "$CAP.injected+records.data"
  run_one nomerge "fold --no-merge" "$TU" fold --no-merge "$CAP"
  run_one injected "fold (injected)" "$TU" fold "$CAP.injected.data"
done
sorted() { tr ' ' '\n' <<<"$1" | grep . | sort -n; }
minof() { sorted "$1" | head -1; }
medof() { sorted "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
stats() { printf 'wall min %4d ms, median %4d ms; CPU min %4d ms, median %4d ms' "$(minof "${walls[$1]}")" "$(medof "${walls[$1]}")" "$(minof "${cpus[$1]}")" "$(medof "${cpus[$1]}")"; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f %%", (a / b - 1) * 100 }'; }
vs() { # vs A B: A against B, wall min / wall median / CPU median
  printf 'wall %s (min) %s (median), CPU %s (median)' "$(pct "$(minof "${walls[$1]}")" "$(minof "${walls[$2]}")")" \
    "$(pct "$(medof "${walls[$1]}")" "$(medof "${walls[$2]}")")" "$(pct "$(medof "${cpus[$1]}")" "$(medof "${cpus[$2]}")")"
}
echo
echo "fold (joiner):           $(stats join)"
echo "fold (injected+records): $(stats records)"
echo "fold --no-merge:         $(stats nomerge)"
echo "fold (injected):         $(stats injected)"
echo "joiner's own cost (vs injected+records): $(vs join records)"
echo "vs --no-merge: $(vs join nomerge)"
echo "vs injected:   $(vs join injected)"
echo
"$PROBE/DeferBench" probe "$CAP" "$RUNS"
