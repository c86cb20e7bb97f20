"""The ``edgekit`` command line.

Errors: every ``EdgekitError`` becomes one line on stderr and its exit code; anything else is
a bug and says so in one line. ``--debug`` (or EDGEKIT_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from edgekit import __version__
from edgekit.cli import analyze, bench, compare, convert, daemon, demo, examples, fleet, profiles, serve
from edgekit.cli.help import EdgekitCommand
from edgekit.cli.output import stderr
from edgekit.errors import EdgekitError, Interrupted
from edgekit.quiet import debugging, quiet_frameworks

DEBUG_KEY = "edgekit.debug"
# BSD sysexits' EX_SOFTWARE: an internal error, as opposed to the user's input.
INTERNAL_ERROR_EXIT = 70


def _debug_enabled(ctx: typer.Context) -> bool:
    return bool(ctx.meta.get(DEBUG_KEY)) or debugging()


def _report(line: str) -> None:
    stderr.print(f"edgekit: error: {line}", markup=False, highlight=False)


class EdgekitGroup(TyperGroup):
    """Turns edgekit's errors into one line and an exit code, for every subcommand."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # the CLI framework's own flow: exit codes, usage errors
        except EdgekitError as exc:
            if _debug_enabled(ctx):
                raise
            _report(exc.one_line())
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            if _debug_enabled(ctx):
                raise
            _report(Interrupted("interrupted").one_line())
            raise typer.Exit(Interrupted.exit_code) from None
        except Exception as exc:  # a bug, not the user's fault: say so plainly
            if _debug_enabled(ctx):
                raise
            _report(f"internal error ({type(exc).__name__}: {exc}); rerun with --debug for the traceback")
            raise typer.Exit(INTERNAL_ERROR_EXIT) from None


app = typer.Typer(
    name="edgekit",
    cls=EdgekitGroup,
    help="Take a model trained on a server to an edge device, with the numbers to trust it.",
    no_args_is_help=True,
    add_completion=False,
    # Plain click errors (one short block) rather than a boxed panel; no locals in tracebacks.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.add_typer(examples.app, name="examples")
app.command("convert", cls=EdgekitCommand)(convert.convert)
app.command("bench", cls=EdgekitCommand)(bench.bench)
app.command("analyze", cls=EdgekitCommand)(analyze.analyze)
app.add_typer(profiles.app, name="profiles")
app.command("run", cls=EdgekitCommand)(daemon.run)
app.command("watch", cls=EdgekitCommand)(daemon.watch)
app.add_typer(fleet.app, name="fleet")
app.command("deploy", cls=EdgekitCommand)(fleet.deploy)
app.command("rollback", cls=EdgekitCommand)(fleet.rollback)
app.command("broker", cls=EdgekitCommand)(daemon.broker)
app.command("serve", cls=EdgekitCommand)(serve.serve)
app.command("compare", cls=EdgekitCommand)(compare.compare)
app.command("demo", cls=EdgekitCommand)(demo.demo)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"edgekit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
) -> None:
    ctx.meta[DEBUG_KEY] = debug


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    # SIGTERM gets the same clean-up as Ctrl-C: temporary outputs are removed on the way out.
    raise KeyboardInterrupt


def _install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    if hasattr(signal, "SIGUSR1"):
        # `kill -USR1 <pid>` prints where every thread is, on stderr: for a run that seems stuck.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    # A library's worker processes forked from edgekit (a multiprocessing pool inside a converter)
    # are stopped with SIGTERM when the pool closes: they die of it as they would anywhere else,
    # instead of each printing a KeyboardInterrupt traceback under edgekit's one line.
    os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))


def main() -> None:
    if "--debug" in sys.argv:
        os.environ["EDGEKIT_DEBUG"] = "1"  # converters then keep their own output (on stderr)
    quiet_frameworks()
    _install_signal_handlers()
    app(prog_name="edgekit")
    sys.exit(0)
