"""Run files: atomic writes, weights-only loads, archive checks, format versions, names."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest
import torch

from a2d_evo.config import load_config
from a2d_evo.errors import FormatError, RunFolderError
from a2d_evo.runs.files import (
    check_format_version,
    read_json,
    safe_name,
    torch_load,
    torch_save,
    write_json,
    write_text,
)
from a2d_evo.runs.folder import RunFolder


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_torch_round_trip_and_malicious_pickle_refused(tmp_path: Path) -> None:
    torch_save(tmp_path / "ok.pt", {"w": torch.arange(3.0), "step": 7})
    data = torch_load(tmp_path / "ok.pt")
    assert data["step"] == 7 and torch.equal(data["w"], torch.arange(3.0))
    marker = tmp_path / "pwned"
    torch.save({"x": _Evil(marker)}, tmp_path / "evil.pt")
    # the refusal names the global it would have called (torch's advice to load it unsafely cut)
    with pytest.raises(FormatError, match=r"refused to unpickle it \(.*(posix|os|nt)\.system"):
        torch_load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_truncated_checkpoint_is_a_format_error(tmp_path: Path) -> None:
    torch_save(tmp_path / "ok.pt", {"w": torch.randn(100)})
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="truncated or corrupted"):
        torch_load(tmp_path / "cut.pt")
    with pytest.raises(FormatError, match="not found"):
        torch_load(tmp_path / "none.pt")
    (tmp_path / "empty.pt").write_bytes(b"")  # a cut file, not a foreign one
    with pytest.raises(FormatError, match="truncated or corrupted"):
        torch_load(tmp_path / "empty.pt")
    (tmp_path / "text.pt").write_text("hello\n")  # no zip at all: said so, not "KeyError: 101"
    with pytest.raises(FormatError, match=r"text\.pt is not a torch file \(torch\.save writes"):
        torch_load(tmp_path / "text.pt")


def test_atomic_write_keeps_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    write_json(target, {"format_version": 1, "gen": 1})

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(RunFolderError, match="disk full"):
        write_json(target, {"format_version": 1, "gen": 2})
    monkeypatch.undo()
    assert read_json(target)["gen"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_a_file_written_into_new_folders_syncs_each_folders_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configs_dir: Path
) -> None:
    """A power cut after the write keeps the file only if the entries of the folders made for
    it are on disk too: the parent of each new folder is fsynced, as the file's own folder is
    (only the file's folder was). Locks and the run folder make folders the same way."""
    from a2d_evo.runs import files, locks

    synced: list[Path] = []
    monkeypatch.setattr(files, "fsync_dir", lambda folder: synced.append(Path(folder)))
    write_json(tmp_path / "a" / "b" / "f.json", {"x": 1})
    assert synced == [tmp_path, tmp_path / "a", tmp_path / "a" / "b"]
    synced.clear()
    write_json(tmp_path / "a" / "b" / "g.json", {"x": 1})  # no new folder: the file's own
    assert synced == [tmp_path / "a" / "b"]
    synced.clear()
    with locks.folder_lock(tmp_path / "c" / "d"):
        assert synced == [tmp_path, tmp_path / "c"]
    synced.clear()
    RunFolder(tmp_path / "e" / "run").bind(load_config(configs_dir / "cartpole.yaml"))
    assert synced[:2] == [tmp_path, tmp_path / "e"], synced
    # a run folder that is there as a file: mkdir's own error, as before make_dirs
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="cannot create run folder .*File exists"):
        RunFolder(tmp_path / "file").bind(load_config(configs_dir / "cartpole.yaml"))


