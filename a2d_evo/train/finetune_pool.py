"""Fine-tuning several agent folders side by side, one per worker process (``finetune.workers``).

An export fine-tunes every front member on its own (:func:`~a2d_evo.train.finetune_agent`):
the members share nothing but the teacher they read, and each fine-tune is one thread of torch
and one of env stepping, so ``W`` workers on ``W`` cores run ``W`` members at a time (measured
on the demo's 12 LunarLander members of seed 118: 165 s against 291 s with 2 workers on 2
cores, ``docs/training.md``). Each job runs exactly the call the export would make, in its own
process: its randomness comes from the config's seed alone
(:class:`~a2d_evo.train.streams.Streams`, seeded envs), so the weights and metrics it writes
(wall times aside) are the same bit for bit whichever worker ran it, and in whatever order, at
the same ``torch_threads`` (a test holds it).

Workers are fresh Python processes (:func:`~a2d_evo.envs.worker_process.start_worker`), each
taking the next job as it finishes one. The calling process holds the lock of every job's
folder while they run (an export already holds them: it locks each member before writing any),
so a worker writes its folder without locking it again, and dies with the caller (the locks go
with it). A job's error is raised in the caller once the jobs already running have finished
(their folders are written, so an export run again continues from them); a worker that dies is
an error naming it and its member (after a job's error, said beside it while the others
finish); Ctrl-C in the caller kills the workers (their members stay as they were: a folder is
written at the end of its fine-tune).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from a2d_evo.config import Config
from a2d_evo.envs.worker_process import portable_error, start_worker
from a2d_evo.errors import TrainingError
from a2d_evo.evaluation.episodes import EvalResult, ReferenceReturns
from a2d_evo.runs.locks import folder_lock
from a2d_evo.train.finetune import finetune_agent
from a2d_evo.train.loop import budget_text

__all__ = ["FinetuneJob", "run_finetunes"]

_POLL_S = 1.0
"""How often the caller, waiting for its workers, checks that each is still alive."""


@dataclass(frozen=True)
class FinetuneJob:
    """One :func:`~a2d_evo.train.finetune_agent` call: the folder and its keyword arguments."""

    folder: Path
    steps: int
    teacher_dir: Path | None
    eval_seed: int
    eval_episodes: int
    validation_episodes: int
    before: EvalResult | None = None
    references: ReferenceReturns | None = None


def _run(job: FinetuneJob, cfg: Config, progress: bool, locked: bool = True) -> dict[str, Any]:
    """The job's fine-tune; its summary (:func:`~a2d_evo.train.finetune_agent`'s return).
    ``locked=False``: the folder's lock is held for this process by its parent (a worker)."""
    fn = finetune_agent if locked else finetune_agent.__wrapped__  # type: ignore[attr-defined]
    result: dict[str, Any] = fn(
        job.folder, cfg, steps=job.steps, teacher_dir=job.teacher_dir, progress=progress,
        eval_seed=job.eval_seed, eval_episodes=job.eval_episodes,
        validation_episodes=job.validation_episodes, before=job.before, references=job.references,
    )  # fmt: skip
    return result


def run_finetunes(
    cfg: Config,
    jobs: Sequence[FinetuneJob],
    done: Callable[[int, dict[str, Any]], None],
    progress: bool = True,
) -> None:
    """Run every job, in ``cfg.finetune.workers`` worker processes (in this one for a single
    worker or job); ``done(i, summary)`` is called here as job ``i`` finishes (in the order
    the jobs finish)."""
    workers = min(cfg.finetune.workers, len(jobs))
    if workers <= 1:
        for i, job in enumerate(jobs):
            if progress:
                print(f"fine-tuning {job.folder.name} for {budget_text(cfg, job.steps)}")
            done(i, _run(job, cfg, progress))
        return
    where = [os.path.realpath(job.folder) for job in jobs]
    if len(set(where)) < len(where):  # in one process they would add up; here they would race
        twice = sorted({w for w in where if where.count(w) > 1})
        raise TrainingError(f"finetune: a folder is given twice: {', '.join(twice)}")
    with contextlib.ExitStack() as locks:  # held here for the workers (taken again if held)
        for job in jobs:
            locks.enter_context(folder_lock(job.folder, create=False))
        _pool(cfg, jobs, done, progress, workers)


