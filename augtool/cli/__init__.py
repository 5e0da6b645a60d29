"""The ``augtool`` command line: thin typer modules over the core and the methods."""

from __future__ import annotations
