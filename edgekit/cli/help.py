"""Help text as a command line's users read it: ``edgekit bench [OPTIONS] MODEL...``.

Typer 0.29 writes required arguments as ``{model}`` and lists their Python type
(``<list[Path]>``); those are the framework's placeholders, not words for a user. Every edgekit
command uses this class, so usage lines and argument lists read as click has always written them.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand


def argument_name(param: Any) -> str:
    """``MODEL...`` (required, repeatable), ``[FILES]...`` (optional), ``SOURCE``."""
    name = str(param.metavar or param.name or "").upper()
    if param.nargs != 1:
        name += "..."
    return name if param.required else f"[{name}]"


class EdgekitCommand(TyperCommand):
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        pieces += [argument_name(p) for p in self.get_params(ctx) if p.param_type_name == "argument"]
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((argument_name(param), record[1]))
            else:
                options.append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)
