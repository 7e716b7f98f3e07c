"""Holes found by attacking the running service (issue 13), each reproduced against the real app: hidden turns
reaching the LLM, upstream errors leaking, 500s on bad input, and the smaller hardening items."""

from __future__ import annotations

import json
import logging
import socket
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from api_support import build_corpus, free_port, key, live_server
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from answer.llm import LocalLLM
from api.app import create_app
from api.conversations import open_turn, record_turn
from api.keys import authenticate
from api.logs import QUIETED
from api.models import AnswerOut
from api.services import services_for
from ingest.pipeline import IngestRequest, ingest
from penny import Answer, Citation, Settings
from retrieval.catalogue import Document, open_catalogue

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
    llm_first = settings.model_copy(update={"router_min_gain": -1.0, "abstain_floor": 0.0})
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
    strict = settings.model_copy(update={"abstain_floor": 1.0, "router_min_gain": 1.0})  # every answer abstains
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


def test_an_answer_made_from_a_hidden_passage_it_does_not_cite_is_hidden_from_a_narrower_key(settings, client):
    """A model is given several passages and may use one without citing it: the answer below cites only an
    everyone-document, but the finance passage was among those supplied. K2 must not see it, nor get it as history."""
    k1 = key(settings, "erin", ["finance", "everyone"])
    k2 = key(settings, "erin", ["everyone"])
    sessions = services_for(settings).sessions
    with sessions() as session:
        bluefin = session.query(Document).filter(Document.path.like("%bluefin.md")).one()
        public = next(document for document in session.query(Document) if document.groups == ["everyone"])
    cited = Citation(
        document_id=public.id, chunk_id=1, title=public.title, source_path=public.path, section="", page=None
    )
    made_from_both = Answer(
        text=f"Bluefin has {BLUEFIN_FIGURE} euros [1].",
        path="llm",
        confidence=0.5,
        citations=[cited],
        source_documents=sorted({public.id, bluefin.id}),
    )
    as_k1 = authenticate(settings, k1["Authorization"][7:])
    turn = open_turn(sessions, as_k1, None)
    record_turn(sessions, as_k1, turn, BLUEFIN_QUESTION, AnswerOut.of(made_from_both))

    shown = client.get(f"/v1/conversations/{turn.conversation_id}", headers=k2)
    assert shown.status_code == 200 and BLUEFIN_FIGURE not in shown.text
    as_k2 = open_turn(sessions, authenticate(settings, k2["Authorization"][7:]), turn.conversation_id)
    assert as_k2.history == [("user", BLUEFIN_QUESTION)]
    assert BLUEFIN_FIGURE in client.get(f"/v1/conversations/{turn.conversation_id}", headers=k1).text  # the control


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
            "router_min_gain": -1.0,
            "abstain_floor": 0.0,
            "llm_model": "/nonexistent/model.gguf",
        }
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
    events = [
        json.loads(line.split("data: ", 1)[1])
        for r in streamed
        for line in r.text.splitlines()
        if line.startswith("data: {") and '"error"' in line
    ]
    assert len(events) == 2 and {event["error"]["code"] for event in events} == {"external_unavailable"}
    for text in [response.text, *(r.text for r in streamed)]:
        assert UPSTREAM_SECRET not in text and "acme" not in text and "127.0.0.1" not in text
    served = [record for record in caplog.records if record.levelno >= QUIETED.get(record.name, 0)]
    logged = "\n".join(record.getMessage() for record in served)
    assert "HTTP 500" in logged
    assert UPSTREAM_SECRET not in logged and failing_upstream not in logged


# ---------------------------------------------------------------- 6: bad input is a 4xx JSON error, never a 500

BEYOND_ID = str(2**63)  # one past the largest signed 64-bit id
SURROGATE = b'"\\ud800"'  # JSON's escape for half a UTF-16 pair


