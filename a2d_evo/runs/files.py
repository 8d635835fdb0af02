"""Durable files: atomic writes with the user's umask, loads that never run code.

Every file is written to a temporary name in the same folder, fsynced and renamed, so a crash
at any point leaves either the old file or the new one, never half of one; files get the
user's umask (agents are meant to be shared). Nothing is ever unpickled: tensors load with
``weights_only=True``, metadata is JSON or YAML, and every file carries a ``format_version``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import math
import os
import pickle
import re
import secrets
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from a2d_evo.errors import FormatError, RunFolderError
from a2d_evo.formats import CHECKPOINT_FORMAT_VERSION, OLD_CHECKPOINT_NOTE, read_capped

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # fullmatch: "$" takes a final "\n"


def atomic_write(path: str | Path, write: Callable[[io.BufferedWriter], object]) -> Path:
    """Write through ``write(f)`` to a temp file beside ``path``, fsync, then rename."""
    path = Path(path)
    try:
        make_dirs(path.parent)
        fd, tmp = _open_temp(path)
    except OSError as exc:
        raise RunFolderError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            hint = " (disk full)" if exc.errno == errno.ENOSPC else ""
            raise RunFolderError(f"cannot write {path}: {exc.strerror or exc}{hint}") from None
        raise
    return path


def _open_temp(path: Path) -> tuple[int, str]:
    """A new temp file ``.<name>.<random>.tmp`` beside ``path``, opened for writing.

    Not ``tempfile.mkstemp``: its mode 0600 survives the rename, so agents, reports and
    configs were unreadable by others whatever the umask. ``os.open(..., 0o666)`` lets the
    kernel apply the umask (and a default ACL) as for any file the user creates.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path.parent))


def make_dirs(folder: str | Path) -> list[Path]:
    """Create ``folder`` and its missing parents, top-down, fsyncing the parent of each so
    that a file written into a new folder survives a power cut with it; the folders made
    here, top-down. On failure the OSError ``mkdir`` raises (its ``filename`` the folder it
    could not make), and the folders made before it are removed again."""
    missing: list[Path] = []
    p = Path(folder)
    while not p.exists() and p.parent != p:
        missing.append(p)
        p = p.parent
    made: list[Path] = []
    try:
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:  # another process made it: its entry is its to sync
                continue
            fsync_dir(d.parent)
            made.append(d)
        if not Path(folder).is_dir():  # there as a file (or a link to one): mkdir's error
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(folder))
    except OSError:
        for d in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(d)
        raise
    return made


def fsync_dir(folder: Path) -> None:
    """fsync a folder, so that the entries made or renamed in it are on disk (best effort:
    a file system that cannot sync a folder is left as it is)."""
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


CHECKPOINT_KEYS = frozenset({"format_version", "stage", "update", "global_step", "model",
                             "optimizer", "rng"})  # fmt: skip
"""What every training checkpoint holds; ``wall_s``, ``extra`` and ``learner`` are optional."""


def read_checkpoint(path: Path, stage: str) -> dict[str, Any]:
    """The training checkpoint dict at ``path``, checked to be this stage's and of this
    format (FormatError otherwise); ``stage_budget`` checks one before it records a raise."""
    if not Path(path).is_file():
        raise FormatError(
            f"--resume: no checkpoint at {path}; delete {Path(path).parent} to start the stage "
            "over, or use --out for a new run folder"
        )
    ckpt = torch_load(path, f"{stage} checkpoint")
    if not isinstance(ckpt, dict) or not CHECKPOINT_KEYS <= set(ckpt):
        raise FormatError(f"{stage} checkpoint {path} is not an a2d-evo training checkpoint")
    version, found_stage = ckpt["format_version"], ckpt["stage"]
    # weights_only loads tensors anywhere: a tensor here would make == ambiguous, not an answer
    if not isinstance(version, int) or isinstance(version, bool):
        raise FormatError(
            f"{stage} checkpoint {path}: format_version {version!r:.40} is not an integer"
        )
    if version == 1:
        raise FormatError(f"{stage} checkpoint {path} has format_version 1: {OLD_CHECKPOINT_NOTE}")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise FormatError(
            f"{stage} checkpoint {path} has format_version {version!r}, "
            f"this a2d-evo reads {CHECKPOINT_FORMAT_VERSION}"
        )
    if not isinstance(found_stage, str) or found_stage != stage:
        raise FormatError(f"{path} is a {found_stage!r:.40} checkpoint, not a {stage!r} one")
    for key in ("update", "global_step"):  # int() took 3.7 as 3 and 'x' as a traceback
        value = ckpt[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise FormatError(
                f"{stage} checkpoint {path}: {key!r} must be an integer >= 0, got {value!r:.40}"
            )
    wall = ckpt.get("wall_s", 0.0)
    if not isinstance(wall, int | float) or isinstance(wall, bool) or not 0 <= wall < math.inf:
        raise FormatError(
            f"{stage} checkpoint {path}: 'wall_s' must be a number of seconds >= 0, "
            f"got {wall!r:.40}"
        )
    return ckpt


def torch_load(path: str | Path, what: str = "checkpoint", refused_hint: str = "") -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers, never arbitrary code;
    ``refused_hint`` ends the message of a file refused for holding other objects."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{what} {path} not found")
    return _load_weights_only(path, f"{what} {path}", refused_hint)


