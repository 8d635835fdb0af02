"""Properties no test pinned, found by a seventh mutation review (2026-12-06): each test below
passes on the code as it is and fails under a small change to it that the covering tests let
through: progress lines in a log (no blank or doubled lines, one per 10 s, none when
disabled, a closed stream), the folder lock (a stale pid rewritten whole, a holder it cannot
name, a folder removed under it, EROFS and EACCES, a one-process world, the run lock's wait),
env imports (a name that is no function, the error's first line, "them", close matches,
gym-style Atari ids), files (folders removed on failure, NaN in JSON, checkpoint keys and
counts, deflated or oversized archive members, tensors without values), config reading
(signed hex, ``nan``, key paths, 64-bit bounds, ALE keys named twice, repeated overrides),
the schema (sticky-only ale_vector games, import length), the command line and the demo."""

from __future__ import annotations

import errno
import io
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from a2d_evo import locks
from a2d_evo.errors import RunFolderError


# ----------------------------------------------------------------------------- progress.py
def test_a_log_line_is_written_only_for_text_and_once() -> None:
    """In a log, tqdm's bare ``\\r`` and ``\\n`` redraws write nothing, and a redraw of text
    writes it on one line of its own (no blank lines between updates)."""
    from a2d_evo.progress import _Lines

    out = io.StringIO()
    lines = _Lines(out)
    assert [lines.write("\r"), lines.write("\n"), lines.write("\rx: 1/4\n")] == [1, 1, 8]
    assert out.getvalue() == "x: 1/4\n"


def test_a_closed_stream_is_no_terminal() -> None:
    """A closed stream's ``isatty`` raises ValueError: it is no terminal, and no error."""
    from a2d_evo.progress import is_terminal

    closed = io.StringIO()
    closed.close()
    assert is_terminal(closed) is False


def test_a_bar_in_a_log_prints_at_most_every_log_interval_and_nothing_when_disabled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Not on a terminal the bar waits :data:`LOG_INTERVAL_S` between lines; a disabled bar
    prints nothing at all."""
    from a2d_evo.progress import LOG_INTERVAL_S, progress_bar

    bar = progress_bar(total=4, desc="evolve", unit="gen")
    assert bar.mininterval == LOG_INTERVAL_S
    bar.close()
    capsys.readouterr()
    quiet = progress_bar(total=4, desc="evolve", unit="gen", enabled=False)
    quiet.update(4)
    quiet.close()
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- locks.py
def test_a_stale_lock_file_s_text_is_replaced_by_the_holder_s_pid(tmp_path: Path) -> None:
    """A ``.lock`` left with longer text (a holder killed before its release) holds exactly
    the new holder's pid once it is taken, not the pid written over the old text."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / locks.LOCK_FILE).write_text("4294967295 left by a killed holder\n")
    with locks.folder_lock(folder):
        assert (folder / locks.LOCK_FILE).read_text() == f"{os.getpid()}@{socket.gethostname()}\n"


def test_a_holder_whose_lock_file_holds_no_pid_is_named_as_unknown(tmp_path: Path) -> None:
    """The refusal names the holder's pid only when the lock file holds digits: other text
    (a holder of another make) reads ``pid unknown``."""
    folder = tmp_path / "run"
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locks.folder_lock(folder):
            with open(folder / locks.LOCK_FILE, "r+") as f:  # the same file, other text
                f.truncate(0)
                f.write("someone\n")
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert inside.wait(10)
        with pytest.raises(RunFolderError, match=r"another a2d-evo command \(pid unknown\);"):
            with locks.folder_lock(folder):
                pass
    finally:
        release.set()
        holder.join(10)


def test_a_folder_removed_between_its_making_and_the_lock_s_open_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused writer removes the empty folder it made; one that does so between this
    writer's making the folder and opening its ``.lock`` (ENOENT) is a race, not an error:
    the folder is made again and locked (and removed again on release, being empty)."""
    folder = tmp_path / "a" / "run"
    real_open, opened = os.open, list[object]()

    def open_after_removal(path: object, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(locks.LOCK_FILE):
            if not opened:  # the other writer's clean-up lands just before this open
                os.rmdir(folder)
                os.rmdir(folder.parent)
            opened.append(path)
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(locks.os, "open", open_after_removal)
    with locks.folder_lock(folder):
        assert (folder / locks.LOCK_FILE).read_text() == f"{os.getpid()}@{socket.gethostname()}\n"
    assert len(opened) == 2
    assert not (tmp_path / "a").exists()


def test_a_read_only_file_system_is_said_as_the_parent_not_being_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder the lock cannot make on a read-only file system (EROFS, as EACCES and EPERM)
    is said as its parent not being writable, not as a failure to create it."""
    folder = tmp_path / "run"

    def read_only(path: str | Path) -> list[Path]:
        raise OSError(errno.EROFS, "Read-only file system", str(folder))

    monkeypatch.setattr(locks, "make_dirs", read_only)
    with pytest.raises(RunFolderError) as err:
        with locks.folder_lock(folder):
            pass
    assert str(err.value) == f"{tmp_path} is not writable (Read-only file system)"


