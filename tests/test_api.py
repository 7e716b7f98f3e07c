"""The API on a tiny real index: chat and conversations, feedback, search, admin ingestion, health and metrics,
exact error bodies, limits, the LLM gate, and the OpenAI client (streaming included) against a real uvicorn."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import fields

import httpx
import openai
import pytest
from api_support import (
    LEAVE_QUESTION,
    LLM_QUESTION,
    ONCALL_QUESTION,
    SALARY_QUESTION,
    build_corpus,
    key,
)
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.keys import revoke_key
from api.models import AnswerOut, CitationOut, CostOut
from api.services import services_for
from api.tables import Feedback
from penny import Answer, Citation, Cost
from retrieval.catalogue import open_catalogue

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    return build_corpus(root, ingest_roots=[root / "shared"])  # where POST /v1/ingest may read, besides uploads


@pytest.fixture(scope="module")
def alice(settings):
    return key(settings, "alice", ["everyone", "finance"])


@pytest.fixture(scope="module")
def bob(settings):
    return key(settings, "bob", ["everyone"])


@pytest.fixture(scope="module")
def admin(settings):
    return key(settings, "root", ["everyone"], admin=True)


def test_response_models_carry_every_field_of_the_shared_records():
    assert set(CostOut.model_fields) == {f.name for f in fields(Cost)}  # usd_external included
    assert set(CitationOut.model_fields) == {f.name for f in fields(Citation)}  # and the computed url
    assert set(AnswerOut.model_fields) == {f.name for f in fields(Answer)} - {"question"}  # related included
    cited = Citation(document_id=4, chunk_id=9, title="T", source_path="/t.md", section="S", page=2, quote="q")
    answer = Answer(text="x", path="abstain", confidence=0.1, related=[cited], cost=Cost(usd_external=0.5))
    out = AnswerOut.of(answer)
    assert out.related[0].url == "/v1/documents/4#chunk-9" and out.cost.usd_external == 0.5
    assert AnswerOut.model_validate(out.model_dump(mode="json")) == out  # as stored with a conversation


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "request_id"}
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]


# ---------------------------------------------------------------- health and metrics


def test_health_ready_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready" and ready.json()["index_version"] >= 1
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "penny_answers_total" in metrics.text


def test_readyz_is_503_before_anything_is_ingested(tmp_path):
    from penny import Settings

    with TestClient(create_app(Settings(data_dir=tmp_path / "empty"))) as empty:
        response = empty.get("/readyz")
        assert response.status_code == 503 and error_of(response)["code"] == "not_ready"
        assert empty.get("/healthz").status_code == 200


# ---------------------------------------------------------------- chat, conversations, feedback


def test_chat_answers_from_passages_and_keeps_the_conversation(client, alice, bob):
    first = client.post("/v1/chat", json={"message": LEAVE_QUESTION, "use_cache": False}, headers=alice)
    assert first.status_code == 200, first.text
    body = first.json()
    answer = body["answer"]
    assert answer["path"] == "passages" and "25 days" in answer["text"]
    assert [c["title"] for c in answer["citations"]] == ["Annual Leave Policy"]
    assert answer["citations"][0]["url"].startswith(f"/v1/documents/{answer['citations'][0]['document_id']}")
    assert answer["cost"]["llm_prompt_tokens"] == 0 and answer["cost"]["embed_calls"] > 0
    cited = answer["citations"][0]  # the passage, and the span of it that answers
    assert answer["form"] == "sentence" and "25 days" in cited["passage"][cited["span_start"] : cited["span_end"]]

    again = {"message": "And how many days can be carried over?", "conversation_id": body["conversation_id"]}
    follow_up = client.post("/v1/chat", json=again, headers=alice)
    assert follow_up.status_code == 200 and follow_up.json()["conversation_id"] == body["conversation_id"]

    conversation = client.get(f"/v1/conversations/{body['conversation_id']}", headers=alice)
    assert conversation.status_code == 200
    messages = conversation.json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == LEAVE_QUESTION and messages[1]["answer"]["path"] == "passages"
    assert messages[1]["id"] == body["message_id"]

    # another user neither reads nor continues it
    assert error_of(client.get(f"/v1/conversations/{body['conversation_id']}", headers=bob))["code"] == (
        "conversation_not_found"
    )
    response = client.post("/v1/chat", json={"message": "hi", "conversation_id": body["conversation_id"]}, headers=bob)
    assert response.status_code == 404


def test_chat_streams_deltas_then_the_answer(client, alice):
    with client.stream("POST", "/v1/chat?stream=true", json={"message": ONCALL_QUESTION}, headers=alice) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = [block for block in response.read().decode().split("\n\n") if block]
    names = [block.split("\n")[0] for block in events]
    assert names[-1] == "event: answer" and set(names[:-1]) == {"event: delta"}
    assert "300 euros" in events[-1]


def test_feedback_is_stored_for_the_owner_only(client, settings, alice, bob):
    chat = client.post("/v1/chat", json={"message": SALARY_QUESTION}, headers=alice).json()
    response = client.post(
        "/v1/feedback", json={"message_id": chat["message_id"], "rating": "down", "comment": "too vague"}, headers=alice
    )
    assert response.status_code == 201
    assert response.json() == {"id": response.json()["id"], "message_id": chat["message_id"], "rating": "down"}
    with open_catalogue(settings)() as session:
        row = session.scalars(select(Feedback).where(Feedback.id == response.json()["id"])).one()
        assert (row.user, row.rating, row.comment) == ("alice", -1, "too vague")

    question_id = chat["message_id"] - 1
    assert (
        error_of(client.post("/v1/feedback", json={"message_id": question_id, "rating": "up"}, headers=alice))["code"]
        == "not_an_answer"
    )
    other = client.post("/v1/feedback", json={"message_id": chat["message_id"], "rating": "up"}, headers=bob)
    assert other.status_code == 404 and error_of(other)["code"] == "message_not_found"
    bad = client.post("/v1/feedback", json={"message_id": chat["message_id"], "rating": "meh"}, headers=alice)
    assert bad.status_code == 422 and error_of(bad)["code"] == "invalid_request"


def test_search_returns_passages_with_scores(client, alice):
    response = client.post("/v1/search", json={"query": "on-call allowance", "k": 2}, headers=alice)
    assert response.status_code == 200
    passages = response.json()["passages"]
    assert passages[0]["title"] == "On-call Policy" and passages[0]["rank"] == 1
    assert "300 euros" in " ".join(p["text"] for p in passages)


# ---------------------------------------------------------------- errors and limits


def test_authentication_errors_are_exact(client, settings):
    missing = client.post("/v1/search", json={"query": "leave"})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert error_of(missing)["code"] == "unauthorized" and "Authorization: Bearer" in error_of(missing)["message"]
    wrong = client.post("/v1/search", json={"query": "leave"}, headers={"Authorization": "Bearer penny_nope"})
    assert wrong.status_code == 401 and error_of(wrong)["message"] == "this API key is unknown or revoked"

    token_headers = key(settings, "carol", ["everyone"])
    assert client.post("/v1/search", json={"query": "leave"}, headers=token_headers).status_code == 200
    revoke_key(settings, token_headers["Authorization"].removeprefix("Bearer "))
    assert client.post("/v1/search", json={"query": "leave"}, headers=token_headers).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("post", "/v1/chat", b"{not json", 400, "malformed_json"),
        ("post", "/v1/chat/completions", b'{"messages": [', 400, "malformed_json"),
        ("post", "/v1/chat", b'{"message": "   "}', 400, "empty_question"),
        ("post", "/v1/chat", b'{"message": "' + b"why " * 600 + b'"}', 400, "question_too_long"),
        ("post", "/v1/search", b'{"query": ""}', 400, "empty_question"),
        ("post", "/v1/chat", b'{"question": "wrong field"}', 422, "invalid_request"),
        ("post", "/v1/chat/completions", b'{"messages": [{"role": "assistant", "content": "hi"}]}', 400, "no_question"),
        ("get", f"/v1/conversations/{uuid.uuid4()}", None, 404, "conversation_not_found"),
        ("get", "/v1/documents/99999", None, 404, "document_not_found"),
        ("get", "/v1/no-such-endpoint", None, 404, "not_found"),
        ("put", "/v1/chat", b"{}", 405, "method_not_allowed"),
    ],
)
def test_bad_requests_get_clean_errors(client, alice, method, path, body, status, code):
    headers = {**alice, "content-type": "application/json"}
    response = client.request(method.upper(), path, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert error_of(response)["code"] == code
    assert "Traceback" not in response.text


def test_oversized_bodies_are_refused_with_413(client, alice):
    big = b'{"message": "' + b"x" * 1_100_000 + b'"}'
    response = client.post("/v1/chat", content=big, headers={**alice, "content-type": "application/json"})
    assert response.status_code == 413 and error_of(response)["code"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(12):
            yield b"x" * 100_000

    response = client.post("/v1/chat", content=chunks(), headers={**alice, "content-type": "application/json"})
    assert response.status_code == 413 and error_of(response)["code"] == "payload_too_large"


def test_request_ids_are_on_every_response_and_kept_when_given(client, alice):
    given = uuid.uuid4().hex
    response = client.post("/v1/search", json={"query": "leave"}, headers={**alice, "X-Request-ID": given})
    assert response.headers["x-request-id"] == given
    assert len(client.get("/healthz").headers["x-request-id"]) == 32


def test_per_key_rate_limit(tmp_path_factory, settings):
    limited = settings.model_copy(update={"rate_limit_per_minute": 3})
    headers = key(limited, "dave", ["everyone"])
    with TestClient(create_app(limited)) as limited_client:
        statuses = [limited_client.post("/v1/search", json={"query": "leave"}, headers=headers) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert error_of(statuses[-1])["code"] == "rate_limited" and int(statuses[-1].headers["retry-after"]) >= 1


# ---------------------------------------------------------------- admin


def test_admin_ingests_lists_and_deletes_a_document(client, settings, admin, bob):
    shared = settings.ingest_roots[0]
    shared.mkdir(exist_ok=True)
    path = shared / "parking.md"
    path.write_text(
        "# Parking\n\n## Spaces\n\nThe Leeds office has 40 parking spaces, booked through the front desk.\n"
    )
    started = client.post("/v1/ingest", json={"paths": [str(path)], "groups": ["everyone"]}, headers=admin)
    assert started.status_code == 202, started.text
    job_url = started.json()["url"]
    deadline = time.monotonic() + 120
    while (job := client.get(job_url, headers=admin).json())["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(1.0)  # under the per-key rate limit while a job process starts (seconds on a busy machine)
    assert job["status"] == "succeeded" and job["counts"]["added"] == 1

    documents = client.get("/v1/documents", headers=admin).json()
    parking = next(d for d in documents if d["path"] == str(path.resolve()))
    hits = client.post("/v1/search", json={"query": "parking spaces Leeds", "k": 1}, headers=bob).json()
    assert hits["passages"][0]["document_id"] == parking["id"]
    # the server records a job's counts when its process has exited, a moment after the job row says succeeded
    deadline = time.monotonic() + 30
    while 'penny_ingest_documents_total{outcome="added"} 1.0' not in client.get("/metrics").text:
        assert time.monotonic() < deadline
        time.sleep(0.5)

    deleted = client.delete(f"/v1/documents/{parking['id']}", headers=admin)
    assert deleted.status_code == 200 and deleted.json()["removed"] == 1
    assert parking["id"] not in {d["id"] for d in client.get("/v1/documents", headers=admin).json()}
    hits = client.post("/v1/search", json={"query": "parking spaces Leeds", "k": 3}, headers=bob).json()
    assert parking["id"] not in {p["document_id"] for p in hits["passages"]}
    again = client.delete(f"/v1/documents/{parking['id']}", headers=admin)
    assert again.status_code == 404 and error_of(again)["code"] == "document_not_found"
    assert error_of(client.get("/v1/jobs/424242", headers=admin))["code"] == "job_not_found"
    missing = client.post("/v1/ingest", json={"paths": [str(shared / "absent")]}, headers=admin)
    assert missing.status_code == 400 and "no such file" in error_of(missing)["message"]


def wait_for_job(client, url: str, headers: dict) -> dict:
    deadline = time.monotonic() + 120
    while (job := client.get(url, headers=headers).json())["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(1.0)  # under the per-key rate limit while a job process starts (seconds on a busy machine)
    return job


def test_admin_uploads_documents_that_only_their_groups_can_read(client, settings, admin, alice, bob):
    note = b"# Car hire\n\n## Limits\n\nStaff on business travel may hire a car up to 1,400 cc without approval.\n"
    form = {"groups": ["finance"], "source": "uploads"}
    files = [("files", ("car-hire.md", note, "text/markdown"))]
    refused = client.post("/v1/documents", files=files, data=form, headers=bob)
    assert refused.status_code == 403 and error_of(refused)["code"] == "forbidden"

    started = client.post("/v1/documents", files=files, data=form, headers=admin)
    assert started.status_code == 202, started.text
    assert started.json()["stored"] == ["car-hire.md"]
    job = wait_for_job(client, started.json()["url"], admin)
    assert job["status"] == "succeeded" and job["counts"]["added"] == 1
    stored = settings.data_dir / "uploads" / "car-hire.md"
    assert stored.read_bytes() == note and not list((settings.data_dir / "uploads" / ".incoming").iterdir())

    query = {"query": "hire a car business travel cc", "k": 3}
    assert "1,400 cc" in client.post("/v1/search", json=query, headers=alice).json()["passages"][0]["text"]
    assert all("1,400" not in p["text"] for p in client.post("/v1/search", json=query, headers=bob).json()["passages"])

    edited = [("files", ("car-hire.md", note.replace(b"1,400", b"1,600"), "text/markdown"))]
    again = client.post("/v1/documents", files=edited, data=form, headers=admin)
    job = wait_for_job(client, again.json()["url"], admin)
    assert job["counts"]["updated"] == 1
    assert "1,600 cc" in client.post("/v1/search", json=query, headers=alice).json()["passages"][0]["text"]

    hidden = client.post("/v1/documents", files=[("files", (".env", b"x", "text/plain"))], headers=admin)
    assert hidden.status_code == 400 and "file name" in error_of(hidden)["message"]
    twice = [("files", ("a.md", b"# A\n\ntext\n", "text/markdown"))] * 2
    assert error_of(client.post("/v1/documents", files=twice, headers=admin))["code"] == "bad_input"
    assert not (settings.data_dir / "uploads" / "a.md").exists()


def test_an_upload_over_its_limit_is_refused_and_stores_nothing(settings, admin):
    small = settings.model_copy(update={"max_upload_bytes": 4096})
    with TestClient(create_app(small)) as small_client:
        files = [("files", ("big.txt", b"word " * 2000, "text/plain"))]
        response = small_client.post("/v1/documents", files=files, headers=admin)
        assert response.status_code == 413, response.text
        assert "PENNY_MAX_UPLOAD_BYTES" in error_of(response)["message"]
        ok = small_client.post(
            "/v1/documents", files=[("files", ("tiny.txt", b"x" * 100, "text/plain"))], headers=admin
        )
        assert ok.status_code == 202
        wait_for_job(small_client, ok.json()["url"], admin)
    assert not (settings.data_dir / "uploads" / "big.txt").exists()


# ---------------------------------------------------------------- the LLM gate


def test_passage_answers_do_not_wait_for_a_busy_llm_and_a_full_queue_gets_503(settings, alice):
    gated = settings.model_copy(update={"llm_queue_depth": 0})
    services = services_for(gated)
    release = threading.Event()
    with TestClient(create_app(gated)) as gated_client:
        occupied = services.gate.submit(release.wait, 60)  # the worker is busy, as during a long generation
        try:
            started = time.monotonic()
            body = {"message": LEAVE_QUESTION, "use_cache": False}
            passage = gated_client.post("/v1/chat", json=body, headers=alice)
            assert passage.status_code == 200 and passage.json()["answer"]["path"] == "passages"
            assert not occupied.done(), "the passage answer came back only after the LLM work ended"
            assert time.monotonic() - started < 30

            refused = gated_client.post("/v1/chat", json={"message": LLM_QUESTION, "use_cache": False}, headers=alice)
            assert refused.status_code == 503 and error_of(refused)["code"] == "llm_busy"
            assert int(refused.headers["retry-after"]) >= 1
            assert "penny_llm_rejected_total 1.0" in gated_client.get("/metrics").text
        finally:
            release.set()
        occupied.result(10)
        answered = gated_client.post("/v1/chat", json={"message": LLM_QUESTION, "use_cache": False}, headers=alice)
        assert answered.status_code == 200, answered.text
        answer = answered.json()["answer"]
        assert answer["path"] == "llm" and answer["cost"]["llm_prompt_tokens"] > 0
        assert services.gate.pending == 0


# ---------------------------------------------------------------- the OpenAI client against a real server


def openai_client(server: str, headers: dict[str, str], **options) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=headers["Authorization"].removeprefix("Bearer "), **options)


def test_openai_client_lists_and_retrieves_the_model(server, alice):
    client = openai_client(server, alice, max_retries=0)
    assert [model.id for model in client.models.list()] == ["penny"]
    model = client.models.retrieve("penny")
    assert (model.id, model.object, model.owned_by) == ("penny", "model", "penny") and model.created > 0
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-4o")
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="penny_wrong", max_retries=0).models.list()


def test_openai_client_completion_then_the_same_question_from_the_cache(server, alice):
    client = openai_client(server, alice)
    question = "What is the annual leave entitlement of full-time employees?"  # asked by no other test
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": question}]
    completion = client.chat.completions.create(model="penny", messages=messages)
    assert "25 days" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop" and completion.model == "penny"
    extra = completion.model_extra["penny"]
    assert extra["path"] == "passages" and extra["citations"][0]["title"] == "Annual Leave Policy"
    assert completion.usage.total_tokens == 0  # no LLM tokens on the passage path
    again = client.chat.completions.create(model="any-name", messages=messages)
    assert again.model_extra["penny"]["path"] == "cache" and again.model == "any-name"
    assert again.choices[0].message.content == completion.choices[0].message.content


def test_openai_client_streaming(server, alice):
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=alice["Authorization"].removeprefix("Bearer "))
    stream = client.chat.completions.create(
        model="penny", messages=[{"role": "user", "content": ONCALL_QUESTION}], stream=True
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert "300 euros" in text
    assert chunks[-1].choices[0].finish_reason == "stop"
    extra = chunks[-1].model_extra["penny"]
    assert extra["text"] == text and extra["citations"][0]["title"] == "On-call Policy"
    assert set(extra["cost"]) >= {"llm_prompt_tokens", "llm_completion_tokens", "cpu_seconds", "usd_local"}


def test_openai_client_streams_an_llm_answer(server, alice):
    client = openai_client(server, alice)
    question = "Compare the on-call allowance with the escalation rule."  # "compare": the LLM; asked nowhere else
    chunks = list(
        client.chat.completions.create(model="penny", messages=[{"role": "user", "content": question}], stream=True)
    )
    extra, usage = chunks[-1].model_extra["penny"], chunks[-1].usage
    # the 135M test model may decline (then Penny abstains): either way the LLM ran and its tokens are reported
    assert extra["path"] in ("llm", "abstain") and extra["cost"]["llm_completion_tokens"] > 0
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        extra["cost"]["llm_prompt_tokens"],
        extra["cost"]["llm_completion_tokens"],
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert streamed == extra["text"] or "replaced_streamed_text" in extra["flags"]


def test_a_browser_front_end_on_an_allowed_origin_passes_the_preflight(settings, alice):
    allowed = settings.model_copy(update={"cors_origins": ["https://chat.example"]})
    with TestClient(create_app(allowed)) as cors_client:
        preflight = {
            "Origin": "https://chat.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        response = cors_client.options("/v1/chat/completions", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://chat.example"
        listed = cors_client.get("/v1/models", headers={**alice, "Origin": "https://chat.example"})
        assert listed.json()["data"][0]["id"] == "penny"
        assert listed.headers["access-control-allow-origin"] == "https://chat.example"
        other = cors_client.options("/v1/models", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    with TestClient(create_app(settings)) as plain:
        response = plain.get("/v1/models", headers={**alice, "Origin": "https://chat.example"})
    assert "access-control-allow-origin" not in response.headers  # no origins configured: no CORS at all


def test_openai_client_sees_errors(server, alice):
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="penny_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="penny", messages=[{"role": "user", "content": LEAVE_QUESTION}])
    assert caught.value.code == "unauthorized"
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=alice["Authorization"].removeprefix("Bearer "))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="penny", messages=[{"role": "user", "content": " "}])


def test_raw_sse_over_loopback(server, alice):
    body = {"model": "penny", "stream": True, "messages": [{"role": "user", "content": LEAVE_QUESTION}]}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body, headers=alice, timeout=60) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)


# ---------------------------------------------------------------- penny keys


def test_penny_keys_create_list_revoke(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from api.cli import app
    from api.keys import authenticate
    from penny import Settings, get_settings

    monkeypatch.setenv("PENNY_DATA_DIR", str(tmp_path / "keys"))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        created = runner.invoke(app, ["keys", "create", "--user", "frank", "--group", "hr", "--group", "finance"])
        assert created.exit_code == 0, created.output
        token = created.output.strip().splitlines()[-1]
        caller = authenticate(Settings(data_dir=tmp_path / "keys"), token)
        assert (caller.user, caller.groups, caller.is_admin) == ("frank", ("finance", "hr"), False)

        listed = runner.invoke(app, ["keys", "list", "--json"])
        assert listed.exit_code == 0 and token not in listed.output and token[:12] in listed.output

        revoked = runner.invoke(app, ["keys", "revoke", token[:12]])
        assert revoked.exit_code == 0 and "revoked key 1 of frank" in revoked.output
        assert authenticate(Settings(data_dir=tmp_path / "keys"), token) is None
        assert runner.invoke(app, ["keys", "revoke", "penny_nothing"]).exit_code == 1
        assert runner.invoke(app, ["keys", "create", "--user", " "]).exit_code == 1
    finally:
        get_settings.cache_clear()


# ---------------------------------------------------------------- the gate itself


def test_llm_gate_queues_up_to_its_depth_then_refuses():
    import asyncio
    import os

    from api.errors import ApiError
    from api.llm_gate import LlmGate
    from api.metrics import Metrics

    gate = LlmGate(queue_depth=2, nice=5, metrics=Metrics())
    release = threading.Event()
    try:
        running = gate.submit(release.wait, 30)
        waiting = [gate.submit(lambda: threading.get_native_id()) for _ in range(2)]
        assert gate.pending == 3
        with pytest.raises(ApiError) as refused:
            gate.submit(lambda: None)
        assert refused.value.status == 503 and refused.value.code == "llm_busy"
        assert int(refused.value.headers["Retry-After"]) >= 1
        release.set()
        assert running.result(10) is True
        worker = {future.result(10) for future in waiting}
        assert len(worker) == 1  # one worker thread runs everything, one job at a time
        assert os.getpriority(os.PRIO_PROCESS, worker.pop()) == 5
        assert gate.pending == 0

        async def collect(items):
            return [item async for item in await gate.stream(items)]

        assert asyncio.run(collect(lambda: iter(["a", "b", "c"]))) == ["a", "b", "c"]

        def failing():
            yield "partial"
            raise ValueError("generation failed")

        with pytest.raises(ValueError, match="generation failed"):
            asyncio.run(collect(failing))
    finally:
        release.set()
        gate.close()
