"""The CUDA kernels' own source (``csrc/*.cu`` and the ``*.cuh`` headers they include), run
on the CPU under an emulation of the CUDA runtime (``tests/cuda_emu/cuda_shim.h``: a
std::thread per CUDA thread, barriers that check every thread reaches each one, shared memory
of exactly the launch's size) and, where the compiler has it, AddressSanitizer and UBSan,
against the native CPU kernels. No GPU has run these kernels (none is lent to this project's
machines): this checks their indexing, shared memory sizing, barriers and launch
configuration, not a GPU's behaviour (warps, memory model, device intrinsics, which take their
host branch here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from a2d_evo.ops.dispatch import REFERENCE_ENV_VAR

ROOT = Path(__file__).resolve().parents[1]
EMU = ROOT / "tests" / "cuda_emu"
KERNELS = ("preprocess_cuda.cu", "subnet_eval_cuda.cu")


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [*parts, cur.strip()]


def emulated_source(cu: str) -> str:
    """A ``.cu`` file as C++ over the shim: its runtime header, its shared memory (dynamic: the
    running block's buffer; static: one array, as blocks run one at a time) and its launches
    (``k<<<grid, block, smem, stream>>>(args)`` -> ``emu::launch(grid, block, smem, ...)``)."""
    src = cu.replace("#include <cuda_runtime.h>", '#include "cuda_shim.h"')
    src = re.sub(
        r"extern __shared__ (\w+) (\w+)\[\];",
        r"\1* \2 = reinterpret_cast<\1*>(emu::dynamic_shared);",
        src,
    )
    src = re.sub(r"__shared__ (\w+)", r"static \1", src)

    def launch(m: re.Match[str]) -> str:
        cfg = _split_top(m.group(2))
        smem = cfg[2] if len(cfg) > 2 else "0"
        return (
            f"emu::launch(dim3({cfg[0]}), dim3({cfg[1]}), {smem}, "
            f"[&] {{ {m.group(1)}({m.group(3)}); }});"
        )

    src = re.sub(r"(\w+)<<<(.*?)>>>\((.*?)\);", launch, src, flags=re.S)
    assert "<<<" not in src and "__shared__" not in src, "a launch or shared array left as is"
    return src


def test_emulated_source_rewrites_launches_and_shared_memory() -> None:
    src = emulated_source(
        "#include <cuda_runtime.h>\n"
        "__global__ void k(float* a) { extern __shared__ float sm[]; __shared__ int t[4]; }\n"
        "void f(float* a, cudaStream_t s) { k<<<dim3(n, 2), 256, bytes(p, 8), s>>>(g(a, 1), 2); "
        "k<<<n, 64>>>(a); }\n"
    )
    assert '#include "cuda_shim.h"' in src
    assert "float* sm = reinterpret_cast<float*>(emu::dynamic_shared);" in src
    assert "static int t[4];" in src
    assert "emu::launch(dim3(dim3(n, 2)), dim3(256), bytes(p, 8), [&] { k(g(a, 1), 2); });" in src
    assert "emu::launch(dim3(n), dim3(64), 0, [&] { k(a); });" in src


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")


def _build(cxx: str, out: Path, sanitize: bool) -> subprocess.CompletedProcess[str]:
    """Compile the sources side by side (one process each), then link ``libemu.so``."""
    cpu = ("subnet_eval_cpu.cpp", "subnet_gemm_cpu.cpp", "subnet_meta.cpp")
    sources = [str(EMU / "capi.cpp"), *(str(ROOT / "csrc" / name) for name in cpu)]
    for name in KERNELS:
        path = out / name.replace(".cu", "_emu.cpp")
        path.write_text(emulated_source((ROOT / "csrc" / name).read_text()))
        sources.append(str(path))
    # the kernels' own headers, rewritten too: a quoted include finds these copies beside the
    # rewritten .cu files before -I csrc
    for header in (ROOT / "csrc").glob("*.cuh"):
        (out / header.name).write_text(emulated_source(header.read_text()))
    flags = ["-std=c++20", "-O1", "-g", "-fPIC", "-pthread", "-DA2D_WITH_CUDA=1"]
    if sanitize:
        flags += ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                  "-fno-omit-frame-pointer"]  # fmt: skip
    objects = [str(out / f"{i}.o") for i in range(len(sources))]
    include = [f"-I{EMU}", f"-I{ROOT / 'csrc'}"]
    jobs = [
        subprocess.Popen(
            [cxx, *flags, *include, "-c", src, "-o", obj],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for src, obj in zip(sources, objects, strict=True)
    ]
    logs = [job.communicate(timeout=600)[0] for job in jobs]
    failed = [(job, log) for job, log in zip(jobs, logs, strict=True) if job.returncode != 0]
    if failed:
        return subprocess.CompletedProcess(jobs[0].args, failed[0][0].returncode, "", failed[0][1])
    link = [cxx, *flags, "-shared", *objects, "-o", str(out / "libemu.so")]
    return subprocess.run(link, capture_output=True, text=True, timeout=600)


def _asan_runtime(cxx: str) -> str | None:
    found = subprocess.run(
        [cxx, "-print-file-name=libasan.so"], capture_output=True, text=True, timeout=60
    )
    path = found.stdout.strip()
    return path if found.returncode == 0 and os.path.isabs(path) else None


def test_cuda_kernels_match_the_cpu_kernels_under_emulation(tmp_path: Path) -> None:
    """Frame preprocessing (grey, RGB, every resize mode, push_frames with and without a
    reset mask) bit for bit, and the population forward (MLP and declared CNN spaces, empty
    groups, a group split over several chunks) within 1e-4, as the GPU parity tests ask."""
    from a2d_evo.ops import dispatch

    if dispatch.native_module() is None:
        pytest.skip("a2d_evo._C is not built")
    cxx = _compiler()
    if cxx is None:
        pytest.skip("no C++ compiler (c++, g++ or $CXX) to build the emulation")
    asan = _asan_runtime(cxx)
    built = _build(cxx, tmp_path, sanitize=asan is not None)
    if built.returncode != 0 and asan is not None:  # a sanitizer the toolchain cannot link
        asan = None
        built = _build(cxx, tmp_path, sanitize=False)
    if built.returncode != 0 and "barrier" in built.stderr:
        pytest.skip(f"{cxx} has no C++20 <barrier>: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k != REFERENCE_ENV_VAR}
    if asan is not None:
        env |= {"LD_PRELOAD": asan, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0"}
    run = subprocess.run(
        [sys.executable, str(EMU / "drive.py"), str(tmp_path / "libemu.so")],
        capture_output=True, text=True, timeout=900, env=env, cwd=ROOT,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "0 different" in run.stdout and "DIFFERENT" not in run.stdout, output[-4000:]
    assert run.stdout.count(": equal") >= 30, run.stdout  # every case ran
