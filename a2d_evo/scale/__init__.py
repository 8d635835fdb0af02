"""Scale-out: the same training and search on more than one process or machine.

* :mod:`~a2d_evo.scale.ddp` -- torchrun DDP for teacher and supernet training: the process
  group, sharding of env slots, and the collectives the loop needs;
* :mod:`~a2d_evo.scale.ray_population` -- population evaluation on Ray actors
  (``search.backend: ray``), a drop-in for :class:`~a2d_evo.evaluation.PopulationEvaluator`;
* :mod:`~a2d_evo.scale.ray_cluster` -- connecting to Ray: joining a cluster (probed first) or
  starting a local one.

Nothing is imported here: Ray is imported only when a Ray backend is asked for.
"""
