#!/usr/bin/env bash
# What the deferred-callchain joiner adds to `traceunwind fold` (issue 3: at most 10%).
#
# There is no kernel >= 6.19 here, so the large deferred capture is synthetic (never committed):
# fixtures/perf-defer/recur-defer (a real Linux 7.2.13 fp,defer capture) replicated COPIES times by
# bench/defer (new tids, shifted times), written to bench/data/ (git-ignored), plus the same samples
# with ordinary callchains (`traceunwind inject` of it).
#
# Compared, alternating, RUNS times each (min and median wall time, peak RSS):
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

declare -A walls
for i in $(seq "$RUNS"); do
  measure "fold (joiner)" "$TU" fold "$CAP";                                      walls[join]+="$WALL "
  measure "fold (injected+records)" "$TU" fold "$CAP.injected+records.data";      walls[records]+="$WALL "
  measure "fold --no-merge" "$TU" fold --no-merge "$CAP";                         walls[nomerge]+="$WALL "
  measure "fold (injected)" "$TU" fold "$CAP.injected.data";                      walls[injected]+="$WALL "
done
stats() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {printf "min %.2f s, median %.2f s", a[1], a[int((NR+1)/2)]}'; }
mins() { tr ' ' '\n' <<<"$1" | grep . | sort -n | head -1; }
pct() { awk -v a="$(mins "$1")" -v b="$(mins "$2")" 'BEGIN { printf "%+.1f %%", (a / b - 1) * 100 }'; }
echo
echo "fold (joiner):           $(stats "${walls[join]}")"
echo "fold (injected+records): $(stats "${walls[records]}")"
echo "fold --no-merge:         $(stats "${walls[nomerge]}")"
echo "fold (injected):         $(stats "${walls[injected]}")"
echo "joiner's own cost (vs injected+records, min): $(pct "${walls[join]}" "${walls[records]}")"
echo "vs --no-merge (min): $(pct "${walls[join]}" "${walls[nomerge]}"); vs injected (min): $(pct "${walls[join]}" "${walls[injected]}")"
echo
"$PROBE/DeferBench" probe "$CAP" "$RUNS"
