"""The `rearguard` command: argument parsing and one module per command group."""

from device.cli import main as _main
from device.cli.ending import end_process


def main(argv: list[str] | None = None) -> int:
    """The console script (and `python -m device`): the command, then an end
    no stray thread can turn into a native abort (device.cli.ending). Given
    `argv` (a caller in-process) it only runs the command."""
    code = _main.main(argv)
    return code if argv is not None else end_process(code)


__all__ = ["main"]
