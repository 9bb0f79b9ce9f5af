# Shared helpers for the bench/ scripts (sourced, not run).
# Builds the CLI once in Release and measures commands with /usr/bin/time.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
DATA="$BENCH_DIR/data"       # git-ignored: large generated inputs live here
OUT="$BENCH_DIR/out"         # git-ignored: the Release build
mkdir -p "$DATA" "$OUT"

# Publishes the CLI in Release into bench/out/traceunwind (again when a source or project file is newer).
# tools/traceunwind publishes a native executable (Native AOT); where that cannot be built (no C
# toolchain), the JIT build is used instead. TU_BUILD says which one ran.
build_cli() {
  TU="$OUT/traceunwind/traceunwind"
  if [ ! -x "$TU" ] || [ -n "$(find "$REPO/lib" "$REPO/tools" \( -name '*.cs' -o -name '*.csproj' \) -newer "$TU" -print -quit)" ]; then
    rm -rf "$OUT/traceunwind"
    if ! dotnet publish "$REPO/tools/traceunwind/traceunwind.csproj" -c Release -o "$OUT/traceunwind" --nologo -v q >&2; then
      echo "native (AOT) publish failed; using the JIT build" >&2
      rm -rf "$OUT/traceunwind"
      dotnet publish "$REPO/tools/traceunwind/traceunwind.csproj" -c Release -p:PublishAot=false -o "$OUT/traceunwind" --nologo -v q >&2
    fi
  fi
  if [ -f "$OUT/traceunwind/traceunwind.dll" ]; then TU_BUILD="JIT (.NET $(dotnet --version) SDK)"; else TU_BUILD="Native AOT (.NET $(dotnet --version) SDK)"; fi
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
