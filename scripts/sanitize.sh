#!/usr/bin/env bash
# Build the native kernels (a2d_evo._C) with AddressSanitizer + UndefinedBehaviorSanitizer
# and run the native parity tests against that build.
#
#   scripts/sanitize.sh [extra pytest args]
#   scripts/sanitize.sh --committed [extra pytest args]   # HEAD, not the working tree
#
# --committed exports HEAD (git archive) to build/asan/src and runs there, so edits in
# progress in the working tree cannot make the record; the outcome line names the commit.
#
# The sanitized module is installed with `pip install --target build/asan/site` (CUDA off,
# CMake option A2D_EVO_SANITIZE=ON, its own build dir build/asan/cmake), so the editable
# install in .venv is left as it is. The tests then run in an interpreter started with
# -S (no site .pth files, so the editable finder of .venv never loads) and -P (the working
# tree is not on sys.path), with the venv's site-packages appended for torch & co, and
# libasan (then libstdc++) preloaded because CPython itself is not instrumented. Leak
# detection is off: CPython keeps its interned objects alive at exit by design.
#
# Last line: "SANITIZE clean: ..." (exit 0) or "SANITIZE FAILED: ..." (exit 1).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$HERE/.venv/bin/python}"
ROOT="$HERE"
WHAT="working tree"
if [[ "${1:-}" == "--committed" ]]; then
  shift
  commit="$(git -C "$HERE" rev-parse --short HEAD)" || {
    echo "SANITIZE FAILED: not a git checkout"
    exit 1
  }
  ROOT="$HERE/build/asan/src"
  rm -rf "$ROOT" && mkdir -p "$ROOT"
  git -C "$HERE" archive HEAD | tar -x -C "$ROOT" || {
    echo "SANITIZE FAILED: git archive"
    exit 1
  }
  WHAT="commit $commit"
  echo "== sanitizing $WHAT (exported to $ROOT)"
fi
cd "$ROOT"
OUT="$ROOT/build/asan"
SITE="$OUT/site"
LOG="$OUT/pytest.log"
# ASan reports go to files (log_path); UBSan, which ignores log_path next to ASan, writes
# to fd 2, which pytest is told to leave alone (--capture=sys): a sanitizer that halts the
# process would leave pytest no chance to print what it had captured.
REPORTS="$OUT/reports"
# SANITIZE_TESTS="a b" replaces the default list (the native parity tests).
read -r -a TESTS <<<"${SANITIZE_TESTS:-tests/test_preprocess.py tests/test_subnet_eval.py tests/test_population.py}"

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
# libstdc++ preloaded right after libasan: CPython does not link it, and without it ASan
# cannot intercept __cxa_throw and aborts at the first C++ exception (a kernel refusing
# bad input) with "CHECK failed: ... real___cxa_throw".
LIBSTDCXX="$(gcc -print-file-name=libstdc++.so)"
[[ -f "$LIBSTDCXX" ]] || fail "libstdc++.so not found (gcc -print-file-name=libstdc++.so)"
VENV_SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

run_py() {
  # Never let the reference twins stand in for the native ops under test.
  env -u A2D_EVO_REFERENCE_OPS \
    PYTHONPATH="$SITE:$VENV_SITE" \
    LD_PRELOAD="$LIBASAN $LIBSTDCXX" \
    ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:exitcode=86:detect_odr_violation=0:check_initialization_order=1:log_path=$REPORTS/asan" \
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
  rm -rf "$REPORTS" && mkdir -p "$REPORTS"
  said="$(run_py -c "import ctypes; ctypes.CDLL('$OUT/planted.so').$call" 2>&1)"
  { cat "$REPORTS"/* 2>/dev/null; printf '%s\n' "$said"; } >"$OUT/planted.log"
  grep -q "ERROR: AddressSanitizer\|runtime error:" "$OUT/planted.log" ||
    fail "the harness missed a planted bug ($call)"
done
rm -rf "$REPORTS" && mkdir -p "$REPORTS"
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
run_py -m pytest -q -p no:cacheprovider --capture=sys "${present[@]}" "$@" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
summary="$(grep -E "^[0-9]+ (passed|failed)|(passed|failed|error).* in [0-9.]+s" "$LOG" | tail -n 1)"
if compgen -G "$REPORTS/*" >/dev/null; then
  first="$(ls "$REPORTS"/* | head -n 1)"
  sed -n '1,60p' "$first"
  fail "ASan report(s) in $REPORTS: $(grep -m1 -hE "ERROR: AddressSanitizer.*" "$REPORTS"/* | head -n 1)"
fi
if grep -q "runtime error:" "$LOG"; then
  fail "UBSan report in $LOG: $(grep -m1 "runtime error:" "$LOG")"
fi
((rc == 0)) || fail "pytest exit $rc: ${summary:-see $LOG}"
echo "SANITIZE clean: ASan+UBSan build of a2d_evo._C ($WHAT), ${present[*]}: ${summary}"
