"""Apply alembic migrations programmatically (CLI, server start, tests).

The migrations ship inside the package (forecourt/db/migrations: env.py, script.py.mako,
versions/), so an installed forecourt — a wheel in site-packages, the Docker image — finds
them the same way a source checkout does: as package resources, never relative to a source
tree. The root alembic.ini points at the same folder for developers running `alembic` by hand.
"""

from __future__ import annotations

import atexit
from contextlib import ExitStack
from functools import cache
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config

_resources = ExitStack()
atexit.register(_resources.close)


@cache
def migrations_dir() -> Path:
    """The folder holding env.py and versions/, as a real path for the life of the process.

    For a package on disk (wheel or editable install) as_file yields the folder itself."""
    traversable = resources.files("forecourt.db") / "migrations"
    return _resources.enter_context(resources.as_file(traversable))


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Must be called outside a running event loop (env.py runs its own)."""
    command.upgrade(alembic_config(url), revision)
