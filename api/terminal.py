"""What every `penny` command shares: the consoles it prints on, loading the settings, and failing with a message."""

from __future__ import annotations

import typer
from rich.console import Console

from penny import PennyError, Settings, get_settings

console = Console()
errors = Console(stderr=True)


def settings() -> Settings:
    try:
        return get_settings()
    except PennyError as exc:
        fail(exc)
    except ValueError as exc:  # pydantic's validation error names the setting and what is wrong with it
        fail(PennyError(f"invalid configuration: {exc}"))


def fail(exc: PennyError, code: int = 1):
    errors.print(f"[red]error[/red] ({exc.code}): {exc}")
    raise typer.Exit(code)