def torch_load_bytes(raw: bytes, label: str, refused_hint: str = "") -> Any:
    """:func:`torch_load` of bytes read from inside another file (a zip's member), with the
    same refusals and messages; ``label`` names them (``"model.zip:policy.pth"``)."""
    return _load_weights_only(raw, label, refused_hint)


def _load_weights_only(source: Path | bytes, label: str, refused_hint: str) -> Any:
    import torch  # here, not at the top: reading a run folder (report, --help) stays torch-free

    check_stored_archive(source, label)
    try:
        with warnings.catch_warnings():  # torch's "Detected pickle protocol N" on junk bytes:
            warnings.filterwarnings("ignore", "Detected pickle protocol")  # the error says it
            # and its unpickler's deprecation note on some damaged bytes (torch's own code)
            warnings.filterwarnings("ignore", "Defining your `__torch_function__`")
            return torch.load(
                io.BytesIO(source) if isinstance(source, bytes) else source,
                map_location="cpu",
                weights_only=True,
            )
    except pickle.UnpicklingError as exc:
        # torch's own message advises weights_only=False: wrong advice for a file that may
        # carry code, so only the line naming what was refused is kept.
        # ("WeightsUnpickler error: Unsupported global: GLOBAL os.system ..." up to torch
        # 2.5, "Trying to load unsupported GLOBAL posix.system whose module ..." since)
        lines = [ln.strip() for ln in str(exc).splitlines() if "unsupported global" in ln.lower()]
        if not lines and "Unsupported operand" in str(exc):  # not a pickle at all: damaged
            _damaged(source, label, exc)
        # ... and within it, torch's advice ("Please use ... add_safe_globals ...") is cut
        refused = (
            lines[0].removeprefix("WeightsUnpickler error: ").split(". Please")[0] if lines else ""
        )
        detail = f" ({refused.rstrip('.')})" if refused else ""
        raise FormatError(
            f"{label} holds objects other than tensors and plain data; refused to "
            f"unpickle it{detail}{refused_hint}"
        ) from None
    except Exception as exc:
        _damaged(source, label, exc)


def check_stored_archive(source: Path | bytes, label: str) -> None:
    """Refuse a zip archive (a torch file, an npz) whose members would inflate past the
    archive: ``torch.save`` and ``np.savez`` store every member as it is, while their loaders
    inflate a deflated member to whatever size it claims (a 1 MB ``policy.pt`` held 1 GiB of
    zeros, a 7 KB SB3 zip asked for 4 GiB). Not a zip: left to the loader, whose error says
    what the file is."""
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as z:
            members = z.infolist()
        size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
    # NotImplementedError: a damaged header claiming a zip version zipfile does not read
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return
    if any(m.compress_type != zipfile.ZIP_STORED for m in members) or (
        sum(m.file_size for m in members) > size
    ):
        raise FormatError(
            f"{label} holds compressed members, or members larger than the file: refused "
            "(the loader would inflate them to the size they claim; torch.save and np.savez "
            "store them as they are)"
        )