def _pool(
    cfg: Config,
    jobs: Sequence[FinetuneJob],
    done: Callable[[int, dict[str, Any]], None],
    progress: bool,
    workers: int,
) -> None:
    """:func:`run_finetunes` in ``workers`` worker processes, the folders locked."""
    procs: list[subprocess.Popen[bytes]] = []
    conns: list[Connection] = []
    running: dict[int, int] = {}  # worker -> job it runs
    error: BaseException | None = None
    try:
        for _ in range(workers):
            proc, sock = start_worker(
                "a2d_evo.train.finetune_pool:_worker_main", [str(os.getpid())]
            )
            procs.append(proc)
            conns.append(Connection(sock.detach()))
            _send(conns[-1], cfg)
        queue = list(range(len(jobs)))

        def give(k: int) -> None:
            i = queue.pop(0)
            if progress:
                print(
                    f"fine-tuning {jobs[i].folder.name} for {budget_text(cfg, jobs[i].steps)} "
                    f"(worker {k + 1} of {workers})"
                )
            # absolute: a worker runs in the package's parent folder, not the caller's
            teacher = jobs[i].teacher_dir
            _send(
                conns[k],
                dataclasses.replace(
                    jobs[i],
                    folder=jobs[i].folder.absolute(),
                    teacher_dir=None if teacher is None else teacher.absolute(),
                ),
            )
            running[k] = i

        for k in range(workers):
            give(k)
        while running:
            ready = wait([conns[k] for k in running], timeout=_POLL_S)
            # every reply that came is taken before a dead worker is raised: a member that
            # finished beside it is reported as kept
            replies: dict[int, tuple[str, Any]] = {}
            dead: int | None = None
            for k in running:
                if conns[k] in ready:
                    with contextlib.suppress(EOFError, OSError):
                        replies[k] = conns[k].recv()
                        continue
                if (conns[k] in ready or procs[k].poll() is not None) and dead is None:
                    dead = k  # its socket closed, or the process is gone
            for k, (status, value) in replies.items():
                i = running.pop(k)
                if status == "ok":
                    done(i, value)
                elif error is None:  # the jobs still running finish; no new ones start
                    error = value
                    queue.clear()
                else:  # raised is the first; the others are said
                    print(f"finetune: {jobs[i].folder} failed too: {value}", file=sys.stderr)
                if queue and dead is None:
                    give(k)
            if dead is not None:
                death = _died(procs[dead], jobs[running.pop(dead)])
                if error is None:
                    raise death
                # an earlier job's error is raised once the ones running beside it are written
                print(f"finetune: {death}", file=sys.stderr)
        if error is not None:
            raise error
    finally:
        for conn in conns:
            conn.close()  # a waiting worker exits on the closed socket
        for proc in procs:
            if proc.poll() is None and running:  # interrupted mid-job: nothing to wait for
                proc.kill()
            try:
                proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _send(conn: Connection, obj: Any) -> None:
    """Send ``obj`` to a worker; one that has died is found (and named) by the wait for it."""
    with contextlib.suppress(OSError):
        conn.send(obj)


def _died(proc: subprocess.Popen[bytes], job: FinetuneJob) -> TrainingError:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=_POLL_S)  # its socket closes as it exits: the code comes after
    what = "stopped answering" if proc.returncode is None else f"died (exit code {proc.returncode})"
    return TrainingError(
        f"finetune: worker process {proc.pid} {what} while fine-tuning {job.folder}; the "
        "members finished before it are kept: run the command again to continue"
    )


def _worker_main(argv: Sequence[str]) -> None:
    """A worker: receive the config, then fine-tune each job received, answering ``("ok",
    summary)`` or ``("error", exception)``, until the caller's end of the socket closes."""
    conn = Connection(int(argv[0]))
    _die_with_parent(int(argv[1]))
    try:
        cfg: Config = conn.recv()
        while True:
            job: FinetuneJob = conn.recv()
            try:
                reply: tuple[str, Any] = ("ok", _run(job, cfg, progress=False, locked=False))
            except Exception as exc:
                reply = ("error", portable_error(exc, TrainingError))
            conn.send(reply)
    except (EOFError, OSError):  # the caller is done, or gone
        return
    finally:
        conn.close()


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this worker when its parent dies (Linux: ``PR_SET_PDEATHSIG``), and
    exit now if it already has: the parent holds the lock of the folder this worker writes,
    which its death releases, so a worker left running would write a folder that another
    command may be writing by then (an export run again). Elsewhere a worker notices only when
    it next answers, after writing its folder."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the signal was asked for
        os._exit(1)
