"""Access control on every endpoint: no key ever receives a passage, citation, cached answer or document outside
its groups (property-based, streaming included), and every admin endpoint refuses a non-admin key."""

from __future__ import annotations

import itertools
import json

import pytest
from api_support import DOCS, GROUPS, QUESTIONS, allowed_paths, build_corpus, key
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from api.app import create_app

pytestmark = pytest.mark.slow

# Text that only each document holds: none of it may reach a key outside the document's groups.
SECRETS = {
    "annual-leave.md": ["25 days", "31 March"],
    "salary-bands.md": ["120,000", "compensation committee"],
    "project-heron.md": ["Quill", "14 million"],
    "on-call.md": ["300 euros", "15 minutes"],
}
OFF_TOPIC = ("What colour is the office cat?", "Who won the 1998 chess olympiad?")
group_sets = st.sets(st.sampled_from(GROUPS), min_size=1, max_size=3).map(lambda s: tuple(sorted(s)))
questions = st.sampled_from(QUESTIONS + OFF_TOPIC)
PROPERTY = hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    # never the LLM (min gain 1): answers are passages or abstentions, so the property tests never wait on the LLM
    return build_corpus(tmp_path_factory.mktemp("acl"), router_min_gain=1.0, abstain_floor=0.3)


@pytest.fixture(scope="module")
def keys(settings):
    """A key per group set, made on first use."""
    made: dict[tuple[str, ...], dict[str, str]] = {}

    def of(groups: tuple[str, ...]) -> dict[str, str]:
        if groups not in made:
            made[groups] = key(settings, "user-" + "-".join(groups), list(groups))
        return made[groups]

    return of


def assert_nothing_forbidden(settings, groups: tuple[str, ...], raw: str) -> None:
    allowed = allowed_paths(settings, groups)
    docs = (settings.data_dir.parent / "docs").resolve()
    for name in DOCS:
        if str(docs / name) in allowed:
            continue
        assert str(docs / name) not in raw, f"{name} leaked to a key of {groups}"
        for secret in SECRETS[name]:
            assert secret not in raw, f"{secret!r} of {name} leaked to a key of {groups}"


def cited_paths(answer: dict) -> set[str]:
    return {citation["source_path"] for citation in answer["citations"]}


@PROPERTY
@given(groups=group_sets, question=questions, k=st.integers(1, 8))
def test_search_never_returns_a_passage_outside_the_keys_groups(client, settings, keys, groups, question, k):
    response = client.post("/v1/search", json={"query": question, "k": k}, headers=keys(groups))
    assert response.status_code == 200
    assert {p["source_path"] for p in response.json()["passages"]} <= allowed_paths(settings, groups)
    assert_nothing_forbidden(settings, groups, response.text)


@PROPERTY
@given(groups=group_sets, question=questions)
def test_chat_and_its_cache_never_cite_outside_the_keys_groups(client, settings, keys, groups, question):
    everything = keys(tuple(sorted(set(GROUPS))))
    assert client.post("/v1/chat", json={"message": question}, headers=everything).status_code == 200  # fills cache
    for _ in range(2):  # the second ask may come from the cache: it must be just as clean
        response = client.post("/v1/chat", json={"message": question}, headers=keys(groups))
        assert response.status_code == 200
        assert cited_paths(response.json()["answer"]) <= allowed_paths(settings, groups)
        assert_nothing_forbidden(settings, groups, response.text)
    conversation = client.get(f"/v1/conversations/{response.json()['conversation_id']}", headers=keys(groups))
    assert_nothing_forbidden(settings, groups, conversation.text)


@PROPERTY
@given(groups=group_sets, question=questions)
def test_streams_never_carry_anything_outside_the_keys_groups(client, settings, keys, groups, question):
    headers = keys(groups)
    chat = client.post("/v1/chat?stream=true", json={"message": question}, headers=headers)
    assert chat.status_code == 200
    answer = json.loads(chat.text.split("event: answer\ndata: ")[1].split("\n")[0])["answer"]
    assert cited_paths(answer) <= allowed_paths(settings, groups)
    assert_nothing_forbidden(settings, groups, chat.text)

    body = {"model": "penny", "stream": True, "messages": [{"role": "user", "content": question}]}
    completion = client.post("/v1/chat/completions", json=body, headers=headers)
    assert completion.status_code == 200
    chunks = [json.loads(line[6:]) for line in completion.text.splitlines() if line.startswith("data: {")]
    assert "penny" in chunks[-1] and cited_paths(chunks[-1]["penny"]) <= allowed_paths(settings, groups)
    assert_nothing_forbidden(settings, groups, completion.text)


