"""The build as it ships: a wheel installed (not editable) in a clean venv migrates and serves on
its own, from outside the source tree; docker-compose.yml is a valid compose file.

The wheel is built from the files the Dockerfile copies (pyproject.toml, README.md, forecourt/),
so a file the package needs but the image would not contain fails here too. Its dependencies
are resolved from the wheel's own metadata, at the versions requirements.lock pins: a module
imported but not declared fails to import. Needs PyPI (or pip's cache) like `make install`."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.harness import free_port

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("pyproject.toml", "README.md", "forecourt")  # what the Dockerfile copies


def run(*args: str | Path, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


def locked_versions(lock: Path) -> str:
    """requirements.lock without its hashes, as a constraints file: pins, not a requirement list
    (hashes in a constraints file would demand them of the wheel under test too)."""
    pins = []
    for line in lock.read_text().splitlines():
        if re.match(r"^[A-Za-z0-9]", line):
            pins.append(line.removesuffix("\\").strip())
    return "\n".join(pins) + "\n"


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that would reach the source tree or a
    configured database."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL", "REDIS_URL", "PYTHONHOME"}
           and not k.startswith("PYTEST_")}
    return {**env, **extra}


@pytest.mark.timeout(420)
def test_the_wheel_migrates_and_serves_outside_the_source_tree(tmp_path):
    started = time.monotonic()
    source = tmp_path / "source"
    source.mkdir()
    for name in SHIPPED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    env = clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1")
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", wheels, source,
        timeout=180, cwd=tmp_path, env=env)
    [wheel] = wheels.glob("forecourt-*.whl")
    built = time.monotonic()

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, timeout=60, cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(locked_versions(ROOT / "requirements.lock"))
    run(python, "-m", "pip", "install", "--quiet", wheel, "-c", constraints,
        timeout=240, cwd=tmp_path, env=env)
    installed = time.monotonic()

    where = run(python, "-c", "import forecourt, alembic; print(forecourt.__file__); print(alembic.__file__)",
                timeout=30, cwd=tmp_path, env=env).stdout.split()
    site_packages = next((venv / "lib").glob("python3.*/site-packages"))
    assert all(Path(p).is_relative_to(site_packages) for p in where), where
    assert (site_packages / "forecourt" / "db" / "migrations" / "env.py").is_file()
    assert list((site_packages / "forecourt" / "db" / "migrations" / "versions").glob("0001_*.py"))

    forecourt = venv / "bin" / "forecourt"
    home = tmp_path / "elsewhere"  # not the repository: nothing there to import by accident
    home.mkdir()
    env = clean_env(FORECOURT_DATA_DIR=str(tmp_path / "data"), FORECOURT_ENV="development",
                    ARGON2_MEMORY_KIB="1024")
    migrated = run(forecourt, "migrate", timeout=120, cwd=home, env=env)
    assert "migrations applied" in migrated.stdout

    port = free_port()
    proc = subprocess.Popen([str(forecourt), "serve", "--port", str(port)], cwd=home, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert time.monotonic() < deadline and proc.poll() is None, "serve never became healthy"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": "{ __typename }"}, timeout=10)
        assert answer.status_code == 200 and answer.json()["data"] == {"__typename": "Query"}
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, 128 + signal.SIGTERM), output
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists(), output
    print(f"wheel built in {built - started:.0f}s, installed in {installed - built:.0f}s, "
          f"migrated and served in {time.monotonic() - installed:.0f}s")


def _compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    if subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return [docker, "compose"]
    return None


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client")
def test_docker_compose_file_is_valid(tmp_path):
    """`docker compose config` parses and validates the file; it needs no engine."""
    compose = _compose()
    if compose is None:
        pytest.skip("the docker client has no compose plugin")
    env = {**os.environ, "JWT_SECRET": "x" * 40}
    result = subprocess.run([*compose, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    missing = subprocess.run([*compose, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
                             capture_output=True, text=True, timeout=60, cwd=ROOT,
                             env={k: v for k, v in os.environ.items() if k != "JWT_SECRET"})
    assert missing.returncode != 0 and "JWT_SECRET" in missing.stderr


def _imported_top_levels(folder: Path) -> dict[str, str]:
    """Top-level module → a file importing it, for every absolute import under folder."""
    import ast

    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.partition(".")[0], str(path.relative_to(ROOT)))
    return found


def _declared(*extras: str) -> set[str]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return {_normal(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in requirements}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize(("folder", "extras"), [("forecourt", ()), ("tests", ("test",)), ("bench", ("test",))])
def test_every_imported_distribution_is_declared(folder, extras):
    """A module that works only because something else happened to pull its distribution in
    breaks the day that something changes: forecourt/ imports only its dependencies, tests/ and
    bench/ those and the test extra's."""
    from importlib.metadata import packages_distributions

    provided = packages_distributions()
    local = {"forecourt", "tests", "bench"}
    declared = _declared(*extras)
    undeclared = {
        module: (where, provided.get(module))
        for module, where in _imported_top_levels(ROOT / folder).items()
        if module not in sys.stdlib_module_names and module not in local
        and not any(_normal(dist) in declared for dist in provided.get(module, []))
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_the_lock_satisfies_pyproject():
    """A dependency added or raised in pyproject.toml without `make lock` fails here, not on
    the next machine that installs the lock."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in locked_versions(ROOT / "requirements.lock").splitlines():
        name, _, version = line.partition(";")[0].strip().partition("==")
        pins[_normal(name)] = version
    for text in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        requirement = Requirement(text)
        name = _normal(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {requirement.name}=={pins[name]}, pyproject.toml asks {text}: "
            "run make lock"
        )


def test_the_wheel_test_builds_from_what_the_image_copies():
    """The wheel above is built from SHIPPED because the Dockerfile copies exactly that (and
    the lock it installs first)."""
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied.update(line.split()[1:-1])
    assert copied == {*SHIPPED, "requirements.lock"}