def test_a_one_process_world_locks_whatever_its_rank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a rank other than 0 of a world of two or more processes goes without the lock:
    ``WORLD_SIZE=1`` is one process, which writes and locks (whatever ``RANK`` says)."""
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "1")
    with locks.folder_lock(tmp_path / "run"):
        mine = f"{os.getpid()}@{socket.gethostname()}\n"
        assert (tmp_path / "run" / locks.LOCK_FILE).read_text() == mine


def test_a_lock_refused_with_eacces_is_said_as_held_by_another_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``flock`` may report a held lock as EACCES (as EAGAIN/EWOULDBLOCK): that is another
    writer, not a failure to lock."""

    def held(fd: int, op: int) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(locks.fcntl, "flock", held)
    with pytest.raises(RunFolderError, match=r"run is being written by another a2d-evo command"):
        with locks.folder_lock(tmp_path / "run"):
            pass


def test_binding_a_run_waits_for_another_command_binding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:meth:`RunFolder.bind` waits (:data:`RUN_LOCK_WAIT_S`) for a command holding the
    run-level lock, which holds it for milliseconds, instead of refusing at once: here the
    holder lets go at the first wait, and the bind goes through."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.runfolder import RunFolder

    run = RunFolder(tmp_path / "run")
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locks.folder_lock(run.root):
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    waits: list[float] = []

    def wait(seconds: float) -> None:  # the holder ends its write during this wait
        waits.append(seconds)
        release.set()
        holder.join(10)

    holder.start()
    try:
        assert inside.wait(10)
        monkeypatch.setattr(locks.time, "sleep", wait)
        run.bind(config_from_dict({"env": {"id": "CartPole-v1"}}))
    finally:
        release.set()
        holder.join(10)
    assert waits and run.exists() and not (run.root / locks.LOCK_FILE).exists()


# ----------------------------------------------------------------------------- envs/imports.py


