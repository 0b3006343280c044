"""The command-line skeleton: version, help, and honest failure of commands that have not landed."""

from typer.testing import CliRunner

from dynamo_cli.main import app
from dynamo_core import __version__

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"dynamo {__version__}"


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("prepare", "train", "eval", "visualize", "download", "demo"):
        assert command in result.stdout
    result = runner.invoke(app, ["eval", "--help"])
    for task in ("depth", "motseg", "odometry"):
        assert task in result.stdout


def test_usage_error_exits_2():
    result = runner.invoke(app, ["no-such-command"])
    assert result.exit_code == 2


def test_unfinished_command_fails_clearly_without_traceback():
    import typer

    from dynamo_cli.output import handle_errors
    from dynamo_cli.pending import not_available

    probe = typer.Typer()

    @probe.command()
    @handle_errors
    def later() -> None:
        not_available("later")

    result = runner.invoke(probe, [])
    assert result.exit_code == 1
    assert "`dynamo later` is not available" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
