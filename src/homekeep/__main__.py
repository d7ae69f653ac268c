"""Run the CLI as ``python -m homekeep``."""

from homekeep.cli import main

main()