def test_an_import_naming_an_attribute_that_is_no_function_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``module:name`` whose ``name`` is not callable is "no function", not a failed call."""
    from a2d_evo.envs.imports import run_imports
    from a2d_evo.errors import EnvError

    (tmp_path / "notfn_a2d.py").write_text("register = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(EnvError) as err:
        run_imports(["notfn_a2d:register"])
    assert str(err.value) == (
        "env.imports: 'notfn_a2d' has no function 'register' (from 'notfn_a2d:register')"
    )


def test_a_failed_import_quotes_the_first_line_of_its_error_clipped_at_200(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message of a module that fails on import quotes the first line of its error, at
    most 200 characters of it."""
    from a2d_evo.envs.imports import run_imports
    from a2d_evo.errors import EnvError

    (tmp_path / "badimp_a2d.py").write_text(f"raise RuntimeError('{'x' * 250}\\nsecond line')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(EnvError) as err:
        run_imports(["badimp_a2d"])
    assert f"(RuntimeError: {'x' * 200}); install it" in str(err.value)


def test_two_recorded_imports_missing_are_named_as_them() -> None:
    """Two imports to pass again are "them", each with its own ``--env-import``."""
    from a2d_evo.envs.imports import check_recorded_imports
    from a2d_evo.errors import EnvError

    with pytest.raises(EnvError) as err:
        check_recorded_imports(["a.x", "b.y", "minatar.gym:register_envs"], ["c.z"], "W")
    assert str(err.value).endswith("if you trust them, pass --env-import a.x --env-import b.y"), (
        str(err.value)
    )


def test_an_unknown_id_is_never_pointed_at_the_refused_gym_wrappers() -> None:
    """The close matches an unknown id is offered never include gymnasium's wrappers of the
    old gym package, which are refused whatever their id."""
    from a2d_evo.envs.imports import check_env_registered
    from a2d_evo.errors import EnvError

    with pytest.raises(EnvError) as err:
        check_env_registered("GymV26Environment-v1")
    assert str(err.value) == (
        "unknown environment id 'GymV26Environment-v1': not registered with gymnasium (an env "
        "of another package needs its module in env.imports or --env-import)"
    )


def test_an_unknown_id_offers_up_to_three_matches_of_60_percent_likeness() -> None:
    """``cartpole-v1`` (0.82 alike to ``CartPole-v1``, 0.73 to ``CartPole-v0``: difflib's
    ratio) is offered both, best first: matches down to 0.6, more than one of them."""
    from a2d_evo.envs.imports import check_env_registered
    from a2d_evo.errors import EnvError

    with pytest.raises(EnvError, match=r"; did you mean 'CartPole-v1', 'CartPole-v0'"):
        check_env_registered("cartpole-v1")


@pytest.mark.parametrize("env_id", ["Pong-ramNoFrameskip-v4", "PongDeterministic-v4", "Pong-v0"])
def test_every_gym_style_atari_id_points_at_its_ale_id(env_id: str) -> None:
    """Gym-style Atari ids, ``-ram`` ones and ``-v4`` ones too, are refused naming the ALE id
    of their game (registered or not: ale-py registers them once imported)."""
    from a2d_evo.envs.imports import check_env_registered
    from a2d_evo.errors import EnvError

    with pytest.raises(EnvError, match=r"did you mean 'ALE/Pong-v5'\?"):
        check_env_registered(env_id)


# ----------------------------------------------------------------------------- files.py
def test_folders_made_before_a_failing_one_are_all_removed_again(tmp_path: Path) -> None:
    """``make_dirs`` that fails on the third folder (a name too long) removes the two it
    made, the deeper first (top-down, the top one is not empty yet and stays)."""
    from a2d_evo.files import make_dirs

    too_long = tmp_path / "a" / "b" / ("x" * 300)
    with pytest.raises(OSError) as err:
        make_dirs(too_long)
    assert err.value.errno == errno.ENAMETOOLONG
    assert list(tmp_path.iterdir()) == []


def test_a_json_record_may_hold_nan_and_infinity(tmp_path: Path) -> None:
    """``write_json`` writes NaN and infinities (a diverged run's figures) as JSON's
    customary ``NaN``/``Infinity``, which ``read_json`` reads back, instead of refusing."""
    import math

    from a2d_evo.files import read_json, write_json

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
    from a2d_evo.files import CHECKPOINT_KEYS, read_checkpoint, torch_save
    from a2d_evo.formats import CHECKPOINT_FORMAT_VERSION

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
    from a2d_evo.files import read_checkpoint, torch_save
    from a2d_evo.formats import CHECKPOINT_FORMAT_VERSION

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
    from a2d_evo.files import check_stored_archive

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
    from a2d_evo.files import check_stored_archive

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

    from a2d_evo.files import tensor_not_in_file

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
    from a2d_evo.files import torch_load

    path = tmp_path / "policy.pt"
    path.write_bytes(head)
    with pytest.raises(FormatError) as err:
        torch_load(path, "policy")
    assert str(err.value).startswith(f"policy {path} is truncated or corrupted: {what}")


def test_a_json_record_that_is_no_object_reads_as_empty(tmp_path: Path) -> None:
    """``read_json_dict`` of a JSON list (or a missing file) is ``{}``."""
    from a2d_evo.files import read_json_dict

    (tmp_path / "r.json").write_text("[1, 2]\n")
    assert read_json_dict(tmp_path / "r.json") == {}
    assert read_json_dict(tmp_path / "none.json") == {}


def test_a_boolean_format_version_is_no_integer() -> None:
    """``format_version: true`` is refused as no integer (``True == 1`` in Python)."""
    from a2d_evo.errors import FormatError
    from a2d_evo.files import check_format_version

    with pytest.raises(FormatError) as err:
        check_format_version({"format_version": True}, 1, "W")
    assert str(err.value) == "W: format_version True is not an integer"


# ----------------------------------------------------------------------------- config/loader.py
def _refusal(overrides: list[str], **raw: object) -> str:
    """The ConfigError message of ``{"env": {"id": "CartPole-v1"}, **raw}`` + overrides."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.errors import ConfigError

    data: dict[str, object] = {"env": {"id": "CartPole-v1"}, **raw}
    with pytest.raises(ConfigError) as err:
        config_from_dict(data, overrides, source="c.yaml")
    return str(err.value)


def test_yaml_and_set_read_signed_hex_and_octal_ints() -> None:
    """``-0x10`` is -16 and ``+0o17`` is 15, in a file as with ``--set``."""
    from a2d_evo.config.yaml_dialect import parse_yaml

    assert parse_yaml("x: -0x10\ny: +0o17\nz: 0x1_0\n", "f") == {"x": -16, "y": 15, "z": 16}


def test_set_nan_is_refused_as_not_finite() -> None:
    """``--set ppo.lr=nan`` is a float, refused as not finite (not "expected a float")."""
    assert (
        _refusal(["ppo.lr=nan"]) == "--set 'ppo.lr=nan': ppo.lr: expected a finite float, got nan"
    )


def test_set_of_a_key_that_is_no_identifier_is_no_key_path() -> None:
    """``--set a-b.c=1`` is not a dotted key path (not an unknown key)."""
    assert _refusal(["a-b.c=1"]) == "--set 'a-b.c=1': 'a-b.c' is not a dotted key path"


def test_ints_at_the_64_bit_bounds_reach_the_key_s_own_check() -> None:
    """-2**63 and 2**63 - 1 are 64-bit ints: refused by the key's own bounds; 2**63 is not."""
    assert _refusal([], seed=2**63 - 1) == (
        "c.yaml: seed: must be <= 4294967295 (its documented upper bound), got 9223372036854775807"
    )
    assert _refusal([], seed=-(2**63)) == "c.yaml: seed: must be >= 0, got -9223372036854775808"
    assert _refusal([], seed=2**63) == (
        "c.yaml: seed: expected an int, got one outside the 64-bit range"
    )


def test_an_ale_key_named_by_the_file_and_by_set_is_refused_once_naming_the_override(
    tmp_path: Path,
) -> None:
    """``env.sticky_actions`` named (at its default) by a CartPole config and by ``--set``
    is one refused key, said as the override's."""
    from a2d_evo.config import load_config
    from a2d_evo.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text("env:\n  id: CartPole-v1\n  sticky_actions: 0.25\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["env.sticky_actions=0.25"])
    assert str(err.value) == (
        f"{path} with override 'env.sticky_actions=0.25': env.sticky_actions applies to Atari "
        "ids (ALE/...) only, and CartPole-v1 is not one: remove it (an env's own settings go "
        "in env.kwargs, e.g. MinAtar's sticky_action_prob)"
    )


def test_of_two_overrides_of_one_key_the_refusal_names_the_last() -> None:
    """A key set twice by ``--set`` takes the last value, and its refusal names that one
    override alone (also for an item of a list key, ``env.imports[0]``)."""
    assert _refusal(["ppo.num_envs=8", "ppo.num_envs=0"]) == (
        "c.yaml with override 'ppo.num_envs=0': ppo.num_envs: must be >= 1, got 0"
    )
    assert _refusal(["env.imports=[a.b]", "env.imports=[x:y:z]"]) == (
        "c.yaml with override 'env.imports=[x:y:z]': env.imports[0]: expected a module path "
        "or module:function (e.g. minatar.gym:register_envs), got 'x:y:z'"
    )


# ----------------------------------------------------------------------------- config/schema.py
def _schema_refusal(make: Callable[[], object]) -> str:
    """The ConfigError message of ``make()``."""
    from a2d_evo.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        make()
    return str(err.value)


def test_sticky_actions_alone_make_ale_vector_play_its_own_games() -> None:
    """Under ``ale_vector`` an ALE id plays its own games with sticky actions even without
    no-ops; with neither it plays the reference's."""
    from a2d_evo.config import EnvConfig

    sticky = EnvConfig(id="ALE/Pong-v5", backend="ale_vector", noop_max=0, sticky_actions=0.25)
    assert sticky.games() == "ale_vector"
    plain = EnvConfig(id="ALE/Pong-v5", backend="ale_vector", noop_max=0, sticky_actions=0.0)
    assert plain.games() == "reference"


def test_an_env_import_is_at_most_200_characters() -> None:
    """A 200-character module path is taken as an import; 201 characters are not."""
    from a2d_evo.config import EnvConfig

    assert EnvConfig(imports=("a" * 200,)).imports == ("a" * 200,)
    assert _schema_refusal(lambda: EnvConfig(imports=("a" * 201,))) == (
        "env.imports[0]: expected a module path or module:function (e.g. "
        f"minatar.gym:register_envs), got '{'a' * 76}..."
    )


# ----------------------------------------------------------------------------- cli.py
def test_an_env_import_the_config_names_already_is_not_added_again() -> None:
    """``--env-import a.b`` over a config whose ``env.imports`` holds ``a.b`` leaves the
    config as it is (no second ``a.b`` recorded in the run's config.yaml)."""
    import argparse

    from a2d_evo.cli.configs import with_env_imports
    from a2d_evo.config import config_from_dict

    cfg = config_from_dict({"env": {"id": "CartPole-v1", "imports": ["a.b"]}})
    assert with_env_imports(cfg, argparse.Namespace(env_import=["a.b"])) is cfg


def test_an_import_added_by_an_override_over_a_recorded_config_needs_no_env_import() -> None:
    """Only the imports the file records are checked against the allow-list: one the user's
    own ``--set env.imports=[...]`` added is the user's, and runs."""
    import argparse

    from a2d_evo.cli.configs import checked_file_config
    from a2d_evo.config import config_from_dict

    recorded = config_from_dict({"env": {"id": "CartPole-v1"}})
    cfg = config_from_dict({"env": {"id": "CartPole-v1", "imports": ["a.b"]}})
    out = checked_file_config(cfg, recorded, argparse.Namespace(), "RUN/config.yaml")
    assert out.env.imports == ("a.b",)


def test_an_agent_folder_whose_env_id_is_empty_names_no_env(tmp_path: Path) -> None:
    """``arch.json`` with ``env.id: ""`` names no env, said as such (not as a config error)."""
    import argparse
    import json

    from a2d_evo.cli.configs import config_of_agent
    from a2d_evo.errors import ConfigError

    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "arch.json").write_text(json.dumps({"env": {"id": ""}}))
    with pytest.raises(ConfigError) as err:
        config_of_agent(agent, argparse.Namespace())
    assert str(err.value) == f"{agent}/arch.json names no env; run eval inside its run folder"


def test_export_finetune_0_is_a_valid_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``export --finetune 0`` (no fine-tune) passes the count check; -1 does not."""
    from a2d_evo.cli import EXIT_USER_ERROR, main

    run = tmp_path / "norun"
    assert main(["export", str(run), "--finetune", "0", "--quiet"]) == EXIT_USER_ERROR
    assert capsys.readouterr().err.startswith(
        f"a2d-evo export: error: {run} is not a run folder (no config.yaml)"
    )
    assert main(["export", str(run), "--finetune", "-1", "--quiet"]) == EXIT_USER_ERROR
    assert capsys.readouterr().err == "a2d-evo export: error: --finetune: must be >= 0, got -1\n"


def test_baselines_widths_must_be_positive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``baselines --widths 0,0.5``: a zero width multiplier is refused before training."""
    import a2d_evo.train
    from a2d_evo import cli
    from a2d_evo.cli import commands
    from a2d_evo.config import config_from_dict

    cfg = config_from_dict({"env": {"id": "CartPole-v1"}})
    monkeypatch.setattr(commands, "config_of_run", lambda *a, **k: cfg)
    trained: list[list[float]] = []

    def train_baselines(cfg: object, run: object, widths: list[float], **kw: object) -> list[Path]:
        trained.append(widths)
        return []

    monkeypatch.setattr(a2d_evo.train, "train_baselines", train_baselines)
    run = str(tmp_path / "run")
    assert cli.main(["baselines", run, "--widths", "0,0.5", "--quiet"]) == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err == (
        "a2d-evo baselines: error: --widths: expected positive numbers like 0.25,0.5,1, got "
        "'0,0.5'\n"
    )
    assert cli.main(["baselines", run, "--widths", "0.25,1", "--quiet"]) == 0
    assert trained == [[0.25, 1.0]]


# ----------------------------------------------------------------------------- demo.py
def test_a_demo_names_a_lowered_setting_unless_it_is_a_budget_raised_since() -> None:
    """A budget the stage's own ``--resume`` raised above the command's is no change; any
    other setting the command lowers is one (``ppo.update_epochs 4 (this command: 2)``)."""
    from a2d_evo.config import Config, config_from_dict
    from a2d_evo.demo import _changed

    def config(total: int, epochs: int) -> Config:
        return config_from_dict({"env": {"id": "CartPole-v1"},
                                 "teacher": {"total_steps": total},
                                 "ppo": {"update_epochs": epochs}})  # fmt: skip

    class Run:  # the stage's own config.yaml, as a raise of its budget rewrote it
        def stage_config(self, stage: str) -> Config:
            return config(2048, 4)

    run: Any = Run()
    assert _changed(run, "teacher", config(1024, 4)) == ""
    assert _changed(run, "teacher", config(1024, 2)) == ("ppo.update_epochs 4 (this command: 2)")
