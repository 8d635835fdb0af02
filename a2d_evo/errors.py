"""The project's own error types: every failure a user can cause raises one of these."""

from __future__ import annotations


class A2DError(Exception):
    """Base class of every error a2d-evo raises on purpose."""


class ConfigError(A2DError, ValueError):
    """A config file, key, type or value is wrong."""


class EnvError(A2DError, ValueError):
    """An environment cannot be built or is not supported (e.g. continuous actions)."""


class ArchError(A2DError, ValueError):
    """An encoding or architecture does not belong to the search space or the supernet."""


class FormatError(A2DError, ValueError):
    """A file we read is missing, truncated, tampered, foreign or of an unknown format version."""


class RunFolderError(A2DError):
    """A run folder is missing a stage, conflicts with the config, or cannot be written."""


class TrainingError(A2DError, RuntimeError):
    """Training cannot go on (non-finite loss, teacher/env mismatch)."""


class KernelInputError(A2DError, ValueError):
    """An array handed to a native kernel has the wrong dtype, shape or layout."""


class Interrupted(A2DError):
    """SIGINT/SIGTERM stopped a command after it saved its state (exit 130, not 2)."""