def tensor_not_in_file(t: Any) -> str | None:
    """Why a tensor read from a file is not a dense CPU tensor whose values the file holds
    (None when it is): a meta tensor has a shape and no values, and a stride-0 view of a
    one-value storage (``expand``) has the shape of a huge one; reading either whole, or
    building a network of its shape, allocates without bound."""
    import torch  # here, as in torch_load: reading a run folder stays torch-free

    if t.layout != torch.strided:  # sparse: a huge shape over a few stored values
        return f"is a {t.layout} tensor, not a dense one"
    if t.device.type != "cpu":
        return f"is a {t.device.type} tensor (a shape without values), not one read from the file"
    stored = t.untyped_storage().nbytes() // max(t.element_size(), 1)
    # any layout whose elements lie in the storage (a transposed or channels-last weight is
    # one), but no more elements than it stores: a view that repeats values is refused
    last = t.storage_offset() + sum((n - 1) * st for n, st in zip(t.shape, t.stride(), strict=True))
    if t.numel() and (t.numel() > stored or last >= stored):
        return "is not a dense tensor of its shape (its values are not all stored in the file)"
    return None


def _damaged(source: Path | bytes, label: str, exc: Exception) -> NoReturn:
    """FormatError for a file torch could not read: not a torch file, or a cut or damaged
    one (never a refusal to unpickle: nothing in it was understood)."""
    if isinstance(source, bytes):
        head = source[:4]
    else:
        try:
            with source.open("rb") as f:
                head = f.read(4)
        except OSError as err:
            raise FormatError(f"cannot read {label}: {err.strerror or err}") from None
    # torch saves zip archives (a cut one still starts so); before 1.6 a pickle stream
    # (0x80, its protocol byte); an empty file is a cut one
    if head and not head.startswith((b"PK\x03\x04", b"\x80")):
        raise FormatError(
            f"{label} is not a torch file (torch.save writes a zip archive; this is none)"
        ) from None
    # A damaged file makes torch's zip reader and weights-only unpickler raise almost
    # anything (IndexError, TypeError, struct.error, BadZipFile, NotImplementedError, ...):
    # all mean the same.
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if isinstance(exc, pickle.UnpicklingError):  # torch's advice to load it unsafely is cut
        lines = [ln for ln in lines if "Unsupported operand" in ln]
    detail = lines[0][:300] if lines else ""
    raise FormatError(
        f"{label} is truncated or corrupted: {type(exc).__name__}: {detail}"
    ) from None


MAX_JSON_BYTES = 256 << 20
"""Largest JSON file read (a search's ``state.json`` is allowed more, in proportion to its
generations: ``search.saved_state``): a front, a metrics file or a delivery holds kilobytes
to a few megabytes; a file a run folder received may be sparse and claim 64 GB, which read
whole would take the machine's memory."""

MAX_ARCH_JSON_BYTES = 1 << 20
"""Largest ``arch.json`` read: the largest arch the bounds allow (64 layers) takes a few KB."""


def read_json(
    path: str | Path,
    what: str = "file",
    format_version: int | None = None,
    max_bytes: int = MAX_JSON_BYTES,
) -> Any:
    """Load JSON; with ``format_version`` check the file's ``format_version`` key equals it.
    A file over ``max_bytes`` is refused (FormatError) before it is read."""
    return _read_json_bytes(path, what, format_version, max_bytes)[0]


def read_json_and_digest(
    path: str | Path, what: str = "file", format_version: int | None = None
) -> tuple[Any, str]:
    """:func:`read_json` and the SHA-256 (:func:`file_digest`) of the very bytes parsed: a
    digest taken by a second read may be of a file replaced in between."""
    data, raw = _read_json_bytes(path, what, format_version)
    return data, hashlib.sha256(raw).hexdigest()


def _read_json_bytes(
    path: str | Path, what: str, format_version: int | None, max_bytes: int = MAX_JSON_BYTES
) -> tuple[Any, bytes]:
    """The parsed JSON of ``path`` and the bytes it was parsed from (FormatError otherwise)."""
    path = Path(path)
    raw = read_capped(path, what, max_bytes)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # also ints past 4300 digits, deep nesting
        raise FormatError(f"{what} {path} is not valid JSON: {str(exc)[:300]}") from None
    except MemoryError:
        raise FormatError(f"{what} {path} is too large to read into memory") from None
    if format_version is not None:
        check_format_version(data, format_version, f"{what} {path}")
    return data, raw


def read_json_dict(path: str | Path, what: str = "file") -> dict[str, Any]:
    """A JSON object's contents, or {} when the file is missing, unreadable or not an object:
    for a record that is only consulted (its absence changes nothing but a figure shown)."""
    try:
        data = read_json(path, what)
    except (FormatError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, hex (names the exact supernet or front a file came from)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise RunFolderError(f"cannot read {path}: {exc.strerror or exc}") from None
    return h.hexdigest()


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
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or name in (".", ".."):
        raise RunFolderError(
            f"invalid name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name