@PROPERTY
@given(groups=group_sets)
def test_documents_are_listed_and_shown_only_within_the_keys_groups(client, settings, keys, groups):
    headers = keys(groups)
    allowed = allowed_paths(settings, groups)
    listed = client.get("/v1/documents", headers=headers).json()
    assert {doc["path"] for doc in listed} == allowed
    every = client.get("/v1/documents", headers=keys(tuple(sorted(set(GROUPS))))).json()
    for doc in every:
        shown = client.get(f"/v1/documents/{doc['id']}", headers=headers)
        assert shown.status_code == (200 if doc["path"] in allowed else 404)
        assert_nothing_forbidden(settings, groups, shown.text)


def test_an_llm_answer_cites_only_what_the_key_may_read(tmp_path_factory):
    settings = build_corpus(tmp_path_factory.mktemp("acl-llm"), llm_max_tokens=48)
    with TestClient(create_app(settings)) as client:
        groups = ("everyone",)
        question = "Compare the salary band for senior engineers with the annual leave entitlement."
        response = client.post("/v1/chat", json={"message": question}, headers=key(settings, "erin", list(groups)))
        assert response.status_code == 200
        answer = response.json()["answer"]
        assert answer["path"] in ("llm", "passages", "abstain")
        assert cited_paths(answer) <= allowed_paths(settings, groups)
        assert_nothing_forbidden(settings, groups, response.text)


# ---------------------------------------------------------------- admin endpoints

ADMIN_ENDPOINTS = [
    ("POST", "/v1/ingest", {"paths": ["/tmp"], "groups": ["everyone"]}),
    ("GET", "/v1/jobs", None),
    ("GET", "/v1/jobs/1", None),
    ("DELETE", "/v1/documents/1", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS)
def test_every_admin_endpoint_refuses_a_non_admin_key(client, settings, keys, method, path, body):
    every_group = keys(tuple(sorted(set(GROUPS))))
    response = client.request(method, path, json=body, headers=every_group)
    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "code": "forbidden",
            "message": "this endpoint needs an admin key (`penny keys create --admin`)",
            "request_id": response.headers["x-request-id"],
        }
    }
    anonymous = client.request(method, path, json=body)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    assert len(client.get("/v1/documents", headers=every_group).json()) == len(DOCS)  # nothing was deleted


def test_admin_keys_pass_the_same_endpoints(client, settings):
    admin = key(settings, "root", ["nobody"], admin=True)
    assert client.get("/v1/jobs", headers=admin).status_code == 200
    assert client.get("/v1/jobs/1", headers=admin).json()["status"] == "succeeded"
    # an admin manages every document, whatever its own groups
    assert len(client.get("/v1/documents", headers=admin).json()) == len(DOCS)
    # but reads and asks only within its groups
    assert client.post("/v1/search", json={"query": "annual leave"}, headers=admin).json()["passages"] == []


def test_group_sets_cover_every_document():
    covered = set(itertools.chain.from_iterable(groups for groups, _ in DOCS.values()))
    assert covered <= set(GROUPS) and "nobody" not in covered


def test_the_secrets_do_reach_keys_that_may_read_them(client, keys):
    """The control for the properties above: each document's text does reach a key of its groups."""
    for (name, (groups, _)), question in zip(DOCS.items(), QUESTIONS, strict=True):
        headers = keys(tuple(sorted(groups)))
        searched = client.post("/v1/search", json={"query": question, "k": 1}, headers=headers).text
        answered = client.post("/v1/chat", json={"message": question}, headers=headers).text
        assert any(secret in searched for secret in SECRETS[name]), name
        assert any(secret in answered for secret in SECRETS[name]), name
