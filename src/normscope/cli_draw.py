"""CLI commands for draw (registered on the shared typer app)."""

from .cli import app, console, user_errors  # noqa: F401
