"""Finding and checking the config a command runs with: a shipped one, the user's own
``--config``, a run's saved one or an agent folder's, with ``--set``/``--seed``/``--device``
overrides on top and every import a file records checked before it runs."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from a2d_evo.config import (
    Config,
    config_from_dict,
    config_from_file,
    config_to_dict,
    parse_override,
    read_config_file,
    replace,
)
from a2d_evo.config.compare import config_diff, setting
from a2d_evo.errors import ConfigError, RunFolderError
from a2d_evo.runs.files import MAX_ARCH_JSON_BYTES, read_json
from a2d_evo.runs.folder import FIXED_SECTIONS, RunFolder, enclosing_run
from a2d_evo.runs.layout import RUN_PARTS


def packaged_config(name: str) -> Path:
    """A shipped config: the source checkout's, else the installed copy; never one found in
    the current folder, which the user did not name (its ``env.imports`` would run unchecked).

    An editable install imports the package from its checkout, whose ``configs/`` is current;
    the copy installed next to the native module is only as fresh as the last build.
    """
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "configs" / name).is_file():
        return checkout / "configs" / name
    from a2d_evo import _C  # only here: a checkout without a build still runs the CLI

    installed = Path(_C.__file__).parent / "configs" / name
    if installed.is_file():
        return installed
    raise ConfigError(
        f"shipped config {name!r} not found (looked in {checkout / 'configs'} and "
        f"{installed.parent})"
    )


def common_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` items plus the ``--seed``/``--device`` shortcuts, as overrides."""
    items = list(getattr(args, "set", None) or [])
    if getattr(args, "seed", None) is not None:
        items.append(f"seed={args.seed}")
    if getattr(args, "device", None) is not None:
        items.append(f"device={args.device}")
    return items


def set_keys(args: argparse.Namespace) -> list[str]:
    """The dotted keys of the command's ``--set`` items (each checked when the config is
    built: here only split)."""
    return [".".join(parse_override(item)[0]) for item in getattr(args, "set", None) or []]


def with_env_imports(cfg: Config, args: argparse.Namespace) -> Config:
    """``cfg`` with this command's ``--env-import`` items added to ``env.imports``.

    The user names them on the command line, so they run (see :mod:`a2d_evo.envs.imports`)."""
    given = [s for s in (getattr(args, "env_import", None) or []) if s not in cfg.env.imports]
    if not given:
        return cfg
    return replace(cfg, env=replace(cfg.env, imports=(*cfg.env.imports, *given)))


def user_config(path: str | Path, args: argparse.Namespace, extra: Sequence[str] = ()) -> Config:
    """The user's own ``--config`` with overrides and ``--env-import``: its imports run.

    A config a2d-evo wrote (it carries ``format_version``: a run's ``config.yaml``, which
    messages and reports name in the commands they suggest) may come from someone else's run
    folder, so its recorded imports are checked as any run folder's are; so are those of any
    ``config.yaml`` that sits where a2d-evo writes them (a run folder or one of its stages),
    since a received file need not keep its ``format_version``."""
    return _read_user_config(path, args, extra)[0]


def _read_user_config(
    path: str | Path, args: argparse.Namespace, extra: Sequence[str] = ()
) -> tuple[Config, bool]:
    """:func:`user_config`, and whether the file carries ``format_version`` (a2d-evo wrote
    it); the file is read once, so both come from the same bytes."""
    raw = read_config_file(path)
    written = isinstance(raw, dict) and "format_version" in raw
    recorded = written or _in_a_run_folder(Path(path))
    # a user's own file: a full listing of env still counts as a copied record
    overrides = [*common_overrides(args), *extra]
    cfg = config_from_file(raw, overrides, str(path), recorded=recorded or None)
    if recorded:
        saved = config_from_file(raw, [], str(path), recorded=True)
        return checked_file_config(cfg, saved, args, str(path)), written
    return with_env_imports(cfg, args), written


def _in_a_run_folder(path: Path) -> bool:
    """True for a ``config.yaml`` in a folder that holds a run's parts, or in one of those
    parts: ``RUN_DIR/config.yaml`` and ``RUN_DIR/<stage>/config.yaml``. On the safe side: a
    user's own ``config.yaml`` beside a folder named like a run part is checked too (its
    imports then need ``--env-import``, which the refusal names)."""
    if path.name != "config.yaml":
        return False
    folder = path.resolve().parent
    roots = [folder, folder.parent] if folder.name in RUN_PARTS else [folder]
    return any((root / part).is_dir() for root in roots for part in RUN_PARTS)


def checked_file_config(
    cfg: Config, recorded: Config, args: argparse.Namespace, where: str
) -> Config:
    """``cfg`` (``recorded``, read from ``where``, plus overrides) once every import ``where``
    records is allow-listed or given again with ``--env-import``; then ``--env-import`` added."""
    from a2d_evo.envs.imports import check_recorded_imports  # here: --help stays torch-free

    from_file = [s for s in cfg.env.imports if s in recorded.env.imports]
    check_recorded_imports(from_file, getattr(args, "env_import", None) or [], where)
    return with_env_imports(cfg, args)


def config_for_new_run(
    args: argparse.Namespace, extra: Sequence[str] = ()
) -> tuple[Config, RunFolder]:
    """Config from ``--config`` + overrides, and the run folder (``--out`` or runs/<stem>).

    A conflict with the run's ``config.yaml`` is refused here, before torch loads; nothing
    is written: the stage binds the run once its own checks (env, device, teacher) passed.
    """
    cfg, written = _read_user_config(args.config, args, extra)
    given = Path(args.config)
    if not args.out and written and _in_a_run_folder(given):
        # runs/config would be a new run that "run train-teacher first" then sent elsewhere
        folder = given.resolve().parent
        root = folder.parent if folder.name in RUN_PARTS else folder
        raise RunFolderError(
            f"{given} is a run folder's own config, and without --out a new run would go to "
            f"runs/config; pass --out {shlex.quote(str(root))} to go on with "
            "that run (its stages resume with --resume), or --out NEW_DIR for a new run from it"
        )
    out = Path(args.out) if args.out else Path("runs") / given.stem
    run = RunFolder(out)
    run.check(cfg)
    return cfg, run


