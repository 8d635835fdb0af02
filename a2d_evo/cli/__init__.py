"""The ``a2d-evo`` command line: thin, every subcommand is one library call.

Errors a user can cause (:class:`a2d_evo.errors.A2DError`) print one line and exit 2;
an interrupted command exits 130 after its stage has checkpointed. Here: :func:`main`, its
exit codes and signals; :mod:`.parser` holds the arguments, :mod:`.commands` one handler per
subcommand, :mod:`.configs` the config each runs with.
"""

from __future__ import annotations

import os

# OpenMP threads (torch's and our kernels', one libgomp) spin at barriers by default; when env
# workers or another process hold a core, a 2-thread kernel call then waits whole scheduler
# slices (measured: 10-15 ms instead of tens of microseconds). Sleeping waits cost little.
# Set before anything imports torch; a user's own OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from a2d_evo.cli.parser import build_parser
from a2d_evo.errors import A2DError, Interrupted

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]


def _terminated(signum: int, frame: object) -> None:
    # SIGTERM (kill, a batch scheduler) ends a command the way Ctrl-C does. Training loops
    # install their own handler (checkpoint, then stop) and restore this one after.
    raise KeyboardInterrupt("SIGTERM")


TORCHRUN_COMMANDS = frozenset({"train-teacher", "train-supernet"})
"""The commands that train with DDP under torchrun; every other one is refused there."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``a2d-evo`` console script."""
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # said with the command's usage (`report --set x` printed the top-level one)
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    handler: Handler = args.handler
    world = os.environ.get("WORLD_SIZE", "1").strip()
    if args.command not in TORCHRUN_COMMANDS and world not in ("", "0", "1"):
        # a torchrun rank other than 0 takes no folder lock (rank 0 writes for all): any
        # other command would write the run from every rank at once, unlocked
        print(
            f"a2d-evo {args.command}: error: WORLD_SIZE={world} in the environment: only "
            f"{' and '.join(sorted(TORCHRUN_COMMANDS))} run under torchrun "
            f"(docs/distributed.md); unset WORLD_SIZE and RANK to run {args.command}",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    in_main = threading.current_thread() is threading.main_thread()
    previous: dict[int, Any] = {}
    if in_main:
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _terminated)
        # Ctrl-C stops every command, also one started from a background job (which inherits
        # SIGINT ignored): the training loops already take SIGINT whatever its disposition.
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return handler(args)
    except Interrupted as exc:
        # a fine-tune inside export or demo says "nothing saved" of its own agent: what the
        # command as a whole kept, and how to go on, is said here
        go_on = {
            "export": "; the members already fine-tuned are kept: run the same export again "
            "to go on",
            "demo": "; the stages and members already done are kept: continue with --resume",
        }.get(args.command, "")
        print(f"a2d-evo {args.command}: {exc}{go_on}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except A2DError as exc:
        print(f"a2d-evo {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except PermissionError as exc:  # a path the user may not enter (Path.is_file re-raises it
        # on Python 3.10 and 3.11 where a check did not expect it): one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"a2d-evo {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        why = str(exc) or "SIGINT"
        rank = os.environ.get("RANK", "0").strip()
        hint = (
            # torchrun stops the other ranks with SIGTERM when one exits: most often rank 0
            # refused the command, and its message (not --resume) is what to act on
            f" as rank {rank}: torchrun stops every rank when one exits; rank 0's message "
            "says why (what was saved is kept)"
            if why == "SIGTERM" and world not in ("", "0", "1") and rank not in ("", "0")
            else "; what was saved is kept, continue with --resume"
            if "resume" in args
            else "; the members already fine-tuned are kept: run the same export again to go on"
            if args.command == "export"
            else ""
        )
        print(f"a2d-evo {args.command}: interrupted ({why}){hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
