# Shared helpers for the bench/ scripts (sourced, not run).
# Builds the CLI once in Release and measures commands with /usr/bin/time.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
DATA="$BENCH_DIR/data"       # git-ignored: large generated inputs live here
OUT="$BENCH_DIR/out"         # git-ignored: the Release build
mkdir -p "$DATA" "$OUT"

build_cli() {
  if [ ! -x "$OUT/traceunwind/traceunwind" ] || [ -n "$(find "$REPO/lib" "$REPO/tools" -name '*.cs' -newer "$OUT/traceunwind/traceunwind" -print -quit)" ]; then
    dotnet publish "$REPO/tools/traceunwind/traceunwind.csproj" -c Release -o "$OUT/traceunwind" --nologo -v q >&2
  fi
  TU="$OUT/traceunwind/traceunwind"
}

# measure LABEL CMD...: runs CMD with stdout to /dev/null; sets WALL (s) and RSS (KiB); prints a row.
measure() {
  local label=$1; shift
  local tf; tf=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$tf" "$@" >/dev/null 2>"$tf.err" || { echo "failed: $*" >&2; cat "$tf.err" >&2; }
  read -r WALL RSS < <(tail -n 1 "$tf")
  rm -f "$tf" "$tf.err"
  printf '%-34s %9.2f s %9d KiB\n' "$label" "$WALL" "$RSS"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }'; }
