"""Frame preprocessing: the native kernel against OpenCV, against its numpy twin, and on real ALE
frames; the in-place frame-stack update against gymnasium's FrameStackObservation; bad inputs.

Parity is measured per case as the max absolute difference in grey levels and the fraction of
identical pixels: the native kernel must stay within 1 grey level everywhere and be identical on
at least 99% of the pixels; the numpy twin emulates OpenCV and must be identical on >= 99.9%.
The native box filter (kArea) is exact integer arithmetic rounded half to even, checked against
an integer model here; it differs from OpenCV's float32 only where float rounding decides.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import pytest

from a2d_evo.errors import KernelInputError
from a2d_evo.ops import (
    REFERENCE_ENV_VAR,
    backend_name,
    native_module,
    preprocess_frames,
    preprocess_frames_reference,
    push_frames,
    push_frames_reference,
)

MOD = native_module()
needs_native = pytest.mark.skipif(MOD is None, reason="a2d_evo._C is not built")

# (height, width). 96x96 -> 84 is a scale of 8/7: weights in eighths, so 4.5% of its random pixels
# are exact .5s, which OpenCV rounds half to even; 300x200 and 250x160 have large denominators.
GEOMETRIES = [(210, 160), (250, 160), (100, 100), (96, 96), (300, 200), (84, 84), (168, 168)]
UPSCALES = [(64, 64), (50, 70), (210, 50), (3, 500), (500, 3)]  # OpenCV: area-mode bilinear


def opencv(raw: np.ndarray, size: int) -> np.ndarray:
    """gymnasium's AtariPreprocessing step, one env at a time."""
    return np.stack(
        [
            cv2.resize(np.maximum(r[0], r[1]), (size, size), interpolation=cv2.INTER_AREA)
            for r in raw
        ]
    )


