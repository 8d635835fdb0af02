"""Run the CUDA kernels' source under the CPU emulation (``cuda_shim.h``) against the native
CPU kernels of ``a2d_evo._C``: ``python drive.py LIBEMU``; prints one line per case and exits
1 on any difference. Started by ``tests/test_cuda_emulation.py`` in a subprocess (there, under
AddressSanitizer where the compiler has it)."""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for test_population

from test_population import CNN_SPACES, MLP_SPACES, noisy_supernet, rel_err

from a2d_evo import _C
from a2d_evo.config import SpaceConfig
from a2d_evo.config.space import ConvLayerConfig as Conv
from a2d_evo.nets.population import PopulationForward
from a2d_evo.nets.space import SearchSpace

FRAMES = [  # (h, w, size): Atari sizes, integer factors (one past the old shared-memory
    # refusal: 3000 -> 2), upscaling, slim and odd shapes, one-pixel frames
    (210, 160, 84), (250, 160, 84), (96, 96, 84), (168, 168, 84), (64, 64, 84),
    (50, 70, 84), (3, 500, 84), (997, 13, 7), (1009, 1013, 9), (3000, 3000, 2),
    (5, 5, 1), (1, 1, 5),
]  # fmt: skip


def main(lib_path: str) -> int:
    lib = ctypes.CDLL(lib_path)
    lib.emu_error.restype = ctypes.c_char_p
    size_t, i32, i64, ptr = ctypes.c_size_t, ctypes.c_int, ctypes.c_int64, ctypes.c_void_p
    lib.emu_preprocess.argtypes = [size_t, size_t, i64, i64, i32, i32, i32, i32]
    lib.emu_push.argtypes = [size_t, size_t, size_t, i64, i32, i32, i32, i32, i32]
    lib.emu_subnet.argtypes = [i32, size_t, i64, size_t, i64, ptr, i64, ptr, i64, ptr,
                               size_t, size_t]  # fmt: skip
    failures = 0

    def report(name: str, ok: bool, detail: str = "") -> None:
        nonlocal failures
        failures += not ok
        print(f"{name}: {'equal' if ok else 'DIFFERENT'} {detail}", flush=True)

    rng = np.random.default_rng(3)
    for h, w, size in FRAMES:
        for c in (1, 3):
            if c == 3 and h * w > 200_000:
                continue
            raw = rng.integers(0, 256, size=(2, 2, h, w) + ((3,) if c == 3 else ()), dtype=np.uint8)
            cpu = np.empty((2, size, size), np.uint8)
            _C.preprocess_frames(raw, cpu)
            out = np.full((2, size, size), 77, np.uint8)
            if lib.emu_preprocess(raw.ctypes.data, out.ctypes.data, size * size, 2, h, w, c, size):
                report(f"preprocess {h}x{w}x{c}->{size}", False, lib.emu_error().decode())
                continue
            report(f"preprocess {h}x{w}x{c}->{size}", np.array_equal(out, cpu))
    h, w, size, k, n = 210, 160, 84, 4, 3
    raw = rng.integers(0, 256, size=(n, 2, h, w), dtype=np.uint8)
    stack = rng.integers(0, 256, size=(n, k, size, size), dtype=np.uint8)
    for mask in (np.array([1, 0, 1], bool), None):
        cpu, emu = stack.copy(), stack.copy()
        _C.push_frames(raw, cpu, mask)
        m = 0 if mask is None else mask.ctypes.data
        rc = lib.emu_push(raw.ctypes.data, emu.ctypes.data, m, n, k, h, w, 1, size)
        report(f"push_frames mask={mask is not None}", rc == 0 and np.array_equal(cpu, emu))

    def population(name: str, space: SearchSpace, shape: tuple[int, ...], n_act: int,
                   archs: list, sizes: list[int], obs: np.ndarray) -> None:  # fmt: skip
        fwd = PopulationForward(noisy_supernet(space, shape, n_act, seed=5), backend="native")
        packed = fwd._packed()
        table, offsets = fwd._tables(archs, np.asarray(sizes, np.int64))
        table, offsets = np.ascontiguousarray(table, np.int32), np.ascontiguousarray(offsets)
        rows = int(sum(sizes))
        x = np.ascontiguousarray(obs.reshape(rows, -1))
        logits = np.full((rows, packed.n_actions), np.nan, np.float32)
        values = np.full((rows,), np.nan, np.float32)
        params, meta = np.ascontiguousarray(packed.params), np.ascontiguousarray(packed.meta)
        rc = lib.emu_subnet(int(packed.kind == "cnn"), x.ctypes.data, rows, params.ctypes.data,
                            params.size, meta.ctypes.data, meta.size, table.ctypes.data,
                            len(table), offsets.ctypes.data, logits.ctypes.data,
                            values.ctypes.data)  # fmt: skip
        if rc:
            report(name, False, lib.emu_error().decode())
            return
        cpu_logits, cpu_values = fwd(obs, archs, sizes)
        err = max(rel_err(logits, cpu_logits), rel_err(values, cpu_values))
        report(name, err < 1e-4, f"(relative error {err:.1e})")

    for i, cfg in enumerate(MLP_SPACES):
        space = SearchSpace(cfg)
        for j in range(2):
            g = int(rng.integers(2, 5))
            archs = [space.decode(e) for e in space.sample_encodings(rng, g)]
            archs[0] = space.largest() if j else space.smallest()
            sizes = rng.integers(0, 40, size=g).tolist()
            sizes[0] = max(sizes[0], 1)
            obs = rng.standard_normal((sum(sizes), 6)).astype(np.float32)
            population(f"mlp space {i} draw {j}", space, (6,), 4, archs, sizes, obs)
    cnn_spaces = [
        (CNN_SPACES[1], (4, 36, 36)),
        (SpaceConfig(kind="cnn", conv=(Conv(widths=(4, 8), kernel=3),
                                       Conv(widths=(4,), kernels=(1, 3), padding="same",
                                            optional=True)), fc=(8, 40)), (2, 6, 6)),
        (SpaceConfig(kind="cnn", conv=(Conv(widths=(3, 5), kernel=5, stride=2, padding="same"),
                                       Conv(widths=(4, 7), kernels=(1, 3, 5), padding="same",
                                            optional=True)), fc=(8, 40)), (3, 11, 9)),
    ]  # fmt: skip
    for i, (cfg, shape) in enumerate(cnn_spaces):
        space = SearchSpace(cfg)
        archs = [space.largest(), space.smallest()] + [
            space.decode(e) for e in space.sample_encodings(rng, 1)
        ]
        sizes = [70, 0, 3] if i == 1 else [2, 1, 0]  # 70 rows: several chunks of one group
        obs = rng.integers(0, 256, size=(sum(sizes), *shape), dtype=np.uint8)
        population(f"cnn space {i}", space, shape, 5, archs, sizes, obs)
    print(f"{failures} different", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
