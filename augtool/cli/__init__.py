"""The ``augtool`` command line: thin typer modules over the core and the methods."""
