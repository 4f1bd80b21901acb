"""CLI commands for analysis (registered on the shared typer app)."""

from .cli import app, console, user_errors  # noqa: F401
