"""Image observations outside ALE: any env whose observations are rank-3 Box images.

A gymnasium env with a rank-3 ``Box`` observation space of dtype uint8 or bool (MinAtar's
``(10, 10, C)`` bool planes, a pixel env's ``(H, W, 3)`` frames, a ``(C, H, W)`` stack) is
wrapped by :func:`wrap_image_env` (an ``ImageObservation`` wrapper), which hands the
networks ``(C, H, W)`` uint8 arrays, the layout of ALE frames, and tells them the scale to
apply inside (:func:`image_obs_scale`).

Layout rule, in order: the reading whose two spatial sizes are equal wins (images and boards
are square: ``(4, 84, 84)`` and ``(12, 7, 7)`` are channels-first, ``(10, 10, 4)`` and
``(84, 84, 3)`` channels-last); when both or neither readings are square, channels-last
(gymnasium's ``(H, W, C)`` convention; MinAtar Seaquest's ``(10, 10, 10)``) unless the first
dimension is the smaller one (``(3, 96, 128)``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

ALE_OBS_SCALE = 1.0 / 255.0
"""What ALE frames (uint8, 0-255) are multiplied by inside the network."""


def is_image_space(space: Any) -> bool:
    """True for a rank-3 ``Box`` of uint8 or bool: the observations the CNN space takes."""
    import gymnasium as gym  # here: reading a config or a run folder never loads gymnasium

    return (
        isinstance(space, gym.spaces.Box)
        and len(space.shape) == 3
        and (space.dtype == np.uint8 or space.dtype == np.bool_)
    )


def channels_last(shape: tuple[int, ...]) -> bool:
    """Whether a rank-3 image shape is ``(H, W, C)`` (see the module's layout rule)."""
    hwc_square, chw_square = shape[0] == shape[1], shape[1] == shape[2]
    if hwc_square != chw_square:
        return hwc_square
    return not shape[0] < shape[-1]


def image_obs_scale(space: Any) -> float:
    """1 for 0/1 planes (bool, or uint8 whose high is at most 1), else 1 / the space's high:
    1/255 for pixels, 1/3 for a board coded 0-3 (1/255 left such a board's inputs at most
    0.012, and a teacher on one did not learn where its 0/1 twin did)."""
    high = float(np.max(space.high))
    if space.dtype == np.bool_ or high <= 1.0:
        return 1.0
    return ALE_OBS_SCALE if high == 255.0 else 1.0 / high


@functools.cache  # built once, on first use: gymnasium loads only then
def _wrapper_class() -> type:
    import gymnasium as gym

    class ImageObservation(gym.ObservationWrapper):
        """``(C, H, W)`` uint8 observations of a rank-3 uint8/bool image env laid out as
        ``layout`` says (``auto``: :func:`channels_last`); ``obs_scale`` is the factor the
        network applies inside (:func:`image_obs_scale`)."""

        def __init__(self, env: Any, layout: str = "auto") -> None:
            super().__init__(env)
            space = env.observation_space
            shape = tuple(int(d) for d in space.shape)
            self.raw_shape = shape
            self.channels_last = channels_last(shape) if layout == "auto" else layout == "hwc"
            self.obs_scale = image_obs_scale(space)
            chw = (shape[2], shape[0], shape[1]) if self.channels_last else shape
            high = 1 if self.obs_scale == 1.0 else int(np.max(space.high))
            self.observation_space = gym.spaces.Box(0, high, chw, np.uint8)

        def observation(self, observation: Any) -> np.ndarray:
            obs = np.asarray(observation)
            if self.channels_last:
                obs = obs.transpose(2, 0, 1)
            return np.ascontiguousarray(obs, dtype=np.uint8)

    return ImageObservation


def layout_line(
    env_id: str,
    raw_image: tuple[tuple[int, ...], bool],
    layout: str,
    obs_scale: float | None = None,
) -> str:
    """The line that says how an image env's observations were read (``raw_image``: their
    shape and whether channels-last; ``layout``: ``env.image_layout``; ``obs_scale``: the
    factor inside the network, said when given), so that a wrong reading is seen before
    anything trains on it."""
    shape, last = raw_image
    chw = (shape[2], shape[0], shape[1]) if last else shape
    how = "(H, W, C)" if last else "(C, H, W)"
    if layout == "auto":
        why = "by the layout rule; set env.image_layout if that is wrong"
    else:
        why = f"as env.image_layout {layout!r} says"
    scale = ""
    if obs_scale is not None:
        top = round(1 / obs_scale)
        scale = (
            "; 0/1 values, taken as they are"
            if top == 1
            else f"; values 0-{top}, scaled by 1/{top} inside the network"
        )
    return (
        f"{env_id}: images {shape} read as {how}, so {chw[0]} channels of "
        f"{chw[1]} x {chw[2]}, {why}{scale}"
    )


def wrap_image_env(env: Any, layout: str = "auto") -> Any:
    """``env`` wrapped by ``ImageObservation`` (see the module docstring); ``layout`` is
    ``env.image_layout``: ``auto``, ``hwc`` or ``chw``."""
    if layout not in ("auto", "hwc", "chw"):
        raise ValueError(f"image layout {layout!r}: expected 'auto', 'hwc' or 'chw'")
    return _wrapper_class()(env, layout)
