"""`python -m api` runs the `penny` command (api/cli.py is imported as a module, never run as __main__, so the
command modules that import it see one copy of it)."""

from api.cli import app

app(prog_name="penny")
