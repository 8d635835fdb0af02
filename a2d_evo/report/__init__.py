"""Report: what a run found, as tables, plots and agent folders picked from the front.

* :mod:`~a2d_evo.report.run_data` -- a run folder read into rows (torch-free): each a
  :mod:`~a2d_evo.report.rows` row, from the files :mod:`~a2d_evo.report.run_files` reads and
  ``agents/delivered.json`` as :mod:`~a2d_evo.report.delivered_file` reads it;
* :mod:`~a2d_evo.report.plots` -- the Pareto plot and the hypervolume plot;
* :mod:`~a2d_evo.report.markdown` -- ``a2d-evo report``: ``RUN_DIR/report/report.md``, from
  :mod:`~a2d_evo.report.tables` (the front, baselines and delivered tables),
  :mod:`~a2d_evo.report.verdicts` (dominance, point and paired) and
  :mod:`~a2d_evo.report.reproduce` (the commands that rebuild the run);
* :mod:`~a2d_evo.report.front_export` -- ``a2d-evo export``: the knee or other front members
  (chosen by :mod:`~a2d_evo.report.pick`) as agent folders, optionally fine-tuned
  (:mod:`~a2d_evo.report.deliver`).

``search/front.json`` is read and checked by :mod:`~a2d_evo.report.front_file`, for both.

Nothing is imported here, so that reading a run folder never loads torch.
"""