def test_make_dirs_leaves_none_of_its_folders_when_one_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure half-way (a full disk at the second level) removes the folders made before
    it and raises the OSError naming the folder it could not make (the lock's message)."""
    from a2d_evo.runs.files import make_dirs

    real = Path.mkdir

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if self.name == "b":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(OSError) as info:
        make_dirs(tmp_path / "a" / "b" / "c")
    assert info.value.filename == str(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()
    from a2d_evo.runs import locks

    with pytest.raises(RunFolderError, match=r"cannot create folder .*b: No space left"):
        with locks.folder_lock(tmp_path / "a" / "b" / "c"):
            pass
    assert not (tmp_path / "a").exists()


def test_format_versions(tmp_path: Path) -> None:
    check_format_version({"format_version": 1}, 1, "x")
    with pytest.raises(FormatError, match="newer"):
        check_format_version({"format_version": 2}, 1, "x")
    with pytest.raises(FormatError, match="older"):
        check_format_version({"format_version": 0}, 2, "x")
    with pytest.raises(FormatError, match="no format_version"):
        check_format_version({}, 1, "x")
    write_text(tmp_path / "bad.json", "{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        read_json(tmp_path / "bad.json")


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "", ".", "..", "/abs", "x" * 65, "-lead", "a\x00b", "knee\n"]
)
def test_safe_name_rejects_traversal(name: str) -> None:
    with pytest.raises(RunFolderError):
        safe_name(name)


def test_safe_name_accepts_plain_names() -> None:
    assert safe_name("knee") == "knee"
    assert safe_name("front_03.mlp-64x64") == "front_03.mlp-64x64"


def test_folders_made_before_a_failing_one_are_all_removed_again(tmp_path: Path) -> None:
    """``make_dirs`` that fails on the third folder (a name too long) removes the two it
    made, the deeper first (top-down, the top one is not empty yet and stays)."""
    from a2d_evo.runs.files import make_dirs

    too_long = tmp_path / "a" / "b" / ("x" * 300)
    with pytest.raises(OSError) as err:
        make_dirs(too_long)
    assert err.value.errno == errno.ENAMETOOLONG
    assert list(tmp_path.iterdir()) == []


def test_a_json_record_may_hold_nan_and_infinity(tmp_path: Path) -> None:
    """``write_json`` writes NaN and infinities (a diverged run's figures) as JSON's
    customary ``NaN``/``Infinity``, which ``read_json`` reads back, instead of refusing."""
    import math

    from a2d_evo.runs.files import read_json, write_json

    write_json(tmp_path / "m.json", {"loss": math.nan, "best": -math.inf})
    assert (tmp_path / "m.json").read_text() == '{\n  "loss": NaN,\n  "best": -Infinity\n}\n'
    back = read_json(tmp_path / "m.json")
    assert math.isnan(back["loss"]) and back["best"] == -math.inf


@pytest.mark.parametrize("content", [[1, 2], {"format_version": "X", "stage": "teacher"}, "rng"])
def test_a_checkpoint_without_every_key_is_not_a_training_checkpoint(
    tmp_path: Path, content: object
) -> None:
    """A torch file that is not a dict holding every :data:`CHECKPOINT_KEYS` is "not an
    a2d-evo training checkpoint" (it was read on and failed on a missing key, or was taken)."""
    from a2d_evo.errors import FormatError
    from a2d_evo.formats import CHECKPOINT_FORMAT_VERSION
    from a2d_evo.runs.files import CHECKPOINT_KEYS, read_checkpoint, torch_save

    path = tmp_path / "ckpt.pt"
    if content == "rng":  # all but one key, each as a valid checkpoint holds it
        full = {"format_version": CHECKPOINT_FORMAT_VERSION, "stage": "teacher", "update": 0,
                "global_step": 0, "model": {}, "optimizer": {}, "rng": {}}  # fmt: skip
        assert set(full) == CHECKPOINT_KEYS
        content = {k: v for k, v in full.items() if k != "rng"}
    torch_save(path, content)
    with pytest.raises(FormatError) as err:
        read_checkpoint(path, "teacher")
    assert str(err.value) == f"teacher checkpoint {path} is not an a2d-evo training checkpoint"


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("update", -1, "'update' must be an integer >= 0, got -1"),
        ("global_step", True, "'global_step' must be an integer >= 0, got True"),
        ("wall_s", float("inf"), "'wall_s' must be a number of seconds >= 0, got inf"),
        ("wall_s", -0.5, "'wall_s' must be a number of seconds >= 0, got -0.5"),
    ],
)
def test_a_checkpoint_s_counts_and_wall_time_are_finite_and_not_negative(
    tmp_path: Path, key: str, value: object, said: str
) -> None:
    """A checkpoint's ``update`` and ``global_step`` are ints >= 0 (-1 and a bool are not),
    its ``wall_s`` a finite number of seconds >= 0."""
    from a2d_evo.errors import FormatError
    from a2d_evo.formats import CHECKPOINT_FORMAT_VERSION
    from a2d_evo.runs.files import read_checkpoint, torch_save

    path = tmp_path / "ckpt.pt"
    ckpt = {"format_version": CHECKPOINT_FORMAT_VERSION, "stage": "teacher", "update": 3,
            "global_step": 96, "model": {}, "optimizer": {}, "rng": {}, "wall_s": 1.5}  # fmt: skip
    torch_save(path, {**ckpt, key: value})
    with pytest.raises(FormatError) as err:
        read_checkpoint(path, "teacher")
    assert str(err.value) == f"teacher checkpoint {path}: {said}"
    torch_save(path, ckpt)
    assert read_checkpoint(path, "teacher")["global_step"] == 96


