"""`--help` with the options in named sections, for a command with many (`lgen train`).

Owns `GroupedCommand`: typer's command whose help lists each option under the panel its
`typer.Option(rich_help_panel=...)` names, in the order the panels first appear, with click's
plain formatter (the app turns rich help off, so help reads the same in a terminal, a pipe and
a test). Options without a panel stay under "Options".
"""

from __future__ import annotations

import click
from typer.core import TyperCommand


class GroupedCommand(TyperCommand):
    """A typer command whose options are listed under their panels."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                panel = getattr(param, "rich_help_panel", None) or "Options"
                sections.setdefault(panel, []).append(record)
        for panel, records in sections.items():
            with formatter.section(panel):
                formatter.write_dl(records)
