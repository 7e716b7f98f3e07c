"""A tiny corpus with four groups, the service built on it, and a real uvicorn on loopback: shared by the
API tests (test_api.py, test_api_acl.py, test_web.py)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from api.app import create_app
from api.keys import create_key
from ingest.pipeline import IngestRequest, ingest
from penny import Settings

# file name -> (groups that may read it, text)
DOCS: dict[str, tuple[list[str], str]] = {
    "annual-leave.md": (
        ["everyone"],
        """# Annual Leave Policy

## Entitlement

Full-time employees receive 25 days of paid annual leave per leave year.
Part-time employees receive annual leave pro rata to their contracted hours.

## Carry-over

Up to 5 unused days of annual leave may be carried over into the next leave year.
Carried-over days expire on 31 March.
""",
    ),
    "salary-bands.md": (
        ["finance"],
        """# Salary Bands

## Engineering

The salary band for senior engineers is 90,000 to 120,000 euros per year.
Salary reviews happen every April and are approved by the compensation committee.
""",
    ),
    "project-heron.md": (
        ["exec"],
        """# Project Heron

## Acquisition

Project Heron is the planned acquisition of Quill Ltd, a document scanning company in Porto.
The board approved an offer of 14 million euros, to be announced in September.
""",
    ),
    "on-call.md": (
        ["engineering", "finance"],
        """# On-call Policy

## Rota

Engineers on call carry the pager for one week, from Monday 09:00 to the next Monday 09:00.
Each on-call week is paid an allowance of 300 euros.

## Escalation

An unacknowledged page escalates to the secondary engineer after 15 minutes.
""",
    ),
}
GROUPS = ("everyone", "finance", "exec", "engineering", "nobody")
LEAVE_QUESTION = "How many days of paid annual leave do full-time employees receive?"
SALARY_QUESTION = "What is the salary band for senior engineers?"
HERON_QUESTION = "Which company does Project Heron plan to acquire?"
ONCALL_QUESTION = "How much is the on-call allowance per week?"
LLM_QUESTION = "Compare the annual leave entitlement with the carry-over rule."  # "compare" routes to the LLM
QUESTIONS = (LEAVE_QUESTION, SALARY_QUESTION, HERON_QUESTION, ONCALL_QUESTION)


def build_corpus(root: Path, **overrides) -> Settings:
    """Settings for a fresh data directory under `root` with DOCS ingested, each with its own groups."""
    settings = Settings(data_dir=root / "data", llm_model="smollm2-135m", llm_threads=1, **overrides)
    docs = root / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for name, (groups, text) in DOCS.items():
        path = docs / name
        path.write_text(text)
        ingest(settings, IngestRequest(paths=[path], groups=groups))
    return settings


def allowed_paths(settings: Settings, groups: tuple[str, ...]) -> set[str]:
    """Source paths of the DOCS a key with `groups` may read."""
    docs = (settings.data_dir.parent / "docs").resolve()
    return {str(docs / name) for name, (doc_groups, _) in DOCS.items() if set(doc_groups) & set(groups)}


def key(settings: Settings, user: str, groups: list[str], admin: bool = False) -> dict[str, str]:
    token, _ = create_key(settings, user, groups, is_admin=admin)
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """A real uvicorn serving the app on loopback, in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