def test_an_archive_with_a_deflated_member_is_refused_however_small() -> None:
    """A zip whose member is deflated is refused even when what it inflates to is no larger
    than the archive (random bytes: deflate saves nothing); torch.save stores members."""
    import random
    import zipfile

    from a2d_evo.errors import FormatError
    from a2d_evo.runs.files import check_stored_archive

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data/0", random.Random(0).randbytes(1000))
    raw = buf.getvalue()
    assert len(raw) > 1000
    with pytest.raises(FormatError, match=r"^policy.pt holds compressed members, or members "):
        check_stored_archive(raw, "policy.pt")
    stored = io.BytesIO()
    with zipfile.ZipFile(stored, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data/0", random.Random(0).randbytes(1000))
    check_stored_archive(stored.getvalue(), "policy.pt")  # the same member, stored: taken


def test_an_archive_whose_stored_members_claim_more_than_the_file_is_refused() -> None:
    """A stored member whose header claims more bytes than the whole archive holds (1 MB in
    a file of about 130 bytes) is refused: its loader would allocate what it claims."""
    import struct
    import zipfile

    from a2d_evo.errors import FormatError
    from a2d_evo.runs.files import check_stored_archive

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data/0", b"\0" * 8)
    raw = bytearray(buf.getvalue())
    central = raw.index(b"PK\x01\x02")  # the size the reader believes: the central directory's
    raw[central + 24 : central + 28] = struct.pack("<I", 1_000_000)
    with pytest.raises(FormatError, match=r"^policy.pt holds compressed members, or members "):
        check_stored_archive(bytes(raw), "policy.pt")


def test_tensors_whose_values_the_file_does_not_hold_are_named_for_what_they_are() -> None:
    """A sparse tensor, a meta tensor and a stride-0 expansion are each refused with their
    own reason; a dense tensor, and a transposed view of one, are taken."""
    import torch

    from a2d_evo.runs.files import tensor_not_in_file

    assert tensor_not_in_file(torch.zeros(3).to_sparse()) == (
        "is a torch.sparse_coo tensor, not a dense one"
    )
    assert tensor_not_in_file(torch.zeros(3, device="meta")) == (
        "is a meta tensor (a shape without values), not one read from the file"
    )
    assert tensor_not_in_file(torch.zeros(1).expand(5)) == (
        "is not a dense tensor of its shape (its values are not all stored in the file)"
    )
    assert tensor_not_in_file(torch.zeros(2, 3).t()) is None


@pytest.mark.parametrize(("head", "what"), [(b"", "EOFError: "), (b"\x80\x02junk", "")])
def test_an_empty_or_cut_pickle_file_is_truncated_not_foreign(
    tmp_path: Path, head: bytes, what: str
) -> None:
    """An empty file and one that starts as a (pre-1.6) torch pickle are cut or damaged torch
    files, not "not a torch file" (what the damaged pickle raises varies)."""
    from a2d_evo.errors import FormatError
    from a2d_evo.runs.files import torch_load

    path = tmp_path / "policy.pt"
    path.write_bytes(head)
    with pytest.raises(FormatError) as err:
        torch_load(path, "policy")
    assert str(err.value).startswith(f"policy {path} is truncated or corrupted: {what}")


def test_a_json_record_that_is_no_object_reads_as_empty(tmp_path: Path) -> None:
    """``read_json_dict`` of a JSON list (or a missing file) is ``{}``."""
    from a2d_evo.runs.files import read_json_dict

    (tmp_path / "r.json").write_text("[1, 2]\n")
    assert read_json_dict(tmp_path / "r.json") == {}
    assert read_json_dict(tmp_path / "none.json") == {}


def test_a_boolean_format_version_is_no_integer() -> None:
    """``format_version: true`` is refused as no integer (``True == 1`` in Python)."""
    from a2d_evo.errors import FormatError
    from a2d_evo.runs.files import check_format_version

    with pytest.raises(FormatError) as err:
        check_format_version({"format_version": True}, 1, "W")
    assert str(err.value) == "W: format_version True is not an integer"
