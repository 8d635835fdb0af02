"""a2d-evo: small, fast deep-RL agents by distilled one-shot NAS and NSGA-II."""

__version__ = "0.1.0"

__all__ = ["__version__"]