@pytest.fixture(scope="module")
def admin(settings):
    return key(settings, "root", ["everyone"], admin=True)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/search", b'{"query": ' + SURROGATE + b"}", 422, "invalid_request"),
        ("POST", "/v1/chat", b'{"message": ' + SURROGATE + b"}", 422, "invalid_request"),
        (
            "POST",
            "/v1/chat/completions",
            b'{"messages": [{"role": "user", "content": ' + SURROGATE + b"}]}",
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/chat/completions",
            b'{"messages": [{"role": "user", "content": [{"type": "text", "text": ' + SURROGATE + b"}]}]}",
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/chat/completions",
            b'{"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}',
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/chat/completions",
            b'{"messages": [{"role": "user", "content": [{"type": "text", "text": null}]}]}',
            422,
            "invalid_request",
        ),
        ("GET", f"/v1/documents/{BEYOND_ID}", None, 422, "invalid_request"),
        ("GET", f"/v1/jobs/{BEYOND_ID}", None, 422, "invalid_request"),
        (
            "POST",
            "/v1/feedback",
            b'{"message_id": ' + BEYOND_ID.encode() + b', "rating": "up"}',
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/chat",
            b'{"message": "leave", "document_ids": [' + BEYOND_ID.encode() + b"]}",
            422,
            "invalid_request",
        ),
        ("POST", "/v1/ingest", b'{"paths": ["/' + b"a" * 5000 + b'"]}', 422, "invalid_request"),
        ("POST", "/v1/ingest", b'{"paths": ["/tmp/' + b"a" * 300 + b'.md"]}', 422, "invalid_request"),
        ("POST", "/v1/ingest", b'{"paths": ["/tmp/a\\u0000.md"]}', 422, "invalid_request"),
        # within the schema's 255 characters a name, but 400 bytes in UTF-8: no such file can exist
        ("POST", "/v1/ingest", ('{"paths": ["/tmp/' + "é" * 200 + '.md"]}').encode(), 400, "bad_input"),
        ("POST", "/v1/chat", b'{"message": "\\u0000\\u200b\\u200b\\ufeff"}', 400, "empty_question"),
        ("POST", "/v1/search", b'{"query": "\\u0000\\u0000 \\u2060"}', 400, "empty_question"),
    ],
)
def test_bad_input_gets_a_4xx_json_error(client, admin, method, path, body, status, code):
    response = client.request(method, path, content=body, headers={**admin, "content-type": "application/json"})
    assert response.status_code == status, response.text
    assert error_of(response)["code"] == code


def test_deleting_an_impossible_or_missing_id_is_404_or_422_and_records_no_job(client, admin):
    before = client.get("/v1/jobs", headers=admin).json()
    assert client.delete(f"/v1/documents/{BEYOND_ID}", headers=admin).status_code == 422
    missing = client.delete("/v1/documents/987654", headers=admin)
    assert missing.status_code == 404 and error_of(missing)["code"] == "document_not_found"
    assert client.get("/v1/jobs", headers=admin).json() == before


def test_an_upload_name_too_long_for_the_file_system_is_a_400(client, settings, admin):
    name = "a" * 296 + ".txt"
    response = client.post("/v1/documents", files=[("files", (name, b"some text", "text/plain"))], headers=admin)
    assert response.status_code == 400 and error_of(response)["code"] == "bad_input"
    assert not [p for p in (settings.data_dir / "uploads").rglob("*") if p.is_file() and "aaaa" in p.name]


# ---------------------------------------------------------------- 9: uploads, timestamps


def wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def raw_upload(name: bytes, content: bytes) -> tuple[bytes, dict[str, str]]:
    """A multipart body written by hand: HTTP clients percent-encode a newline in a file name, attackers do not."""
    body = (
        b'--BOUNDARY\r\nContent-Disposition: form-data; name="files"; filename="' + name + b'"\r\n'
        b"Content-Type: text/plain\r\n\r\n" + content + b"\r\n--BOUNDARY--\r\n"
    )
    return body, {"content-type": "multipart/form-data; boundary=BOUNDARY"}


@pytest.mark.parametrize(
    "name", [b"notes\nforged: line.md", b"tab\there.md", b"vt\x0bhere.md", "zero\u200bwidth.md".encode(), b"tool.exe"]
)
def test_upload_names_with_control_characters_or_unread_types_are_refused_and_nothing_is_stored(
    client, settings, admin, name
):
    body, headers = raw_upload(name, b"# Notes\n\ntext\n")
    response = client.post("/v1/documents", content=body, headers={**admin, **headers})
    assert response.status_code == 400 and error_of(response)["code"] == "bad_input"
    uploads = settings.data_dir / "uploads"
    assert not uploads.exists() or not [p.name for p in uploads.rglob("*") if p.is_file()], "a refused file stayed"


def test_an_upload_the_job_refuses_is_removed_from_disk(client, settings, admin):
    files = [
        ("files", ("empty.md", b"", "text/markdown")),
        ("files", ("binary.txt", b"\x00\x01\x02" * 300, "text/plain")),
        ("files", ("kept.md", b"# Kept\n\nThe kept file stays where its document points.\n", "text/markdown")),
    ]
    started = client.post("/v1/documents", files=files, headers=admin)
    assert started.status_code == 202, started.text
    uploads = settings.data_dir / "uploads"
    wait_for(lambda: not (uploads / "empty.md").exists() and not (uploads / "binary.txt").exists())
    job = client.get(started.json()["url"], headers=admin).json()
    assert job["status"] == "succeeded" and job["counts"]["failed"] + job["counts"]["skipped"] == 2, job
    assert (uploads / "kept.md").is_file()
    assert stat.S_IMODE(uploads.stat().st_mode) == 0o700 and stat.S_IMODE((uploads / "kept.md").stat().st_mode) == 0o600


