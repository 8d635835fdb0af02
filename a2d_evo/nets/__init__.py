"""Networks: architectures as values, the supernet that holds them all, and what ships.

The map, from values to weights:

* :mod:`~a2d_evo.nets.space` -- :class:`MLPArch` / :class:`CNNArch` values and the one
  :class:`SearchSpace` that encodes, decodes, bounds, samples and canonicalises them
  (torch-free, so a run folder can be read without torch);
* :mod:`~a2d_evo.nets.agent` -- :class:`Agent`, the static network of one arch;
* :mod:`~a2d_evo.nets.supernet` -- :class:`Supernet`, elastic layers holding the largest
  weights, sliced at forward time: ``supernet(obs, arch)``;
* :mod:`~a2d_evo.nets.population` -- one forward for row groups of different subnets (the
  native population kernel, or its per-subnet torch twin);
* :mod:`~a2d_evo.nets.cost` -- exact FLOPs and parameters of an arch, measured latency;
* :mod:`~a2d_evo.nets.agent_folder` -- ``extract(supernet, arch) -> Agent`` and the agent
  folder users ship (``arch.json``, ``policy.pt``, ``metrics.json``, ``policy.onnx``).

Nothing is imported here, so that ``a2d_evo.nets.space`` stays importable without torch.
"""
