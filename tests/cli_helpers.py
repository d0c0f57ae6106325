"""Running the CLI in-process the way the tests check it: exit code, output, one error line."""

from __future__ import annotations

from typer.testing import CliRunner

from m3restore.cli import app

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def one_error_line(output: str) -> bool:
    lines = [line for line in output.splitlines() if line.strip()]
    return "Traceback" not in output and sum(line.startswith("error:") for line in lines) == 1
