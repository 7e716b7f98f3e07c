"""Answer sentences embedded by the ingestion job after its version is live (retrieval/sentence_vectors.py): each
once, the same vectors an answer would make, restartable, and the answer then embeds its question alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

import answer.extract
from answer.router import Answerer
from ingest.pipeline import IngestRequest, ingest
from ingest.remove import remove_documents
from penny import Settings
from retrieval import sentence_vectors
from retrieval.catalogue import Document, IngestionJob, live_version, open_catalogue
from retrieval.embedder import get_embedder
from retrieval.sentences import split_sentences

ROOT = Path(__file__).resolve().parents[1]
LEAVE = ROOT / "data" / "corpus" / "leave"
FILES = [LEAVE / "annual-leave.md", LEAVE / "sick-leave.md", LEAVE / "other-leave.txt"]
QUESTION = "How many days of paid annual leave do full-time employees receive?"


def indexed_sentences(settings: Settings) -> set[str]:
    with open_catalogue(settings)() as session:
        return {s for text in sentence_vectors.indexed_chunk_texts(session) for s in split_sentences(text)}


def stored(settings: Settings, texts) -> dict[str, np.ndarray]:
    with open_catalogue(settings)() as session:
        return sentence_vectors.stored_vectors(session, get_embedder(settings).cache_key, texts)


def marked(settings: Settings) -> bool:
    with open_catalogue(settings)() as session:
        version = live_version(session)
    return sentence_vectors.is_marked(settings, version, get_embedder(settings).cache_key)


@pytest.mark.slow
def test_a_job_embeds_each_new_answer_sentence_once_and_the_answer_then_embeds_only_its_question(tmp_path):
    settings = Settings(data_dir=tmp_path, router_min_gain=1.0, abstain_floor=0.0)
    first = ingest(settings, IngestRequest(paths=FILES[:2]))
    before = indexed_sentences(settings)
    vectors = stored(settings, before)
    assert first.sentences_embedded == len(before) == len(vectors) > 20 and marked(settings)
    with open_catalogue(settings)() as session:  # what `penny jobs` shows
        assert session.get(IngestionJob, first.job_id).counts["sentences_embedded"] == first.sentences_embedded
    sample = sorted(before)[:6]
    live = get_embedder(settings).embed(sample)
    cosines = [
        float(vectors[text] @ vector / np.linalg.norm(vectors[text])) for text, vector in zip(sample, live, strict=True)
    ]
    assert min(cosines) > 0.9999  # the vector the answer would have made, stored as float16

    added = ingest(settings, IngestRequest(paths=FILES))
    assert added.sentences_embedded == len(indexed_sentences(settings) - before) > 0 and marked(settings)
    assert ingest(settings, IngestRequest(paths=FILES)).sentences_embedded == 0

    answers = {}
    for enabled in (True, False):
        answer.extract._sentence_vectors.clear()  # the process's cache would hide the difference
        answerer = Answerer(settings.model_copy(update={"sentence_vectors": enabled}))
        answers[enabled] = answerer.answer(QUESTION, groups=["everyone"], use_cache=False)
    on, off = answers[True], answers[False]
    assert on.path == off.path == "passages" and on.text == off.text and on.citations == off.citations
    assert (on.cost.embed_calls, off.cost.embed_calls) == (1, 2)  # the question; the question, then its sentences


@pytest.mark.slow
def test_a_job_stopped_while_embedding_sentences_stays_published_and_the_next_one_finishes(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path)
    real = sentence_vectors.embed_sentences

    def stopped_halfway(sessions, embedder, texts, **progress):
        texts = list(texts)
        real(sessions, embedder, texts[: len(texts) // 2], **progress)
        raise KeyboardInterrupt  # as a Ctrl-C in that step would

    monkeypatch.setattr(sentence_vectors, "embed_sentences", stopped_halfway)  # as ingest/publish.py calls it
    with pytest.raises(KeyboardInterrupt):
        ingest(settings, IngestRequest(paths=FILES))
    monkeypatch.undo()
    with open_catalogue(settings)() as session:
        assert list(session.scalars(select(IngestionJob.status))) == ["succeeded"]
        assert live_version(session) is not None
    everything = indexed_sentences(settings)
    done = len(stored(settings, everything))
    assert 0 < done < len(everything) and not marked(settings)

    finished = ingest(settings, IngestRequest(paths=FILES))
    assert (finished.unchanged, finished.index_version) == (3, None)  # nothing to re-index, sentences to finish
    assert finished.sentences_embedded == len(everything) - done and marked(settings)

    with open_catalogue(settings)() as session:
        one = session.scalars(select(Document.id)).first()
    remove_documents(settings, [one])
    assert marked(settings)  # fewer documents lack no sentence
