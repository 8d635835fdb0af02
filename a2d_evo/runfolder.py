"""The run folder: its layout, atomic writes, safe loads, and config conflict checks.

Every file is written to a temporary name in the same folder, fsynced and renamed, so a
crash at any point leaves either the old file or the new one, never half of one. Nothing
is ever unpickled: tensors load with ``weights_only=True``, metadata is JSON or YAML.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from a2d_evo.config import Config, config_from_dict, config_to_dict, dump_config, parse_yaml
from a2d_evo.errors import ConfigError, FormatError, RunFolderError

FIXED_SECTIONS = ("env", "space")
"""Sections every command of one run must agree on: they define what the artifacts are."""

STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "teacher": ("seed", "env", "space", "ppo", "teacher"),
    "supernet": ("seed", "env", "space", "ppo", "supernet", "distill"),
    "search": ("seed", "env", "space", "search"),
}
"""Sections a ``--resume`` of a stage must find unchanged."""

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


# ------------------------------------------------------------------------ atomic writes
def atomic_write(path: str | Path, write: Callable[[io.BufferedWriter], object]) -> Path:
    """Write through ``write(f)`` to a temp file beside ``path``, fsync, then rename."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise RunFolderError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            hint = " (disk full)" if exc.errno == errno.ENOSPC else ""
            raise RunFolderError(f"cannot write {path}: {exc.strerror or exc}{hint}") from None
        raise
    return path


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, allow_nan=True) + "\n")


def torch_save(path: str | Path, obj: Any) -> Path:
    """``torch.save`` of tensors and plain containers, atomically."""
    import torch  # here, not at the top: reading a run folder (report, --help) stays torch-free

    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------------ safe loads
