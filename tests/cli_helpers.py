"""Running the CLI in tests."""

from __future__ import annotations

from typer.testing import CliRunner

from augtool.cli.app import app

runner = CliRunner()


def run_cli(*args: object):
    """Invoke ``augtool`` in-process; returns click's Result (stdout, stderr, exit_code)."""
    return runner.invoke(app, [str(arg) for arg in args])


def assert_one_line_error(result, *fragments: str) -> None:
    """A user error: non-zero exit, one ``error:`` line naming the problem, no traceback."""
    assert result.exit_code != 0, result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "expected an error message on stderr"
    assert lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[-1], f"{fragment!r} not in {lines[-1]!r}"
