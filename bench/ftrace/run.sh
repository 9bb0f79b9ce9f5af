#!/usr/bin/env bash
# bench/ftrace/run.sh [SIZE_MB]
#
# Times, in the same run and over the same page-cached file, `traceunwind rewrite` against
# `grep -c ' => '` (a lower bound: one pass that only looks for the frame marker), and reports
# the ratio and each command's peak RSS (/usr/bin/time -v). The trace (>= 1 GB by default) is
# generated from the real captures by gen_trace.py under bench/data/ (git-ignored).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
data="$repo/bench/data"
size=${1:-1100}
trace="$data/ftrace-${size}m.txt"
maps="$data/ftrace-maps.txt"
mkdir -p "$data"

dotnet build -c Release "$repo/tools/traceunwind" -v q -nologo >/dev/null
tu="$repo/tools/traceunwind/bin/Release/net10.0/traceunwind.dll"
[ -s "$trace" ] && [ -s "$maps" ] || python3 "$here/gen_trace.py" "$trace" "$maps" "$size"
bytes=$(stat -c %s "$trace")
cat "$trace" > /dev/null   # page cache: both commands read from memory

out=$(mktemp)
trap 'rm -f "$out"' EXIT
measure() {   # label, stdout target, command...: prints "label wall_s rss_kb"
    local label=$1 target=$2; shift 2
    local log; log=$(mktemp)
    /usr/bin/time -v "$@" > "$target" 2> "$log" || true
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$log")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$log")
    rm -f "$log"
    echo "$label $wall $rss"
}

echo "trace: $trace ($((bytes / 1024 / 1024)) MiB, $(nproc) CPUs, $(uname -r))"
results=()
# GNU grep stops at the first match when its stdout is /dev/null: give it a real file.
# The rewrite's 1.2 GB go to /dev/null (it does not look where its output goes).
results+=("$(measure "grep-c" "$out" grep -c ' => ' "$trace")")
results+=("$(measure "rewrite--maps" /dev/null dotnet "$tu" rewrite "$trace" --maps "$maps")")
results+=("$(measure "rewrite--maps--keep-address" /dev/null dotnet "$tu" rewrite "$trace" --maps "$maps" --keep-address)")
results+=("$(measure "rewrite-live" /dev/null dotnet "$tu" rewrite "$trace")")
results+=("$(measure "rewrite--maps-pipe" /dev/null sh -c "cat '$trace' | dotnet '$tu' rewrite --maps '$maps'")")
# The same with the runtime's tiered PGO off (DOTNET_TieredPGO=0, what <TieredPGO>false</TieredPGO> in
# tools/traceunwind/traceunwind.csproj would do): on a run this short, PGO-instrumented code costs more than PGO gains.
results+=("$(measure "rewrite--maps(TieredPGO=0)" /dev/null env DOTNET_TieredPGO=0 dotnet "$tu" rewrite "$trace" --maps "$maps")")
results+=("$(measure "rewrite-live(TieredPGO=0)" /dev/null env DOTNET_TieredPGO=0 dotnet "$tu" rewrite "$trace")")
results+=("$(measure "grep-c-again" "$out" grep -c ' => ' "$trace")")

grep_s=$(printf '%s\n' "${results[@]}" | awk '$1 == "grep-c" { print $2 }')
echo "grep -c ' => ': $(cat "$out")"
printf '%-30s %10s %10s %12s %10s\n' command wall_s MB/s peak_rss_MB x_grep
for r in "${results[@]}"; do
    set -- $r
    awk -v l="$1" -v w="$2" -v rss="$3" -v b="$bytes" -v g="$grep_s" \
        'BEGIN { printf "%-30s %10.2f %10.0f %12.1f %10.2f\n", l, w, b / 1048576 / w, rss / 1024, w / g }'
done
# The rewrite's own count, to show it did the work.
dotnet "$tu" rewrite "$trace" --maps "$maps" --stats 2>&1 >/dev/null | tail -1
