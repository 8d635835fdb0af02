"""The run folder: its paths, the config it binds, and the checks of a stage's start or resume.

``RUN_DIR/config.yaml`` binds the run's env and space; each stage folder keeps the config it
was started with, which ``--resume`` must match except for a raised budget
(:mod:`a2d_evo.runs.stage_budget`); the folder's parts and how a run is recognised are
:mod:`a2d_evo.runs.layout`'s. Writes go through :mod:`a2d_evo.runs.files` and hold a
:mod:`a2d_evo.runs.locks` lock.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from a2d_evo.config import (
    Config,
    config_from_dict,
    dump_config,
    env_import_flags,
    parse_yaml,
    read_yaml_text,
)
from a2d_evo.config.compare import config_diff, setting
from a2d_evo.errors import ConfigError, FormatError, RunFolderError
from a2d_evo.formats import ARCH_FILE, CONFIG_FORMAT_VERSION
from a2d_evo.runs.files import (
    check_format_version,
    file_digest,
    make_dirs,
    read_json_dict,
    write_text,
)
from a2d_evo.runs.layout import (
    RUN_PARTS,
    STAGE_STATE,
    holds_a_stage,
    holds_results,
    is_a_run,
    written_by_a_run,
)
from a2d_evo.runs.locks import RUN_LOCK_WAIT_S, folder_lock
from a2d_evo.runs.stage_budget import BUDGET_KEYS, CONFIG_HISTORY, budget_raises, extend_stage

FIXED_SECTIONS = ("env", "space")
"""Sections every command of one run must agree on: they define what the artifacts are."""


STAGE_COMMANDS = {"teacher": "train-teacher", "supernet": "train-supernet", "search": "evolve"}
"""The command that runs each stage (named in messages)."""


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

    def tb_dir(self, *parts: str) -> Path:
        """``RUN_DIR/tb/<parts>``, where a stage writes its TensorBoard logs, refused
        (:meth:`inside`) when a symlink leads it out of the run."""
        return self.inside(self.tb.joinpath(*parts), "TensorBoard logs")

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

    def inside(self, path: Path, what: str) -> Path:
        """``path`` under this run, unless a symlink leads it out of the run folder: then
        RunFolderError (a command reads and writes the run's files only inside RUN_DIR)."""
        try:
            root, target = self.root.resolve(), Path(path).resolve()
        except (RuntimeError, OSError) as exc:  # a symlink loop (RuntimeError on 3.11)
            raise RunFolderError(
                f"{path}: cannot be followed ({exc}); {what} are read and written only "
                f"inside {self.root}: replace the link with a folder"
            ) from None
        if target != root and root not in target.parents:
            raise RunFolderError(
                f"{path} leads outside the run folder (to {target}) through a symlink; "
                f"{what} are read and written only inside {self.root}: replace the link with "
                "a folder, or copy the files in"
            )
        return Path(path)

    @property
    def quoted(self) -> str:
        """The root as one shell word, for the commands messages name."""
        return shlex.quote(str(self.root))

    # -------------------------------------------------------------- config
    def exists(self) -> bool:
        return self.config_path.is_file()

    def load_config(self) -> Config:
        """The run's resolved config (for commands that take RUN_DIR)."""
        self._refuse_part_of_a_run()
        if not self.exists():
            raise RunFolderError(
                f"{self.root} is not a run folder (no config.yaml); run train-teacher, "
                "train-supernet or evolve with --config first"
            )
        return self._read_config(self.config_path)

    def teacher_digest(self) -> str | None:
        """SHA-256 of the teacher's ``policy.pt``; None when there is none."""
        teacher = self.teacher_agent / "policy.pt"
        return file_digest(teacher) if teacher.is_file() else None

    def supernet_teacher(self) -> tuple[str | None, bool]:
        """The teacher ``supernet/summary.json`` says the supernet was distilled from (None
        when it records none) and whether that is the run's own: ``teacher_own``, recorded
        where the path was valid, else (files before it) the path compared with
        ``teacher/agent``."""
        summary = read_json_dict(self.supernet / "summary.json", "supernet summary")
        source, own = summary.get("teacher"), summary.get("teacher_own")
        if not isinstance(source, str):
            return None, False
        if not isinstance(own, bool):
            own = source == str(self.teacher_agent) or (
                Path(source).resolve() == self.teacher_agent.resolve()
            )
        return source, own

    def check_supernet_teacher(self, command: str) -> None:
        """RunFolderError when the supernet was distilled from another teacher than the one in
        ``teacher/agent`` (``train-supernet --teacher``, or the run's own teacher rewritten or
        removed since; ``summary.json``'s ``teacher_sha256``, not recorded before 2026-12-06):
        the search normalises against the run's teacher and export distils from it."""
        summary = read_json_dict(self.supernet / "summary.json", "supernet summary")
        recorded = summary.get("teacher_sha256")
        here = self.teacher_digest()
        if not isinstance(recorded, str) or recorded == here:
            return
        dst = shlex.quote(str(self.teacher_agent))
        again = f"train the supernet again against the run's teacher (delete {self.supernet} first)"
        source, own = self.supernet_teacher()
        if own:
            now = "holds no teacher now" if here is None else "holds another one now"
            raise RunFolderError(
                f"{command}: the supernet was distilled from the teacher in {self.teacher_agent}, "
                f"which {now} (a train-teacher --resume or import-teacher rewrote it, or it was "
                f"removed); the search normalises against the run's teacher: restore that "
                f"teacher, or {again}"
            )
        src = shlex.quote(source) if source is not None else "TEACHER_DIR"
        where = source if source is not None else "another teacher"
        why = (
            f"{command}: the supernet was distilled from {where}, and {self.teacher_agent} "
            "holds {}; the search normalises against the run's teacher and export distils from it"
        )
        if here is None:
            raise RunFolderError(
                why.format("no teacher") + f": copy the supernet's teacher there (`mkdir -p "
                f"{shlex.quote(str(self.teacher))} && cp -r {src} {dst}`)"
            )
        raise RunFolderError(
            why.format("another one") + f": {again}, or replace it with the supernet's teacher "
            f"(`rm -r {dst} && cp -r {src} {dst}`)"
        )

    def weights_digests(self) -> dict[str, str | None]:
        """SHA-256 of the supernet's ``weights.pt`` and the teacher's ``policy.pt`` (None
        when there is none): what a search's figures, and an exported member, are of."""
        weights = self.supernet_weights
        supernet = file_digest(weights) if weights.is_file() else None
        return {"supernet": supernet, "teacher": self.teacher_digest()}

    def stage_config(self, name: str) -> Config | None:
        """The config stage ``name`` ran with (``RUN_DIR/<name>/config.yaml``, which a
        ``--resume`` raising its budget rewrites; ``RUN_DIR/config.yaml`` is not); None
        before the stage ran."""
        path = self.stage(name) / "config.yaml"
        return self._read_config(path) if path.is_file() else None

    def config_since(self, stage: str) -> tuple[Config, Path]:
        """The config ``stage`` ran with and its path (:meth:`stage_config`), else the run's
        ``config.yaml`` (before the stage ran): what the commands after ``evolve`` read, so
        that every agent is scored on the front's own final seeds. Refuses what
        :meth:`load_config` refuses (no run, a part of a run) either way."""
        own = self.load_config()
        staged = self.stage_config(stage)
        if staged is None:
            return own, self.config_path
        return staged, self.stage(stage) / "config.yaml"

    def check(self, cfg: Config) -> None:
        """Refuse ``cfg`` when the run's ``config.yaml`` disagrees on :data:`FIXED_SECTIONS`;
        writes nothing (a command checks early, and binds once its own checks passed)."""
        self._refuse_part_of_a_run()
        if self.exists():
            try:
                saved = self._read_config(self.config_path)
            except RunFolderError as exc:
                if written_by_a_run(self.config_path):
                    raise
                if holds_a_stage(self.root):
                    raise RunFolderError(
                        f"{exc}; {self.root} holds a run's parts, so its config.yaml is damaged "
                        "or was edited: restore it (a stage folder's config.yaml holds the same "
                        "env and space, which are what later commands are checked against)"
                    ) from None
                raise RunFolderError(
                    f"{self.root} is not a run folder: its config.yaml was not written by a "
                    f"run ({exc}); choose another --out (a config of your own goes to --config)"
                ) from None
            diff = config_diff(saved, cfg, FIXED_SECTIONS)
            if diff:
                raise RunFolderError(
                    f"{self.root}: the config conflicts with the run's config.yaml on "
                    f"{', '.join(diff)}; use another --out or the run's own config"
                    + (_imports_hint(saved, cfg) if "env.imports" in diff else "")
                )

    def bind(self, cfg: Config) -> Config:
        """Create the run folder for ``cfg`` or check ``cfg`` against the one there.

        The first command writes ``config.yaml``; later ones must agree on
        :data:`FIXED_SECTIONS`, else :class:`RunFolderError` and nothing is written. Call it
        after the command's own checks (env, device, teacher): validate, then write, so that
        a refused command leaves nothing that blocks the corrected one. The check and the
        write hold the run-level lock (``RUN_DIR/.lock``), so two first commands cannot
        both write.
        """
        self._check_writable()
        with folder_lock(self.root, wait_s=RUN_LOCK_WAIT_S):
            self.check(cfg)
            if not self.exists():
                write_text(self.config_path, dump_config(cfg))
        return cfg

    def check_resumable(self, stage: str) -> None:
        """RunFolderError unless ``RUN_DIR/<stage>/`` holds a run that ``--resume`` can take."""
        folder = self.stage(stage)
        if self.imported_teacher(stage):
            raise RunFolderError(
                f"--resume: {folder} holds an imported teacher, which has no training to "
                f"resume (no checkpoint); {self._replace_teacher_hint()}"
            )
        if not (folder / "config.yaml").is_file():
            if holds_results(folder):
                raise RunFolderError(f"--resume: {self._lost_config(stage)}")
            raise RunFolderError(
                f"--resume: {folder} holds no run to resume; drop --resume to start one"
            )

    def imported_teacher(self, stage: str = "teacher") -> bool:
        """Whether ``stage`` is the teacher's and holds a teacher ``import-teacher`` wrote (its
        ``metrics.json`` says so) with no checkpoint (training writes one before any update)."""
        if stage != "teacher" or (self.stage(stage) / "checkpoint.pt").is_file():
            return False
        source = read_json_dict(self.teacher_agent / "metrics.json").get("source")
        return isinstance(source, str) and source.startswith("import-teacher")

    def _own_config(self, stage: str) -> Config:
        """The stage's own ``config.yaml``; one that cannot be read names the way out."""
        try:
            return self._read_config(self.stage(stage) / "config.yaml")
        except RunFolderError as exc:
            raise RunFolderError(f"{exc}; {self._lost_config(stage)}") from None

    def _lost_config(self, stage: str) -> str:
        """A stage folder that holds results but lost its ``config.yaml``: a fresh start would
        overwrite them and a resume has no settings, so each refusal sent to the other."""
        folder = self.stage(stage)
        return (
            f"{folder} holds a {stage} run but its config.yaml is missing or damaged: restore it "
            f"(the stage's settings: the run's {self.config_path} with any budget raise in "
            f"{folder / CONFIG_HISTORY}), or delete {folder} to start the stage over"
        )

    def _replace_teacher_hint(self) -> str:
        """How to put another teacher where an imported one is."""
        return (
            f"to put another teacher there, delete {self.stage('teacher')} first (evolve then "
            "refuses a supernet distilled from the old one), or use --out for a new run folder"
        )

    def bind_stage(self, stage: str, cfg: Config, resume: bool) -> Path:
        """Bind the run folder to ``cfg`` (:meth:`bind`) and prepare ``RUN_DIR/<stage>/`` for
        a fresh start or a ``--resume``.

        A resume with nothing to resume is refused before anything is written (a
        ``config.yaml`` left behind would block the corrected command); a fresh start refuses
        a stage that already holds results (nothing is overwritten); a resume refuses a config
        that differs on the stage's sections, except for a raised :data:`BUDGET_KEYS` value,
        which extends the stage (even a finished one).
        """
        # a stage folder linked out of the run (a received run) is refused, as agents/ and
        # baselines/ are: its checkpoints and results would be written into another folder
        folder = self.inside(self.stage(stage), f"the {stage} stage's files")
        if resume:
            self.check_resumable(stage)
        self.bind(cfg)
        saved_path = folder / "config.yaml"
        if resume:
            own = self._own_config(stage)
            extend_stage(stage, folder, own, cfg, self.stage_product(stage), self.resume_command)
            return folder
        if self.imported_teacher(stage):
            raise RunFolderError(
                f"{folder} already holds an imported teacher; {self._replace_teacher_hint()}"
            )
        if holds_results(folder) and not saved_path.is_file():
            raise RunFolderError(self._lost_config(stage))
        if holds_results(folder):
            self._own_config(stage)  # a damaged one: "pass --resume" would not take it
            raise RunFolderError(
                f"{folder} already holds a {stage} run; pass --resume to continue it"
                f"{self._longer_hint(stage)}, or --out for a new run folder"
            )
        write_text(saved_path, dump_config(cfg))
        return folder

    def stage_product(self, stage: str) -> Path:
        """The file whose presence says a stage finished: the teacher agent's commit mark, the
        supernet's weights, the search's delivered front."""
        return {
            "teacher": self.teacher_agent / ARCH_FILE,
            "supernet": self.supernet_weights,
            "search": self.search / "front.json",
        }[stage]

    def missing_hint(self, stage: str) -> str:
        """How to get a stage's missing result: resume it where its folder holds what it
        resumes from (it was interrupted, or its budget raised), else run it."""
        state = self.stage(stage) / STAGE_STATE[stage]
        if state.is_file():
            return (
                f"{self.stage(stage)} holds an unfinished {stage} stage (interrupted, or its "
                f"budget raised): continue it with {self.resume_command(stage)}"
            )
        other = " (or `a2d-evo import-teacher`)" if stage == "teacher" else ""
        return f"run `a2d-evo {STAGE_COMMANDS[stage]}`{other} first"

    def resume_command(self, stage: str, extend: dict[str, int] | None = None) -> str:
        """The command line that resumes ``stage`` with its own config, ``extend`` raised."""
        sets = "".join(f" --set {k}={v}" for k, v in (extend or {}).items())
        try:  # a recorded import off the allow-list runs only when named again
            staged = self.stage_config(stage)
        except RunFolderError:  # a broken stage config: the command is refused there anyway
            staged = None
        grant = env_import_flags(staged.env.imports) if staged is not None else ""
        line = (
            f"`a2d-evo {STAGE_COMMANDS[stage]} --config "
            f"{shlex.quote(str(self.stage(stage) / 'config.yaml'))} "
            f"--out {self.quoted} --resume{sets}{grant}`"
        )
        if stage == "supernet":  # a --teacher of its own is not recorded in the stage config
            line += " (with the --teacher it was started with, if any)"
        return line

    def _longer_hint(self, stage: str) -> str:
        """``; to train it longer: <command>`` for a stage with a budget key, else ''."""
        if not BUDGET_KEYS.get(stage):
            return ""
        key = BUDGET_KEYS[stage][0]
        try:
            staged = self.stage_config(stage)
        except RunFolderError:  # a broken stage config: the plain advice must do
            return ""
        if staged is None:  # none: the same
            return ""
        total = setting(staged, key)
        verb = "search" if stage == "search" else "train"
        return f" (to {verb} it longer: {self.resume_command(stage, {key: 2 * total})})"

    def check_resume(self, stage: str, cfg: Config) -> None:
        """RunFolderError unless ``cfg`` may ``--resume`` ``stage``
        (:func:`~a2d_evo.runs.stage_budget.budget_raises`), recording nothing: for a stage that
        reads its saved state before it binds (a search's state is checked against the config, and
        a changed ``search.max_flops`` would read as a damaged file)."""
        self.check_resumable(stage)
        budget_raises(stage, self.stage(stage), self._own_config(stage), cfg, self.resume_command)

    def _refuse_part_of_a_run(self) -> None:
        """RunFolderError when this folder is one of a run's own parts (``RUN_DIR/search``):
        each stage folder holds a ``config.yaml`` too, so it passed for a run and the errors
        then asked to redo stages that had finished."""
        folder = self.root.resolve()
        if is_a_run(folder):  # whatever its name
            return
        # a folder inside a part too (RUN_DIR/agents/front_00, RUN_DIR/tb): a run went there.
        # An ancestor is a run by its config and its parts: a stage folder (a config, no
        # parts) is skipped, and so is a folder holding a copy of a run's config.yaml
        for run in folder.parents[:3]:
            part = folder.relative_to(run).parts[0]
            if part in (*RUN_PARTS, "tb") and is_a_run(run):
                where = (
                    f"the {part} folder" if run == folder.parent else f"inside the {part} folder"
                )
                raise RunFolderError(
                    f"{self.root} is {where} of run {run}, not a run; pass {run}"
                    + ("" if run == folder.parent else ", or another folder for a new run")
                )

    def _check_writable(self) -> None:
        try:
            make_dirs(self.root)
        except OSError as exc:
            raise RunFolderError(f"cannot create run folder {self.root}: {exc.strerror}") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise RunFolderError(f"run folder {self.root} is not writable")

    @staticmethod
    def _read_config(path: Path) -> Config:
        text = read_yaml_text(path, "config", RunFolderError)
        try:
            raw = parse_yaml(text, str(path))
        except ConfigError as exc:
            raise RunFolderError(str(exc)) from None
        # a run's file was written by a2d-evo: it carries its format_version (a user's own
        # --config may leave it out and take the defaults; an empty mapping here may not)
        try:
            check_format_version(raw, CONFIG_FORMAT_VERSION, f"run config {path}")
        except FormatError as exc:  # callers expect a run folder's own error type
            raise RunFolderError(str(exc)) from None
        try:
            return config_from_dict(raw, source=str(path))
        except ConfigError as exc:
            raise RunFolderError(str(exc)) from None


def enclosing_run(path: str | Path) -> RunFolder | None:
    """The run folder an agent folder lies in: ``RUN_DIR`` for ``RUN_DIR/agents/<name>``,
    ``RUN_DIR/teacher/agent`` or ``RUN_DIR/baselines/<name>`` when ``RUN_DIR`` holds a
    ``config.yaml`` a run wrote; None elsewhere (an agent copied beside some unrelated
    ``config.yaml``, a user's own one included, stands alone, on its ``arch.json``)."""
    folder = Path(path).resolve()
    parent = folder.parent
    if parent.name in ("agents", "baselines") or (folder.name, parent.name) == (
        "agent",
        "teacher",
    ):
        if written_by_a_run(parent.parent / "config.yaml"):
            return RunFolder(parent.parent)
    return None


def _imports_hint(saved: Config, cfg: Config) -> str:
    """What to pass or drop when ``env.imports`` differ from the run's (empty if they agree)."""
    missing = [s for s in saved.env.imports if s not in cfg.env.imports]
    extra = [s for s in cfg.env.imports if s not in saved.env.imports]
    parts = []
    if missing:
        parts.append("pass " + " ".join(f"--env-import {s}" for s in missing))
    if extra:
        parts.append("the run records no " + ", ".join(map(repr, extra)))
    return ("; env.imports: " + " and ".join(parts)) if parts else ""
