"""``python -m a2d_evo`` runs the command line."""

from a2d_evo.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
