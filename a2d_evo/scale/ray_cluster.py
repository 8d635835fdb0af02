"""Connecting to Ray for the population evaluation (``search.backend: ray``).

:func:`connect_ray` imports Ray (only when it is asked for: the local backend never does) and
joins the cluster at ``search.ray_address``, probed first so that an unreachable address fails
in seconds, or starts a local Ray with enough logical CPUs for the actors.
Errors are :class:`a2d_evo.scale.ddp.DistributedError`.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from typing import Any

from a2d_evo.config import Config
from a2d_evo.progress import write
from a2d_evo.scale.ddp import DistributedError

__all__ = ["connect_ray"]


def connect_ray(cfg: Config) -> tuple[Any, bool]:
    """Import Ray and connect it: ``(ray, started_here)``; :class:`DistributedError` if not.

    An already initialised Ray is reused. ``search.ray_address`` joins that cluster (it is
    probed first, so an unreachable address fails in seconds, not after Ray's retries);
    without one a local Ray starts with enough logical CPUs for the actors.
    """
    try:
        import ray  # here only: the local backend never imports Ray
    except ImportError:
        raise DistributedError(
            "search.backend=ray (--ray) needs Ray, which is not installed: "
            "pip install 'a2d-evo[distributed]'"
        ) from None
    if ray.is_initialized():
        return ray, False
    s = cfg.search
    address = s.ray_address
    try:
        if address and address != "local":
            _probe(address)
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            need = math.ceil(s.ray_actors * s.ray_cpus_per_actor)
            cores = os.cpu_count() or 1
            if need > cores:  # a local Ray gives what is asked: said, as a cluster refuses it
                write(
                    f"a local Ray on {cores} cores: search.ray_actors {s.ray_actors} x "
                    f"search.ray_cpus_per_actor {s.ray_cpus_per_actor:g} asks {need} CPUs, so "
                    "the actors share cores (lower either to match the machine)"
                )
            ray.init(
                num_cpus=max(os.cpu_count() or 1, need),
                include_dashboard=False,
                logging_level=logging.ERROR,
                log_to_driver=False,
            )
    except DistributedError:
        raise
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError, ...
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        raise DistributedError(
            f"cannot start or join {where}: {type(exc).__name__}: {exc}. Check "
            "search.ray_address (`ray start --head` prints it) or pass --ray without an address"
        ) from None
    return ray, True


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a ``host:port`` (or ``ray://host:port``) nobody listens on."""
    if address == "auto":
        return  # Ray itself looks for a local cluster and fails at once without one
    rest = address.split("://", 1)[-1].rstrip("/")
    host, _, port_text = rest.rpartition(":")
    if not host:
        host, port_text = rest, "10001" if address.startswith("ray://") else "6379"
    try:
        port = int(port_text)
    except ValueError:
        raise DistributedError(
            f"search.ray_address {address!r}: expected 'auto', 'host:port' or 'ray://host:port'"
        ) from None
    try:
        socket.create_connection((host.strip("[]"), port), timeout=timeout).close()
    except OSError as exc:
        raise DistributedError(
            f"cannot reach the Ray cluster at {address!r}: {exc.strerror or exc}. Start one "
            "with `ray start --head` or fix search.ray_address"
        ) from None
