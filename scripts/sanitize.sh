#!/usr/bin/env bash
# Build the native kernels (a2d_evo._C) with AddressSanitizer + UndefinedBehaviorSanitizer
# and run the native parity tests against that build.
#
#   scripts/sanitize.sh [extra pytest args]
#
# The sanitized module is installed with `pip install --target build/asan/site` (CUDA off,
# CMake option A2D_EVO_SANITIZE=ON, its own build dir build/asan/cmake), so the editable
# install in .venv is left as it is. The tests then run in an interpreter started with
# -S (no site .pth files, so the editable finder of .venv never loads) and -P (the working
# tree is not on sys.path), with the venv's site-packages appended for torch & co, and
# libasan preloaded because CPython itself is not instrumented. Leak detection is off:
# CPython keeps its interned objects alive at exit by design.
#
# Last line: "SANITIZE clean: ..." (exit 0) or "SANITIZE FAILED: ..." (exit 1).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
OUT="$ROOT/build/asan"
SITE="$OUT/site"
LOG="$OUT/pytest.log"
# SANITIZE_TESTS="a b" replaces the default list (the native parity tests).
read -r -a TESTS <<<"${SANITIZE_TESTS:-tests/test_preprocess.py tests/test_subnet_eval.py}"

fail() {
  echo "SANITIZE FAILED: $*"
  exit 1
}

[[ -x "$PY" ]] || fail "no python at $PY (set PYTHON=...)"
present=()
for t in "${TESTS[@]}"; do [[ -f "$t" ]] && present+=("$t"); done
((${#present[@]})) || fail "none of ${TESTS[*]} exists yet"

# ---------------------------------------------------------------- build + install
rm -rf "$SITE"
mkdir -p "$OUT"
echo "== building a2d_evo._C with ASan+UBSan into $SITE"
if ! A2D_EVO_CUDA=OFF "$PY" -m pip install --quiet --no-deps --no-build-isolation \
  --target "$SITE" \
  -Cbuild-dir="$OUT/cmake" \
  -Ccmake.build-type=RelWithDebInfo \
  -Ccmake.define.A2D_EVO_SANITIZE=ON \
  -Ccmake.define.A2D_EVO_CUDA=OFF \
  . >"$OUT/build.log" 2>&1; then
  tail -n 40 "$OUT/build.log"
  fail "build error (log: $OUT/build.log)"
fi
grep -q "SANITIZE=ON" "$OUT/cmake/CMakeCache.txt" "$OUT/build.log" 2>/dev/null ||
  grep -q "A2D_EVO_SANITIZE:BOOL=ON" "$OUT/cmake/CMakeCache.txt" ||
  fail "CMake did not take A2D_EVO_SANITIZE=ON"

LIBASAN="$(gcc -print-file-name=libasan.so)"
[[ -f "$LIBASAN" ]] || fail "libasan.so not found (gcc -print-file-name=libasan.so)"
VENV_SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

run_py() {
  # Never let the reference twins stand in for the native ops under test.
  env -u A2D_EVO_REFERENCE_OPS \
    PYTHONPATH="$SITE:$VENV_SITE" \
    LD_PRELOAD="$LIBASAN" \
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=1:exitcode=86:detect_odr_violation=0:strict_string_checks=1:check_initialization_order=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87" \
    "$PY" -S -P "$@"
}

# ---------------------------------------------------------------- the harness itself
# A clean run means something only if this setup reports bugs: a planted heap overflow
# and a planted signed overflow must both be caught.
cat >"$OUT/planted.c" <<'C_SOURCE'
#include <stdlib.h>
int heap_overflow(int i) { int *p = malloc(4 * sizeof(int)); int v = p[i]; free(p); return v; }
int signed_overflow(int a) { return a + 1; }
C_SOURCE
gcc -shared -fPIC -g -fsanitize=address,undefined -o "$OUT/planted.so" "$OUT/planted.c" ||
  fail "cannot compile the planted-bug library"
for call in "heap_overflow(4)" "signed_overflow(2147483647)"; do
  report="$(run_py -c "import ctypes; ctypes.CDLL('$OUT/planted.so').$call" 2>&1)"
  grep -q "ERROR: AddressSanitizer\|runtime error:" <<<"$report" ||
    fail "the harness missed a planted bug ($call): $(tail -n 3 <<<"$report")"
done
echo "== harness catches planted heap and signed overflows"

# ---------------------------------------------------------------- the module under test
where="$(run_py -c 'import a2d_evo._C as c; print(c.__file__)' 2>&1 | tail -n 1)"
[[ "$where" == "$SITE"/* ]] || fail "a2d_evo._C did not load from $SITE (got: $where)"
symbols="$(nm -D "$where")"
grep -q "__asan_init" <<<"$symbols" || fail "$where is not instrumented with ASan"
grep -q "__ubsan_handle" <<<"$symbols" || fail "$where is not instrumented with UBSan"
run_py -c 'from a2d_evo.ops.dispatch import native_module; assert native_module()' ||
  fail "the op dispatcher does not find the native module"
echo "== a2d_evo._C: $where (instrumented)"

# ---------------------------------------------------------------- the parity tests
echo "== pytest ${present[*]} $*"
run_py -m pytest -q -p no:cacheprovider "${present[@]}" "$@" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
summary="$(grep -E "^[0-9]+ (passed|failed)|(passed|failed|error).* in [0-9.]+s" "$LOG" | tail -n 1)"
if grep -q "ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer" "$LOG"; then
  fail "sanitizer report in $LOG ($(grep -m1 -E "ERROR: AddressSanitizer|runtime error:" "$LOG"))"
fi
((rc == 0)) || fail "pytest exit $rc: ${summary:-see $LOG}"
echo "SANITIZE clean: ASan+UBSan build of a2d_evo._C, ${present[*]}: ${summary}"
