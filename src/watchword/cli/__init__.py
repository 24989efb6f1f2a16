"""The ``watchword`` command line (Typer)."""
