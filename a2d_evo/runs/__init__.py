"""Run folders: ``RUN_DIR`` holds a run's ``config.yaml`` and a folder for each part
(``teacher/``, ``supernet/``, ``search/``, ``agents/``, ``baselines/``, ``report/``), each written
by its own command.

From the top down (each module imports only those below it):

* :mod:`~a2d_evo.runs.teacher` -- the teacher of the run an agent folder lies in, its scores,
  and what to do about a weak one;
* :mod:`~a2d_evo.runs.folder` -- :class:`~a2d_evo.runs.folder.RunFolder`: its paths, the config
  it binds, and the checks of a stage's start or resume;
* :mod:`~a2d_evo.runs.stage_budget` -- what a ``--resume`` may raise, and its record;
* :mod:`~a2d_evo.runs.layout` -- a run's parts and stages on disk, and how a run is recognised;
* :mod:`~a2d_evo.runs.locks` -- one writer per folder (``fcntl.flock`` on ``<folder>/.lock``);
* :mod:`~a2d_evo.runs.files` -- atomic writes with the user's umask, loads that never run code.

Nothing is imported here, so that reading a run folder never loads torch.
"""
