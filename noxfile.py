"""Developer sessions: `nox -s lint`, `nox -s unit`, `nox -s integration`.

CI runs `bash tools/run-tests.sh`, which is lint + every test in one go; these
sessions are the same steps one at a time, each in a fresh virtualenv.
"""

import nox

nox.options.sessions = ["lint", "unit"]


@nox.session
def lint(session):
    session.install("-e", ".[test]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")  # the typed interfaces: [tool.mypy] files in pyproject.toml


@nox.session
def unit(session):
    session.install("-e", ".[test]")
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session
def integration(session):
    """Needs RabbitMQ, PostgreSQL and MariaDB (tools/ensure-services.sh) and a
    local Mistral venv (python3 tools/mistral_local.py install)."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/integration", *session.posargs)