def torch_load(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers, never arbitrary code."""
    import pickle

    import torch  # here, not at the top: reading a run folder (report, --help) stays torch-free

    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{what} {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own message advises weights_only=False: wrong advice for a file that may
        # carry code, so only the line naming what was refused is kept.
        lines = [ln.strip() for ln in str(exc).splitlines() if "Unsupported global" in ln]
        detail = f" ({lines[0]})" if lines else ""
        raise FormatError(
            f"{what} {path} holds objects other than tensors and plain data; refused to "
            f"unpickle it{detail}"
        ) from None
    except Exception as exc:
        # A damaged file makes torch's zip reader and weights-only unpickler raise almost
        # anything (IndexError, TypeError, struct.error, BadZipFile, ...): all mean the same.
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise FormatError(
            f"{what} {path} is truncated or corrupted: {type(exc).__name__}: {detail}"
        ) from None


def read_json(path: str | Path, what: str = "file", format_version: int | None = None) -> Any:
    """Load JSON; with ``format_version`` check the file's ``format_version`` key equals it."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{what} {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # also ints past 4300 digits, deep nesting
        raise FormatError(f"{what} {path} is not valid JSON: {str(exc)[:300]}") from None
    except OSError as exc:
        raise FormatError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if format_version is not None:
        check_format_version(data, format_version, f"{what} {path}")
    return data


def check_format_version(data: Any, expected: int, where: str) -> None:
    """Raise :class:`FormatError` unless ``data['format_version'] == expected``."""
    if not isinstance(data, dict) or "format_version" not in data:
        raise FormatError(f"{where} has no format_version: not a file a2d-evo wrote")
    found = data["format_version"]
    if not isinstance(found, int) or isinstance(found, bool):
        raise FormatError(f"{where}: format_version {found!r} is not an integer")
    if found > expected:
        raise FormatError(
            f"{where} has format_version {found}, newer than this a2d-evo reads ({expected}); "
            "upgrade a2d-evo"
        )
    if found < expected:
        raise FormatError(
            f"{where} has format_version {found}, older than this a2d-evo reads ({expected}); "
            "re-create it with this version"
        )


def safe_name(name: str) -> str:
    """A folder name taken from a file or an argument: no separators, no traversal."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or name in (".", ".."):
        raise RunFolderError(
            f"invalid name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


# ------------------------------------------------------------------------ the folder
class RunFolder:
    """Paths of one run (``runs/<name>``) and its resolved ``config.yaml``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def tb(self) -> Path:
        return self.root / "tb"

    @property
    def teacher(self) -> Path:
        return self.root / "teacher"

    @property
    def teacher_agent(self) -> Path:
        return self.teacher / "agent"

    @property
    def supernet(self) -> Path:
        return self.root / "supernet"

    @property
    def supernet_weights(self) -> Path:
        return self.supernet / "weights.pt"

    @property
    def search(self) -> Path:
        return self.root / "search"

    @property
    def agents(self) -> Path:
        return self.root / "agents"

    @property
    def baselines(self) -> Path:
        return self.root / "baselines"

    @property
    def report(self) -> Path:
        return self.root / "report"

    def stage(self, name: str) -> Path:
        return self.root / name

    # -------------------------------------------------------------- config
    def exists(self) -> bool:
        return self.config_path.is_file()

    def load_config(self) -> Config:
        """The run's resolved config (for commands that take RUN_DIR)."""
        if not self.exists():
            raise RunFolderError(
                f"{self.root} is not a run folder (no config.yaml); run train-teacher, "
                "train-supernet or evolve with --config first"
            )
        return self._read_config(self.config_path)

    def bind(self, cfg: Config) -> Config:
        """Create the run folder for ``cfg`` or check ``cfg`` against the one there.

        The first command writes ``config.yaml``; later ones must agree on
        :data:`FIXED_SECTIONS`, else :class:`RunFolderError` and nothing is written.
        """
        self._check_writable()
        if self.exists():
            saved = self._read_config(self.config_path)
            diff = config_diff(saved, cfg, FIXED_SECTIONS)
            if diff:
                raise RunFolderError(
                    f"{self.root}: the config conflicts with the run's config.yaml on "
                    f"{', '.join(diff)}; use another --out or the run's own config"
                )
        else:
            write_text(self.config_path, dump_config(cfg))
        return cfg

    def bind_stage(self, stage: str, cfg: Config, resume: bool) -> Path:
        """Prepare ``RUN_DIR/<stage>/`` for a fresh start or a ``--resume``.

        A fresh start refuses a stage that already holds results (nothing is overwritten);
        a resume refuses a config that differs on the stage's sections.
        """
        folder = self.stage(stage)
        saved_path = folder / "config.yaml"
        if resume:
            if not saved_path.is_file():
                raise RunFolderError(f"--resume: {folder} holds no run to resume")
            saved = self._read_config(saved_path)
            diff = config_diff(saved, cfg, STAGE_SECTIONS[stage])
            if diff:
                raise RunFolderError(
                    f"--resume: the config differs from the one {folder} was started with "
                    f"on {', '.join(diff)}; resume with the same config"
                )
            return folder
        if holds_results(folder):
            raise RunFolderError(
                f"{folder} already holds a {stage} run; pass --resume to continue it, "
                "or --out for a new run folder"
            )
        write_text(saved_path, dump_config(cfg))
        return folder

    def _check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create run folder {self.root}: {exc.strerror}") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise RunFolderError(f"run folder {self.root} is not writable")

    @staticmethod
    def _read_config(path: Path) -> Config:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RunFolderError(f"{path} cannot be read: {exc}") from None
        try:
            raw = parse_yaml(text, str(path))
            return config_from_dict(raw if raw is not None else {}, source=str(path))
        except ConfigError as exc:
            raise RunFolderError(str(exc)) from None


def holds_results(folder: Path) -> bool:
    """True when a stage folder holds anything a fresh start would overwrite."""
    return folder.is_dir() and any(_is_result(p) for p in folder.iterdir())


def _is_result(path: Path) -> bool:
    """False for what a run killed before its first checkpoint leaves: the stage's
    ``config.yaml`` and the temp files of interrupted atomic writes. Such a stage folder
    holds nothing to resume, so a fresh start may take it over."""
    if path.name == "config.yaml":
        return False
    return not (path.name.startswith(".") and path.name.endswith(".tmp"))


def enclosing_run(path: str | Path) -> RunFolder | None:
    """The run folder an agent folder lies in (``RUN_DIR/agents/<name>``,
    ``RUN_DIR/teacher/agent``, ``RUN_DIR/baselines/<name>``): the nearest of its three
    ancestors that holds a ``config.yaml``; None outside any run folder."""
    for parent in list(Path(path).resolve().parents)[:3]:
        if (parent / "config.yaml").is_file():
            return RunFolder(parent)
    return None


def run_teacher(path: str | Path) -> Path | None:
    """``RUN_DIR/teacher/agent`` of the run ``path`` lies in, if that teacher exists."""
    run = enclosing_run(path)
    if run is None or not (run.teacher_agent / "arch.json").is_file():
        return None
    return run.teacher_agent


def config_diff(a: Config, b: Config, sections: Iterable[str]) -> list[str]:
    """Dotted keys under ``sections`` whose values differ between two configs."""
    da, db = config_to_dict(a), config_to_dict(b)
    out: list[str] = []
    for name in sections:
        out.extend(_diff(da.get(name), db.get(name), name))
    return out


def _diff(a: Any, b: Any, key: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out.extend(_diff(a.get(k), b.get(k), f"{key}.{k}"))
        return out
    return [] if a == b else [key]