def test_timestamps_in_responses_carry_their_time_zone(client, admin):
    from datetime import datetime

    documents = client.get("/v1/documents", headers=admin).json()
    shown = client.get(f"/v1/documents/{documents[0]['id']}", headers=admin).json()
    job = client.get("/v1/jobs", headers=admin).json()[0]
    chat = client.post("/v1/chat", json={"message": "annual leave"}, headers=admin).json()
    conversation = client.get(f"/v1/conversations/{chat['conversation_id']}", headers=admin).json()
    stamps = [
        documents[0]["updated_at"],
        shown["updated_at"],
        job["started_at"],
        job["finished_at"],
        conversation["created_at"],
        conversation["messages"][0]["created_at"],
    ]
    for stamp in stamps:
        assert datetime.fromisoformat(stamp).utcoffset() is not None, stamp
        assert stamp.endswith(("Z", "+00:00")), stamp


def test_repeated_wrong_keys_from_one_address_are_throttled(settings):
    strict = settings.model_copy(update={"auth_failures_per_minute": 3})
    good = key(settings, "frank", ["everyone"])
    query = {"query": "annual leave"}
    with TestClient(create_app(strict), client=("10.0.0.7", 50000)) as guesser:
        statuses = [
            guesser.post("/v1/search", json=query, headers={"Authorization": f"Bearer penny_guess{n}"})
            for n in range(4)
        ]
        assert [r.status_code for r in statuses] == [401, 401, 401, 429]
        assert error_of(statuses[-1])["code"] == "rate_limited" and int(statuses[-1].headers["retry-after"]) >= 1
        assert guesser.post("/v1/search", json=query, headers=good).status_code == 429  # even a right guess
    with TestClient(create_app(strict), client=("10.0.0.8", 50000)) as neighbour:
        assert neighbour.post("/v1/search", json=query, headers=good).status_code == 200


def test_a_half_sent_body_is_answered_408_and_the_connection_closed(settings):
    impatient = settings.model_copy(update={"request_read_timeout_seconds": 1.0})
    with live_server(impatient) as base_url:
        host, port = base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=15) as connection:
            connection.sendall(
                b"POST /v1/search HTTP/1.1\r\nHost: penny\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"query": "annual'
            )
            started, received = time.monotonic(), b""
            while chunk := connection.recv(4096):  # until the server closes the connection
                received += chunk
            elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert b'"code":"request_timeout"' in received
    assert elapsed < 10


def test_a_new_catalogue_and_its_folder_are_readable_by_their_owner_only(tmp_path):
    private = Settings(data_dir=tmp_path / "private")
    key(private, "grace", ["everyone"])  # opens the catalogue and writes to it (WAL files appear)
    assert stat.S_IMODE(private.data_dir.stat().st_mode) == 0o700
    files = sorted(private.data_dir.glob("catalogue.db*"))
    assert files and all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files), files
    assert open_catalogue(private) is not None


def test_the_openapi_schema_lists_error_responses_and_question_lengths(client):
    schema = client.get("/openapi.json").json()
    expected = {
        ("/v1/chat", "post"): {"400", "401", "404", "413", "422", "429", "503"},
        ("/v1/chat/completions", "post"): {"400", "401", "413", "422", "429", "502", "503"},
        ("/v1/search", "post"): {"400", "401", "413", "429", "503"},
        ("/v1/ingest", "post"): {"400", "401", "403", "409", "413", "429", "503"},
        ("/v1/documents", "post"): {"400", "401", "403", "409", "413", "429"},
        ("/v1/documents/{document_id}", "get"): {"401", "404", "422"},
        ("/v1/documents/{document_id}", "delete"): {"401", "403", "404", "409"},
    }
    for (path, method), statuses in expected.items():
        responses = schema["paths"][path][method]["responses"]
        assert statuses <= set(responses), (path, method, sorted(responses))
        for status in statuses:
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorOut"
            }
    models = schema["components"]["schemas"]
    assert models["ChatRequest"]["properties"]["message"]["minLength"] == 1
    assert models["SearchRequest"]["properties"]["query"]["minLength"] == 1
