#!/usr/bin/env bash
# Times `traceunwind script` and `traceunwind fold` against `perf script` on one large capture,
# in the same run, and prints the wall-time and peak-memory ratios (issue 2's goal: >= 10x faster,
# memory that does not grow with the file).
#
# The captures are made here (never committed): `perf record -F 5000 -g -a` over a busy workload
# until the file is at least MIN_MB MiB (bench/data/big-fp.data), and a second one a quarter of that
# size (bench/data/small-fp.data). Needs root and perf. Existing files are re-used (delete them to
# record anew).
#
# Timing: RUNS rounds (default 5), each running perf script, traceunwind script and traceunwind
# fold once on the big capture, one after the other; the table gives each command's median wall
# time, its median CPU time (user+sys) and its largest peak RSS. On a shared machine the wall time
# of a two-threaded run depends on whether a second core is free: the CPU column says what the work
# itself cost.
#
# Memory: peak RSS on the small capture, the big one, and the big one with every sample written
# twice (bench/data/big-fp-x2.data, made by bench/perf; only traceunwind reads it, see there): the
# same processes and distinct stacks with twice the samples.
#
# usage: bench/perf-script.sh [MIN_MB] [RUNS]
source "$(dirname "$0")/common.sh"
MIN_MB=${1:-120}
RUNS=${2:-5}
CAP="$DATA/big-fp.data"
SMALL="$DATA/small-fp.data"
X2="$DATA/big-fp-x2.data"

record() { # record FILE MIN_MB
  local file=$1 min=$2 scratch; scratch=$(mktemp -d)
  echo "recording system-wide until $file >= ${min} MiB ..." >&2
  # A busy, varied workload: compression, a shell loop of short processes, file walking.
  ( cd "$scratch" && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      perf record -q -F 5000 -g -a -o "$file" -- sh -c '
        (while :; do head -c 20000000 /dev/urandom | gzip -1 > /dev/null; done) & a=$!
        (while :; do for i in 1 2 3 4 5 6 7 8; do ls /usr/lib > /dev/null; cat /etc/os-release > /dev/null; done; done) & b=$!
        (while :; do find /usr/share -name "*.gz" > /dev/null 2>&1; done) & c=$!
        while [ "$(stat -c %s '"$file"' 2>/dev/null || echo 0)" -lt $(('"$min"' * 1048576)) ]; do sleep 1; done
        kill $a $b $c 2>/dev/null; wait 2>/dev/null; true' ) >&2 2>/dev/null || true
  rm -rf "$scratch"
}

[ -s "$CAP" ] || record "$CAP" "$MIN_MB"
[ -s "$SMALL" ] || record "$SMALL" $((MIN_MB / 4))
build_cli
if [ ! -s "$X2" ] || [ "$X2" -ot "$CAP" ]; then
  dotnet run -c Release --project "$BENCH_DIR/perf/PerfBench.csproj" -- --repeat-samples 2 "$CAP" "$X2" >&2
fi

mib() { echo $(( $(stat -L -c %s "$1") / 1048576 )); }
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tools: $(perf --version); traceunwind $(git -C "$REPO" rev-parse --short HEAD), $TU_BUILD"
echo "capture: $CAP ($(mib "$CAP") MiB, $(perf report -i "$CAP" --stats 2>/dev/null | awk '/SAMPLE events:/ {print $3; exit}') samples)"
echo

# run LABEL CMD...: one run, stdout to /dev/null; sets WALL (s), CPU (s), RSS (KiB).
run() {
  local tf; tf=$(mktemp)
  /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" >/dev/null 2>"$tf.err" || { echo "failed: $*" >&2; cat "$tf.err" >&2; }
  read -r WALL U S RSS < <(tail -n 1 "$tf")
  CPU=$(awk -v u="$U" -v s="$S" 'BEGIN { printf "%.2f", u + s }')
  rm -f "$tf" "$tf.err"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maxof() { tr ' ' '\n' | grep . | sort -g | tail -n 1; }

declare -A W C R
LABELS=("perf script" "traceunwind script" "traceunwind fold")
for ((r = 1; r <= RUNS; r++)); do
  run perf script -i "$CAP";   W[0]+="$WALL "; C[0]+="$CPU "; R[0]+="$RSS "
  run "$TU" script "$CAP";     W[1]+="$WALL "; C[1]+="$CPU "; R[1]+="$RSS "
  run "$TU" fold "$CAP";       W[2]+="$WALL "; C[2]+="$CPU "; R[2]+="$RSS "
done
printf '%-22s %12s %12s %14s   (%d runs each, interleaved)\n' "big capture" "wall (med)" "CPU (med)" "peak RSS (max)" "$RUNS"
for i in 0 1 2; do
  MW[$i]=$(median <<<"${W[$i]}"); MC[$i]=$(median <<<"${C[$i]}"); MR[$i]=$(maxof <<<"${R[$i]}")
  printf '%-22s %10.2f s %10.2f s %10d KiB   walls: %s\n' "${LABELS[$i]}" "${MW[$i]}" "${MC[$i]}" "${MR[$i]}" "${W[$i]}"
done
echo
echo "script: $(ratio "${MW[0]}" "${MW[1]}")x faster than perf script (wall; CPU $(ratio "${MC[0]}" "${MC[1]}")x), peak memory $(ratio "${MR[1]}" "${MR[0]}")x of perf's"
echo "fold:   $(ratio "${MW[0]}" "${MW[2]}")x faster than perf script (wall; CPU $(ratio "${MC[0]}" "${MC[2]}")x), peak memory $(ratio "${MR[2]}" "${MR[0]}")x of perf's"

echo
printf '%-40s %16s %20s %18s\n' "peak RSS by input" "perf script" "traceunwind script" "traceunwind fold"
for f in "$SMALL" "$CAP" "$X2"; do
  if [ "$f" = "$X2" ]; then p="n/a"; label="big, every sample twice ($(mib "$f") MiB)"
  else run perf script -i "$f"; p="$RSS KiB"; label="$(basename "$f") ($(mib "$f") MiB)"; fi
  run "$TU" script "$f"; s=$RSS
  run "$TU" fold "$f"; fo=$RSS
  printf '%-40s %16s %16s KiB %14s KiB\n' "$label" "$p" "$s" "$fo"
done
