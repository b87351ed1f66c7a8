"""Deprecated alias of :mod:`jaxnn.app.cli` (the command line moved to the application wing in
0.2); ``from jaxnn.cli import main, RunConfig`` keeps working."""

from jaxnn.app.cli import RunConfig, build_parser, main

__all__ = ["RunConfig", "build_parser", "main"]