def config_of_run(
    run: RunFolder,
    args: argparse.Namespace,
    extra: Sequence[str] = (),
    *,
    builds_env: bool = True,
    after: str | None = None,
    env_variant: bool = False,
    keeps: Mapping[str, str] | None = None,
) -> Config:
    """The run's saved config with this command's overrides on top.

    Overrides of the run's env or space are refused (the run's agents are of that env), but
    for ``env_variant`` (``eval``): one agent may play a variant of its env (another
    ``max_episode_steps``, no sticky actions), though not another env id or space. So are
    overrides that change a dotted key of ``keeps`` (key -> why the command keeps the run's
    value) and, but for ``env_variant``, ``eval.num_envs`` (R_random depends on it).

    ``after="search"`` (``export``, ``baselines``): the config the search ran with
    (``RUN_DIR/search/config.yaml``) when there is one, so that every agent is scored on the
    front's own final seeds (root seed and ``search.final_episodes``) even when ``evolve`` was
    given another config than the training stages. ``builds_env=False`` (``report``): the
    command builds no env, so the run's recorded imports never run and need no
    ``--env-import``."""
    saved, path = run.config_since(after) if after else (run.load_config(), run.config_path)
    overrides = [*common_overrides(args), *extra]
    cfg = saved
    if overrides:
        cfg = config_from_dict(config_to_dict(saved), overrides, source=str(path))
        fixed = config_diff(saved, cfg, FIXED_SECTIONS)
        if env_variant:
            fixed = [k for k in fixed if k == "env.id" or k.startswith("space.")]
        if fixed:  # said as the user's override, not as "a front of another run"
            raise ConfigError(
                f"--set {', '.join(fixed)}: "
                + (
                    f"the env and the space are what {run.root}'s agents are"
                    if env_variant
                    else "this command writes figures of the run, which were all measured on "
                    "its own env"
                )
                + "; it cannot change them here (`eval` may play a variant of the env; train "
                "a new run with --out for another)"
            )
        kept = dict(keeps or {})
        if not env_variant:
            kept["eval.num_envs"] = (
                f"{run.root}'s figures were measured with {saved.eval.num_envs} env slots per "
                "wave, and the random policy's returns (R_random, which every normalised return "
                "divides by) depend on how its episodes are batched; this command writes "
                "figures of the run, so it keeps the run's value (`eval` may change it)"
            )
        moved = [k for k, why in kept.items() if setting(saved, k) != setting(cfg, k)]
        if moved:  # by value: an override that sets the run's own value changes nothing
            raise ConfigError(f"--set {', '.join(moved)}: {kept[moved[0]]}")
    if not builds_env:
        return cfg
    return checked_file_config(cfg, saved, args, str(path))


def check_agent_folder(agent_dir: Path) -> None:
    """RunFolderError naming the agent folders to pass when ``agent_dir`` is a run folder, a
    folder of agents (``RUN_DIR/agents``) or a file of an agent folder (``policy.pt``) rather
    than one agent."""
    if (agent_dir / "arch.json").is_file():
        return
    if agent_dir.is_file() and (agent_dir.parent / "arch.json").is_file():
        raise RunFolderError(
            f"{agent_dir} is a file of an agent folder; pass the folder that holds arch.json: "
            f"{agent_dir.parent}"
        )
    inside = [agent_dir / "agents", agent_dir] if RunFolder(agent_dir).exists() else [agent_dir]
    found = [p.parent for folder in inside for p in sorted(folder.glob("*/arch.json"))]
    if (agent_dir / "teacher" / "agent" / "arch.json").is_file():
        found.append(agent_dir / "teacher" / "agent")
    if found:
        names = ", ".join(str(p) for p in found[:4]) + (", ..." if len(found) > 4 else "")
        raise RunFolderError(
            f"{agent_dir} is not an agent folder (no arch.json); it holds agents: pass one of "
            f"them, e.g. {names}"
        )


def config_of_agent(
    agent_dir: Path, args: argparse.Namespace, *, env_variant: bool = False
) -> Config:
    """Config of the run an agent folder lives in (``RUN_DIR/agents/<name>``), or one built
    from the env recorded in its ``arch.json`` (a file of whoever shared the folder: its env
    id never imports anything, and its imports run only as :func:`checked_file_config` says)."""
    check_agent_folder(agent_dir)
    run = enclosing_run(agent_dir)
    if run is not None:
        return config_of_run(run, args, env_variant=env_variant)

    path = agent_dir / "arch.json"
    meta = read_json(path, "agent file", max_bytes=MAX_ARCH_JSON_BYTES)
    env = meta.get("env") if isinstance(meta, dict) else None
    if not isinstance(env, dict) or not env.get("id"):
        raise ConfigError(f"{agent_dir}/arch.json names no env; run eval inside its run folder")
    kind = "cnn" if str(env.get("id", "")).startswith("ALE/") else "mlp"
    data = {"env": env, "space": {"kind": kind}}
    recorded = config_from_dict(data, source=str(path))
    cfg = config_from_dict(data, common_overrides(args), source=str(path))
    return checked_file_config(cfg, recorded, args, str(path))
