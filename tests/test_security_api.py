"""Holes found by attacking the running service (issue 13), each reproduced against the real app: hidden turns
reaching the LLM, upstream errors leaking, 500s on bad input, and the smaller hardening items."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from api_support import build_corpus, free_port, key
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from answer.llm import LocalLLM
from api.app import create_app
from api.conversations import open_turn
from api.keys import authenticate
from api.logs import QUIETED
from api.services import services_for
from ingest.pipeline import IngestRequest, ingest

pytestmark = pytest.mark.slow

BLUEFIN = """# Project Bluefin

## Budget

The budget of Project Bluefin is 7,350,000 euros for the whole programme.
"""
BLUEFIN_FIGURE = "7,350,000"
BLUEFIN_QUESTION = "What is the budget of Project Bluefin?"


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    settings = build_corpus(root, llm_max_tokens=24)
    bluefin = root / "finance-docs" / "bluefin.md"
    bluefin.parent.mkdir()
    bluefin.write_text(BLUEFIN)
    ingest(settings, IngestRequest(paths=[bluefin], groups=["finance"]))
    return settings


@pytest.fixture(scope="module")
def client(settings):
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "request_id"}, body
    return body["error"]


# ---------------------------------------------------------------- 1: hidden turns never reach a model


@pytest.mark.llm
def test_a_follow_up_from_a_narrower_key_never_hands_the_hidden_answer_to_the_llm(settings, client, monkeypatch):
    """K1 (finance) asks about Bluefin in conversation C; K2 (everyone only) of the same user follows up in C.
    The LLM path is forced for K2 (threshold 1, floor 0), so the follow-up is rewritten and answered by the
    real smollm2; every message handed to it is recorded."""
    k1 = key(settings, "carol", ["finance", "everyone"])
    k2 = key(settings, "carol", ["everyone"])
    first = client.post("/v1/chat", json={"message": BLUEFIN_QUESTION, "use_cache": False}, headers=k1)
    assert first.status_code == 200, first.text
    assert BLUEFIN_FIGURE in first.json()["answer"]["text"]  # the control: K1 may read it
    conversation_id = first.json()["conversation_id"]

    handed: list[str] = []
    real_stream = LocalLLM.stream

    def recording(self, messages, *args, **kwargs):
        handed.extend(message["content"] for message in messages)
        return real_stream(self, messages, *args, **kwargs)

    monkeypatch.setattr(LocalLLM, "stream", recording)
    llm_first = settings.model_copy(update={"passage_threshold": 1.0, "abstain_floor": 0.0})
    with TestClient(create_app(llm_first)) as narrow:
        for stream in (False, True):
            follow_up = {"message": "how much is it?", "conversation_id": conversation_id, "use_cache": False}
            response = narrow.post(f"/v1/chat?stream={str(stream).lower()}", json=follow_up, headers=k2)
            assert response.status_code == 200, response.text
            assert BLUEFIN_FIGURE not in response.text
            assert "Bluefin is 7" not in response.text
    assert handed, "the LLM path was not taken: the test would prove nothing"
    assert any(BLUEFIN_QUESTION in text for text in handed)  # the question itself is the key's own, visible text
    assert not [text for text in handed if BLUEFIN_FIGURE in text]

    # the conversation, read with K2: the answer stays hidden; K1 still gets it as history
    shown = client.get(f"/v1/conversations/{conversation_id}", headers=k2)
    assert BLUEFIN_FIGURE not in shown.text
    sessions = services_for(settings).sessions
    as_k1 = open_turn(sessions, authenticate(settings, k1["Authorization"][7:]), conversation_id).history
    assert any(BLUEFIN_FIGURE in text for role, text in as_k1 if role == "assistant")


def test_an_abstention_naming_hidden_documents_is_hidden_from_a_narrower_key(settings, client):
    """An abstain answer lists the closest documents by title: they count as what the answer rests on."""
    k1 = key(settings, "dave", ["finance", "everyone"])
    k2 = key(settings, "dave", ["everyone"])
    strict = settings.model_copy(update={"abstain_floor": 1.0})  # every answer abstains
    with TestClient(create_app(strict)) as abstaining:
        first = abstaining.post("/v1/chat", json={"message": BLUEFIN_QUESTION, "use_cache": False}, headers=k1)
    answer = first.json()["answer"]
    assert answer["path"] == "abstain" and "Project Bluefin" in answer["text"]
    assert any(item["title"] == "Project Bluefin" for item in answer["related"])
    shown = client.get(f"/v1/conversations/{first.json()['conversation_id']}", headers=k2)
    assert shown.status_code == 200 and "Project Bluefin" not in shown.text.replace(BLUEFIN_QUESTION, "")
    sessions = services_for(settings).sessions
    turn = open_turn(sessions, authenticate(settings, k2["Authorization"][7:]), first.json()["conversation_id"])
    assert turn.history == [("user", BLUEFIN_QUESTION)]


# ---------------------------------------------------------------- 5: upstream errors do not leak

UPSTREAM_SECRET = "sk-live-acme-billing-4242"


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def failing_upstream() -> Iterator[str]:
    """An external tier that refuses every request with a body naming an account key, as real providers do."""
    upstream = FastAPI()

    @upstream.post("/v1/chat/completions")
    async def refuse():
        return JSONResponse({"error": {"message": f"invalid key {UPSTREAM_SECRET} for account acme"}}, 500)

    with serving(upstream) as base_url:
        yield base_url + "/v1"


def test_a_failing_external_tier_gives_clients_a_generic_502_and_the_log_only_its_status(
    settings, failing_upstream, caplog
):
    escalating = settings.model_copy(
        update={
            "external_base_url": failing_upstream,
            "external_model": "big-model",
            "passage_threshold": 1.0,
            "abstain_floor": 0.0,
            "llm_model": "/nonexistent/model.gguf",
        }  # fmt: skip
    )  # the local model is missing, so every LLM question goes to the external tier
    headers = key(settings, "erin", ["everyone"])
    question = "How many days of paid annual leave do full-time employees receive?"
    completion = {"model": "penny", "messages": [{"role": "user", "content": question}]}
    caplog.set_level(logging.INFO)
    with TestClient(create_app(escalating)) as client:
        for response in (
            client.post("/v1/chat", json={"message": question, "use_cache": False}, headers=headers),
            client.post("/v1/chat/completions", json=completion, headers=headers),
        ):
            assert response.status_code == 502, response.text
            assert error_of(response)["code"] == "external_unavailable"
        streamed = [
            client.post("/v1/chat?stream=true", json={"message": question, "use_cache": False}, headers=headers),
            client.post("/v1/chat/completions", json={**completion, "stream": True}, headers=headers),
        ]
    events = [json.loads(line.split("data: ", 1)[1]) for r in streamed for line in r.text.splitlines()
              if line.startswith("data: {") and '"error"' in line]  # fmt: skip
    assert len(events) == 2 and {event["error"]["code"] for event in events} == {"external_unavailable"}
    for text in [response.text, *(r.text for r in streamed)]:
        assert UPSTREAM_SECRET not in text and "acme" not in text and "127.0.0.1" not in text
    served = [record for record in caplog.records if record.levelno >= QUIETED.get(record.name, 0)]
    logged = "\n".join(record.getMessage() for record in served)
    assert "HTTP 500" in logged
    assert UPSTREAM_SECRET not in logged and failing_upstream not in logged
