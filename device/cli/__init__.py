"""The `rearguard` command: argument parsing and one module per command group."""

from device.cli.main import main

__all__ = ["main"]
