"""Frame-preprocessing parity with OpenCV: identical pixels of the native op and its numpy twin
against ``np.maximum`` + ``cv2.resize(..., INTER_AREA)``, on random grey frame pairs.

    python benchmarks/parity_preprocess.py [--frames 64] [--seed 0]

Prints one row per (input size -> output size) and ends with a ``RESULT`` line holding the
lowest identical-pixel share and the largest difference of the native op.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from a2d_evo.ops import native_module, preprocess_frames, preprocess_frames_reference

SIZES = [(96, 96), (100, 100), (210, 160), (250, 160), (300, 200)]


def opencv(raw: np.ndarray, size: int) -> np.ndarray:
    """gymnasium's AtariPreprocessing way, frame by frame."""
    frames = np.maximum(raw[:, 0], raw[:, 1])
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if native_module() is None:
        raise SystemExit("a2d_evo._C is not built: nothing to compare")
    rng = np.random.default_rng(args.seed)
    worst, largest = 100.0, 0
    print(f"{'input -> output':>18}  {'native same':>11}  {'max diff':>8}  {'reference same':>14}")
    for h, w in SIZES:
        raw = rng.integers(0, 256, (args.frames, 2, h, w), dtype=np.uint8)
        for size in (84, 64):
            want = opencv(raw, size).astype(np.int16)
            native = preprocess_frames(raw, size=size).astype(np.int16)
            ref = preprocess_frames_reference(raw, size=size).astype(np.int16)
            same, diff = 100.0 * np.mean(native == want), int(np.abs(native - want).max())
            worst, largest = min(worst, same), max(largest, diff)
            print(
                f"{f'{h}x{w} -> {size}':>18}  {same:10.3f}%  {diff:8d}  "
                f"{100.0 * np.mean(ref == want):13.3f}%"
            )
    print(f"RESULT native_min_identical_pct={worst:.3f} native_max_diff={largest}")


if __name__ == "__main__":
    main()