def parity(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """(max abs difference, fraction of identical pixels)."""
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    return int(np.abs(a.astype(np.int16) - b).max()), float((a == b).mean())


def native(raw: np.ndarray, size: int = 84, out: np.ndarray | None = None) -> np.ndarray:
    assert MOD is not None
    if out is None:
        out = np.empty((raw.shape[0], size, size), np.uint8)
    MOD.preprocess_frames(raw, out)
    return out


def random_raw(rng: np.random.Generator, n: int, h: int, w: int, rgb: bool = False) -> np.ndarray:
    return rng.integers(0, 256, (n, 2, h, w, 3) if rgb else (n, 2, h, w), dtype=np.uint8)


# --------------------------------------------------------------------------- real frames


def _ale_frames(game: str, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(grey, rgb) screens of `steps` uniformly random actions, one per step."""
    ale_py = pytest.importorskip("ale_py")
    ale = ale_py.ALEInterface()
    ale.setLoggerMode(ale_py.LoggerMode.Error)
    ale.setInt("random_seed", seed)
    ale.loadROM(ale_py.roms.get_rom_path(game))
    actions = ale.getMinimalActionSet()
    rng = np.random.default_rng(seed)
    grey, rgb = [], []
    for _ in range(steps):
        ale.act(actions[rng.integers(len(actions))])
        if ale.game_over():
            ale.reset_game()
        grey.append(ale.getScreenGrayscale().copy())
        rgb.append(ale.getScreenRGB().copy())
    return np.stack(grey), np.stack(rgb)


@pytest.fixture(scope="module")
def ale_pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per game: (grey, rgb) frame pairs (N, 2, 210, 160[, 3]) of consecutive screens, as the
    max-pool sees them, taken every 4th step of 400 random actions."""
    pairs = {}
    for game in ("pong", "breakout"):
        grey, rgb = _ale_frames(game, 400, seed=0)
        idx = np.arange(1, len(grey), 4)
        pairs[game] = (
            np.ascontiguousarray(np.stack([grey[idx - 1], grey[idx]], axis=1)),
            np.ascontiguousarray(np.stack([rgb[idx - 1], rgb[idx]], axis=1)),
        )
    return pairs


# ---------------------------------------------------------------------------- parity


@needs_native
@pytest.mark.parametrize("size", [84, 64])
@pytest.mark.parametrize("n", [1, 3, 64])
@pytest.mark.parametrize("hw", GEOMETRIES)
def test_native_matches_opencv_and_reference_on_random_frames(
    hw: tuple[int, int], n: int, size: int
) -> None:
    rng = np.random.default_rng(hash((hw, n, size)) % 2**32)
    raw = random_raw(rng, n, *hw)
    cv = opencv(raw, size)
    nat = native(raw, size)
    ref = preprocess_frames_reference(raw, size=size)
    diff, same = parity(nat, cv)
    assert diff <= 1 and same >= 0.99, (hw, n, size, diff, same)
    diff, same = parity(nat, ref)
    assert diff <= 1 and same >= 0.99, (hw, n, size, diff, same)
    diff, same = parity(ref, cv)
    assert diff <= 1 and same >= 0.999, (hw, n, size, diff, same)


def _overlap_weights(ssize: int, dsize: int) -> np.ndarray:
    """(dsize, ssize) integer area weights: overlap in units of 1/dsize over gcd(ssize, dsize);
    every row sums to ssize / gcd."""
    g = math.gcd(ssize, dsize)
    w = np.zeros((dsize, ssize), np.int64)
    for d in range(dsize):
        lo, hi = d * ssize, (d + 1) * ssize
        for s in range(lo // dsize, -(-hi // dsize)):
            w[d, s] = (min(hi, (s + 1) * dsize) - max(lo, s * dsize)) // g
    return w


def exact_area(m: np.ndarray, size: int) -> np.ndarray:
    """The exact box-filter value of (N, H, W) grey frames, rounded half to even (cvRound)."""
    wy, wx = _overlap_weights(m.shape[1], size), _overlap_weights(m.shape[2], size)
    num = wy @ m.astype(np.int64) @ wx.T  # (N, dsize, dsize), integers: exact
    den = int(wy[0].sum()) * int(wx[0].sum())
    q, r = np.divmod(num, den)
    return (q + ((2 * r > den) | ((2 * r == den) & (q % 2 == 1)))).astype(np.uint8)


# (263, 100): 263 rows share no factor with 84, too many for the 16-bit SIMD path; (257, 263):
# a denominator 257 * 263 above 65535. Both take the 64-bit path.
EXACT_CASES = [(96, 96, 84), (210, 160, 84), (300, 200, 84), (250, 160, 64), (263, 100, 84)]
EXACT_CASES += [(257, 263, 84), (97, 85, 84), (900, 700, 84)]


@needs_native
@pytest.mark.parametrize("case", EXACT_CASES)
def test_native_area_resize_is_exact_and_rounds_half_to_even(case: tuple[int, int, int]) -> None:
    """kArea output == the exact weighted mean rounded half to even, on random frames whose
    max-pool reaches 0 and 255, and on a flat frame (which must stay flat)."""
    h, w, size = case
    raw = random_raw(np.random.default_rng(h * 1000 + w), 3, h, w)
    raw[1] = 255
    raw[2, 0] = 0
    raw[2, 1] = raw[2, 0] + 77  # flat
    m = np.maximum(raw[:, 0], raw[:, 1])
    got = native(raw, size)
    assert np.array_equal(got, exact_area(m, size)), case
    assert (got[1] == 255).all() and (got[2] == 77).all()


@needs_native
@pytest.mark.parametrize("hw", [(96, 96), (112, 112), (128, 128), (96, 112)])
def test_exact_ties_round_half_to_even_like_opencv(hw: tuple[int, int]) -> None:
    """Scales whose area weights are dyadic (8/7, 4/3, 32/21): OpenCV's float32 sums are exact
    there, so its cvRound of every .5 is half to even and both ops must match it pixel for pixel
    (rounding ties half up missed 2.3% of the pixels at 96x96 and 5.6% at 112x112)."""
    raw = random_raw(np.random.default_rng(12), 4, *hw)
    cv = opencv(raw, 84)
    assert parity(native(raw), cv) == (0, 1.0)
    assert parity(preprocess_frames_reference(raw), cv) == (0, 1.0)


@needs_native
@pytest.mark.parametrize("hw", UPSCALES)
def test_upscaling_follows_opencv_bilinear_area_mode(hw: tuple[int, int]) -> None:
    raw = random_raw(np.random.default_rng(1), 3, *hw)
    cv = opencv(raw, 84)
    assert parity(native(raw), cv) == (0, 1.0)
    assert parity(preprocess_frames_reference(raw), cv) == (0, 1.0)


@needs_native
@pytest.mark.parametrize("size", [84, 64])
@pytest.mark.parametrize("game", ["pong", "breakout"])
def test_real_ale_frames(ale_pairs: dict[str, Any], game: str, size: int) -> None:
    grey, _ = ale_pairs[game]
    cv = opencv(grey, size)
    nat = native(grey, size)
    diff, same = parity(nat, cv)
    assert diff <= 1 and same >= 0.99, (game, size, diff, same)
    assert parity(preprocess_frames_reference(grey, size=size), cv) == (0, 1.0)


@needs_native
@pytest.mark.parametrize("game", ["pong", "breakout"])
def test_rgb_frames_give_what_ale_grey_frames_give(ale_pairs: dict[str, Any], game: str) -> None:
    """Grey of each RGB frame with ALE's formula, then the max, equals the max of ALE's own grey
    screens (gymnasium's obs_type="grayscale" pipeline) exactly."""
    grey, rgb = ale_pairs[game]
    assert np.array_equal(native(rgb), native(grey))
    assert np.array_equal(preprocess_frames_reference(rgb), preprocess_frames_reference(grey))


@needs_native
def test_rgb_grey_formula_including_its_ties() -> None:
    """Every colour whose ALE grey value is an exact tie in real arithmetic (1703 of 2^24; ALE's
    doubles round 292 of them down), plus random colours: the native conversion equals ALE's
    double formula round(0.2989 r + 0.5870 g + 0.1140 b)."""
    c = np.arange(256, dtype=np.int32)
    key = (2989 * c[:, None, None] + 5870 * c[None, :, None]) + 1140 * c[None, None, :]
    ties = np.argwhere(key % 10000 == 5000)  # (r, g, b) rows
    assert len(ties) == 1703
    rng = np.random.default_rng(2)
    colours = np.concatenate([ties, rng.integers(0, 256, (84 * 84 - len(ties), 3))])
    frame = colours.astype(np.uint8).reshape(84, 84, 3)
    raw = np.zeros((1, 2, 84, 84, 3), np.uint8)
    raw[0, 0] = frame  # the other frame is black, so the max is this frame's grey
    f = frame.astype(np.float64)
    expected = np.floor(f[..., 0] * 0.2989 + f[..., 1] * 0.5870 + f[..., 2] * 0.1140 + 0.5)
    assert np.array_equal(native(raw)[0], expected.astype(np.uint8))  # 84 -> 84 is a copy
    assert np.array_equal(preprocess_frames_reference(raw)[0], expected.astype(np.uint8))


@needs_native
def test_rgb_random_frames_match_reference() -> None:
    raw = random_raw(np.random.default_rng(3), 5, 210, 160, rgb=True)
    diff, same = parity(native(raw), preprocess_frames_reference(raw))
    assert diff <= 1 and same >= 0.99


@needs_native
def test_thread_count_and_bands_do_not_change_results() -> None:
    """N=1 splits the frame into row bands across threads; N=8 does not."""
    assert MOD is not None
    raw = random_raw(np.random.default_rng(4), 8, 210, 160)
    many = native(raw)
    threads = MOD.max_threads()
    try:
        MOD.set_num_threads(1)
        single = native(raw)
        MOD.set_num_threads(max(4, threads))
        banded = np.concatenate([native(raw[i : i + 1]) for i in range(8)])
    finally:
        MOD.set_num_threads(threads)
    assert np.array_equal(many, single) and np.array_equal(many, banded)


_GENERIC_CHECK = """
import sys
import numpy as np
from a2d_evo.ops import native_module, preprocess_frames, push_frames
rng = np.random.default_rng(11)
outs = []
for shape, size in [((3, 2, 210, 160), 84), ((1, 2, 250, 160), 64), ((2, 2, 168, 168), 84),
                    ((2, 2, 64, 64), 84), ((2, 2, 210, 160, 3), 84), ((2, 2, 900, 700), 84),
                    ((2, 2, 96, 96), 84), ((1, 2, 263, 100), 84)]:
    outs.append(preprocess_frames(rng.integers(0, 256, shape, dtype=np.uint8), size=size))
stack = rng.integers(0, 256, (3, 4, 84, 84), dtype=np.uint8)
raw = rng.integers(0, 256, (3, 2, 210, 160), dtype=np.uint8)
push_frames(raw, stack, np.array([1, 0, 1], bool))
outs.append(stack)
np.savez(sys.argv[1], *outs)
print(native_module().preprocess_isa())
"""


@needs_native
def test_a_huge_integer_factor_block_does_not_wrap() -> None:
    """An all-white 4110 x 4110 frame to 1 x 1: one block of 16.9 M pixels, whose sum of
    255s passes 2^32 (it wrapped to 1 in 32 bits; 4100 x 4100 still fitted)."""
    raw = np.full((1, 2, 4110, 4110), 255, np.uint8)
    out = np.empty((1, 1, 1), np.uint8)
    MOD.preprocess_frames(raw, out)
    assert out.item() == 255 == preprocess_frames_reference(raw, size=1).item()


_BAD_MASKS = """
import numpy as np
from a2d_evo.ops import native_module
mod = native_module()
raw = np.zeros((2, 2, 8, 8), np.uint8)
stack = np.zeros((2, 4, 4, 4), np.uint8)
for mask in (1, 1.5, "ab", b"\\x01\\x00", (True, False), np.array([1, 0], np.int64)):
    try:
        mod.push_frames(raw, stack, mask)
    except ValueError as exc:
        assert "reset_mask" in str(exc), exc
    else:
        raise AssertionError(f"accepted reset_mask {mask!r}")
print("refused")
"""


@needs_native
def test_the_binding_refuses_a_reset_mask_that_is_not_an_array(tmp_path: Any) -> None:
    """The binding re-checks what memory safety depends on, whoever calls it: a reset mask
    that is not a bool array is refused (an int, a float or a str was read as an array's
    header before; in a child process, so a crash fails the test without ending pytest)."""
    import subprocess
    import sys

    # cwd: not the repo root, so the child imports the installed package, native module and all
    done = subprocess.run([sys.executable, "-c", _BAD_MASKS], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "refused", (
        done.returncode,
        done.stderr[-2000:],
    )


@needs_native
def test_generic_isa_path_is_bit_identical(tmp_path: Any) -> None:
    """The portable code path (forced by A2D_EVO_PREPROCESS_ISA=generic, read once per process)
    gives the same bytes as the path this machine picks (AVX2 where available)."""
    import os
    import subprocess
    import sys

    results = {}
    for isa in ("generic", "auto"):
        env = {**os.environ, "A2D_EVO_PREPROCESS_ISA": isa, "OMP_NUM_THREADS": "2"}
        env.pop(REFERENCE_ENV_VAR, None)
        path = tmp_path / f"{isa}.npz"
        out = subprocess.run(
            [sys.executable, "-c", _GENERIC_CHECK, str(path)],
            env=env,
            cwd=tmp_path,  # not the repo root: import the installed package, native module and all
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        with np.load(path) as data:
            results[out.stdout.strip()] = [data[k] for k in sorted(data.files)]
    assert "generic" in results
    picked = [isa for isa in results if isa != "generic"]
    for isa in picked:  # empty on a machine without AVX2: then both runs took the generic path
        for a, b in zip(results["generic"], results[isa], strict=True):
            assert np.array_equal(a, b)


# ---------------------------------------------------------------------------- dispatch


def test_dispatch_follows_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = random_raw(np.random.default_rng(5), 4, 210, 160)
    ref = preprocess_frames_reference(raw)
    monkeypatch.setenv(REFERENCE_ENV_VAR, "1")
    assert backend_name("preprocess_frames") == "reference"
    assert np.array_equal(preprocess_frames(raw), ref)
    monkeypatch.delenv(REFERENCE_ENV_VAR)
    if MOD is None:
        assert backend_name("preprocess_frames") == "reference"
        return
    assert backend_name("preprocess_frames") == "native"
    assert backend_name("push_frames") == "native"
    nat = preprocess_frames(raw)
    assert np.array_equal(nat, native(raw))
    assert not np.array_equal(nat, ref)  # the two really are different code paths here


@pytest.fixture(params=["native", "reference"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "native":
        if MOD is None:
            pytest.skip("a2d_evo._C is not built")
        monkeypatch.delenv(REFERENCE_ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(REFERENCE_ENV_VAR, "1")
    assert backend_name("preprocess_frames") == request.param
    return str(request.param)


def test_out_can_be_a_slot_of_a_frame_stack(backend: str) -> None:
    raw = random_raw(np.random.default_rng(6), 5, 210, 160)
    stack = np.full((5, 4, 84, 84), 7, np.uint8)
    got = preprocess_frames(raw, out=stack[:, 3])
    assert np.shares_memory(got, stack) and got.strides == (4 * 84 * 84, 84, 1)
    assert np.array_equal(stack[:, 3], preprocess_frames(raw))
    assert (stack[:, :3] == 7).all()
    empty = preprocess_frames(np.zeros((0, 2, 210, 160), np.uint8))
    assert empty.shape == (0, 84, 84)


def _frame_stack_loop(
    frames: list[np.ndarray], resets: list[np.ndarray], k: int, stack: np.ndarray
) -> list[np.ndarray]:
    """The hand-written semantics: per env, reset -> k copies; else drop oldest, append."""
    out = []
    for new, reset in zip(frames, resets, strict=True):
        stack = stack.copy()
        for i in range(len(new)):
            if reset[i]:
                stack[i] = np.repeat(new[i][None], k, axis=0)
            else:
                stack[i] = np.concatenate([stack[i, 1:], new[i][None]])
        out.append(stack)
    return out


@pytest.mark.parametrize("n", [1, 6])  # n=1: the frame is split into row bands across threads
@pytest.mark.parametrize("k", [1, 4])
def test_push_frames_shift_and_reset(backend: str, k: int, n: int) -> None:
    rng = np.random.default_rng(7)
    steps = 7
    raws = [random_raw(rng, n, 210, 160) for _ in range(steps)]
    resets = [np.ones(n, bool)] + [rng.random(n) < 0.3 for _ in range(steps - 1)]
    resets[3] = np.zeros(n, bool)
    start = rng.integers(0, 256, (n, k, 84, 84), dtype=np.uint8)
    frames = [preprocess_frames(r) for r in raws]
    expected = _frame_stack_loop(frames, resets, k, start)
    stack = start.copy()
    ref_stack = start.copy()
    for t in range(steps):
        mask = None if t == 3 else resets[t]  # None means no resets
        assert push_frames(raws[t], stack, mask) is stack
        push_frames_reference(raws[t], ref_stack, mask)
        assert np.array_equal(stack, expected[t]), t
        assert np.array_equal(ref_stack[:, -1], preprocess_frames_reference(raws[t]))


def test_push_frames_matches_gymnasium_frame_stack(backend: str) -> None:
    """gymnasium 1.4's FrameStackObservation(padding_type="reset", its default) on an env whose
    observations are our preprocessed frames gives the stacks push_frames builds."""
    rng = np.random.default_rng(8)
    raws = [random_raw(rng, 1, 210, 160) for _ in range(6)]
    frames = [preprocess_frames(r)[0] for r in raws]

    class Replay(gym.Env[np.ndarray, int]):
        observation_space = gym.spaces.Box(0, 255, (84, 84), np.uint8)
        action_space = gym.spaces.Discrete(1)

        def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
            self.t = 0
            return frames[0], {}

        def step(self, action: int) -> Any:
            self.t += 1
            return frames[self.t], 0.0, False, False, {}

    env = gym.wrappers.FrameStackObservation(Replay(), 4)
    obs, _ = env.reset(seed=0)
    stack = np.zeros((1, 4, 84, 84), np.uint8)
    push_frames(raws[0], stack, np.ones(1, bool))
    assert np.array_equal(stack[0], obs)
    for t in range(1, 6):
        obs = env.step(0)[0]
        push_frames(raws[t], stack, np.zeros(1, bool))
        assert np.array_equal(stack[0], obs), t


# ----------------------------------------------------------------------------- errors


def _bad_raw_cases() -> list[tuple[str, Any]]:
    good = np.zeros((3, 2, 210, 160), np.uint8)
    return [
        ("float", good.astype(np.float32)),
        ("uint16", good.astype(np.uint16)),
        ("ndim3", good[:, 0]),
        ("ndim6", good[..., None, None]),
        ("three frames", np.zeros((3, 3, 210, 160), np.uint8)),
        ("one frame", np.zeros((3, 1, 210, 160), np.uint8)),
        ("4 channels", np.zeros((3, 2, 210, 160, 4), np.uint8)),
        ("non-contiguous", np.zeros((3, 2, 210, 320), np.uint8)[..., ::2]),
        ("fortran", np.asfortranarray(good)),
        ("empty frame", np.zeros((3, 2, 0, 160), np.uint8)),
        ("list", good.tolist()),
    ]


@pytest.mark.parametrize("case", [c[0] for c in _bad_raw_cases()])
def test_bad_raw_raises(backend: str, case: str) -> None:
    raw = dict(_bad_raw_cases())[case]
    with pytest.raises(KernelInputError):
        preprocess_frames(raw)
    with pytest.raises(KernelInputError):
        push_frames(raw, np.zeros((3, 4, 84, 84), np.uint8))


def _bad_out_cases() -> list[tuple[str, Any]]:
    ro = np.zeros((3, 84, 84), np.uint8)
    ro.flags.writeable = False
    overlapping = np.lib.stride_tricks.as_strided(
        np.zeros((84, 84), np.uint8), (3, 84, 84), (0, 84, 1), writeable=True
    )
    return [
        ("shape", np.zeros((3, 84, 85), np.uint8)),
        ("batch", np.zeros((2, 84, 84), np.uint8)),
        ("size", np.zeros((3, 64, 64), np.uint8)),
        ("dtype", np.zeros((3, 84, 84), np.float32)),
        ("row stride", np.zeros((3, 84, 90), np.uint8)[:, :, :84]),
        ("column stride", np.zeros((3, 84, 168), np.uint8)[:, :, ::2]),
        ("transposed", np.zeros((3, 84, 84), np.uint8).transpose(0, 2, 1)),
        ("read-only", ro),
        ("overlapping frames", overlapping),
        ("list", np.zeros((3, 84, 84), np.uint8).tolist()),
    ]


@pytest.mark.parametrize("case", [c[0] for c in _bad_out_cases()])
def test_bad_out_raises(backend: str, case: str) -> None:
    raw = np.zeros((3, 2, 210, 160), np.uint8)
    with pytest.raises(KernelInputError):
        preprocess_frames(raw, out=dict(_bad_out_cases())[case])


def test_other_bad_arguments_raise(backend: str) -> None:
    raw = np.zeros((3, 2, 210, 160), np.uint8)
    for size in (0, -1, True, 84.0, 70000):
        with pytest.raises(KernelInputError):
            preprocess_frames(raw, size=size)
    buffer = np.zeros(2 * 210 * 160 * 3 + 3 * 84 * 84, np.uint8)
    with pytest.raises(KernelInputError):  # out aliases raw
        preprocess_frames(
            buffer[: raw.size].reshape(raw.shape), out=buffer[:21168].reshape(3, 84, 84)
        )
    ro = np.zeros((3, 4, 84, 84), np.uint8)
    ro.flags.writeable = False
    bad_stacks = [
        np.zeros((3, 84, 84), np.uint8),
        np.zeros((2, 4, 84, 84), np.uint8),
        np.zeros((3, 4, 84, 64), np.uint8),
        np.zeros((3, 0, 84, 84), np.uint8),
        np.zeros((3, 4, 84, 84), np.int16),
        np.zeros((3, 8, 84, 84), np.uint8)[:, ::2],
        ro,
    ]
    for stack in bad_stacks:
        with pytest.raises(KernelInputError):
            push_frames(raw, stack)
    stack = np.zeros((3, 4, 84, 84), np.uint8)
    for mask in (np.zeros(3, np.int64), np.zeros(2, bool), np.zeros((3, 1), bool)):
        with pytest.raises(KernelInputError):
            push_frames(raw, stack, mask)


# ------------------------------------------------------------------------------ torch


def test_torch_cpu_tensors_share_memory() -> None:
    torch = pytest.importorskip("torch")
    raw = random_raw(np.random.default_rng(9), 3, 210, 160)
    stack = torch.zeros((3, 4, 84, 84), dtype=torch.uint8)
    got = preprocess_frames(torch.from_numpy(raw), out=stack[:, 2])
    assert got.data_ptr() == stack[:, 2].data_ptr()
    expected = preprocess_frames(raw)
    assert np.array_equal(stack[:, 2].numpy(), expected)
    assert np.array_equal(preprocess_frames(torch.from_numpy(raw)).numpy(), expected)
    push_frames(torch.from_numpy(raw), stack, torch.ones(3, dtype=torch.bool))
    assert (stack.numpy() == expected[:, None]).all()
    with pytest.raises(KernelInputError):
        preprocess_frames(torch.from_numpy(raw), out=np.zeros((3, 84, 84), np.uint8))


def test_tensors_overlap_is_numpys_bound_check() -> None:
    """The CUDA paths' alias check (the numpy paths use ``np.may_share_memory``) gives what
    numpy's bound check gives, on views of one buffer, a stranger and empty views."""
    torch = pytest.importorskip("torch")
    from a2d_evo.ops.preprocess import tensors_overlap

    buf = torch.zeros((4, 6, 8), dtype=torch.uint8)
    flat = buf.view(-1)
    views = [buf, buf[0], buf[1], buf[3], buf[:, 2], buf[:, :, 3], buf[2:], buf[:2], buf[1:, ::2]]
    views += [flat[5:9], flat[9:40], flat[40:48], buf[:0], torch.zeros(3, dtype=torch.uint8)]
    for a in views:
        for b in views:
            want = bool(np.may_share_memory(a.numpy(), b.numpy()))
            assert tensors_overlap(a, b) == want, (a.shape, a.stride(), b.shape, b.stride())
    assert tensors_overlap(buf[0], buf[0]) and not tensors_overlap(buf[0], buf[1])


@pytest.mark.cuda  # the proving run (`pytest -m cuda`, ops.dispatch) selects it
def test_cuda_parity(monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA kernel == CPU kernel bit for bit (same integer arithmetic, shared header)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device (torch.cuda.is_available() is False)")
    if MOD is None or not MOD.has_cuda():
        pytest.skip("a2d_evo._C was built without CUDA (_C.has_cuda() is False)")
    # the CUDA kernel runs only when opted in until its parity is recorded (ops.dispatch)
    monkeypatch.setenv("A2D_EVO_CUDA_KERNELS", "1")
    rng = np.random.default_rng(10)
    dev = torch.device("cuda")
    cases = [(h, w, s, rgb) for (h, w) in GEOMETRIES + UPSCALES for s in (84, 64) for rgb in (0, 1)]
    for h, w, size, rgb in cases:
        raw = random_raw(rng, 5, h, w, rgb=bool(rgb))
        cpu = native(raw, size)
        gpu = preprocess_frames(torch.from_numpy(raw).to(dev), size=size)
        torch.cuda.synchronize()
        assert np.array_equal(gpu.cpu().numpy(), cpu), (h, w, size, rgb)
    raw = random_raw(rng, 6, 210, 160)
    stack = torch.zeros((6, 4, 84, 84), dtype=torch.uint8, device=dev)
    preprocess_frames(torch.from_numpy(raw).to(dev), out=stack[:, 1])
    assert np.array_equal(stack[:, 1].cpu().numpy(), native(raw))
    assert (stack[:, [0, 2, 3]] == 0).all()
    cpu_stack = stack.cpu().numpy().copy()
    mask = np.array([1, 0, 1, 0, 0, 1], bool)
    push_frames(torch.from_numpy(raw).to(dev), stack, torch.from_numpy(mask).to(dev))
    push_frames(raw, cpu_stack, mask)
    torch.cuda.synchronize()
    assert np.array_equal(stack.cpu().numpy(), cpu_stack)
    on_gpu = torch.from_numpy(raw).to(dev)  # an out inside raw: refused, not a race
    with pytest.raises(KernelInputError, match="share memory"):
        preprocess_frames(on_gpu, out=on_gpu.view(-1)[: 6 * 84 * 84].view(6, 84, 84))


@needs_native
def test_type_stub_lists_the_native_module() -> None:
    """a2d_evo/_C.pyi declares exactly the functions the built module has (CUDA ones only when
    compiled in)."""
    import ast
    from pathlib import Path

    import a2d_evo

    stub = Path(a2d_evo.__file__).with_name("_C.pyi")
    declared = {n.name for n in ast.parse(stub.read_text()).body if isinstance(n, ast.FunctionDef)}
    built = {name for name in dir(MOD) if not name.startswith("_")}
    assert built <= declared
    assert {d for d in declared - built if not d.endswith(("_cuda", "_cuda_workspace"))} == set()


def test_frame_sides_are_bounded_on_every_path() -> None:
    """H and W at most 2^20 before any kernel: the CPU bindings refused more, while the GPU
    path took sides whose resize plan overflowed int arithmetic (near 2^31)."""
    from a2d_evo.ops.preprocess import _check_raw_shape

    side = 1 << 20
    assert _check_raw_shape((1, 2, 1, side)) == (1, 1, side, 1)
    assert _check_raw_shape((1, 2, side, 1, 3)) == (1, side, 1, 3)
    for shape in ((1, 2, 1, side + 1), (1, 2, side + 1, 1, 3), (1, 2, 2**31 - 1, 1)):
        with pytest.raises(KernelInputError, match=r"at most 2\^20 pixels high and wide"):
            _check_raw_shape(shape)


# ----------------------------------------------------------------------------- ops/preprocess.py
def test_a_2_by_1_box_rounds_half_to_even_in_the_reference() -> None:
    """a2d_evo/ops/preprocess.py _resize_reference: halving the height only (a 2 x 1 frame
    to 1 x 1, OpenCV's integer fast path with factors 2 and 1) averages the two pixels in
    float32 and rounds half to even: (10 + 20) / 2 = 15, (1 + 2) / 2 = 1.5 -> 2,
    (2 + 3) / 2 = 2.5 -> 2. Mutants let through: ``fy == 2 or fx == 2`` (the 2 x 2 shift
    (s + 2) >> 2 divided those sums by 4: 8, 1, 1) and ``scale > 1`` for ``>= 1`` (a width
    kept as it is sent the frame to the bilinear path, which rounds half up: 2.5 -> 3)."""
    from a2d_evo.ops.preprocess import preprocess_frames_reference

    raw = np.zeros((3, 2, 2, 1), np.uint8)
    for i, (top, bottom) in enumerate([(10, 20), (1, 2), (2, 3)]):
        raw[i, :, 0, 0], raw[i, :, 1, 0] = top, bottom  # both frames of the pair alike
    out = preprocess_frames_reference(raw, size=1)
    assert out.reshape(-1).tolist() == [15, 2, 2]
