"""Answer sentences embedded ahead of questions, kept in the embeddings table beside the chunks' own vectors.

A passage answer scores its shortlisted sentences by cosine to the question (answer/extract.py). Embedding them at
answer time was most of a passage answer's time (~14 of ~21 ms on the sample), so an ingestion job embeds every
new chunk's sentences once, after its index version is live. They are the very texts the answer would embed, each
run alone as the answer runs it, so the answers do not change; they are stored as float16 (cosine to the float32
vector > 0.9999) under their own model key, since a sentence may have the same text as a chunk but not the same
embedded input.

An index version whose sentences are all embedded has a mark in its folder; a job that finds the live version
unmarked (a job killed in this step, an index from before it, another embedding model) embeds whatever sentence of
the index has no vector, so the step is restartable like every other, and an unchanged re-run reads one file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from penny import Settings
from retrieval.embedder import Embedder
from retrieval.indexer import embed_missing, indexed_chunks, stored_embeddings, text_sha256
from retrieval.sentences import split_sentences
from retrieval.snapshot import version_folder

_MARK = "sentence-vectors.json"
_STORED = np.float16


def sentence_key(cache_key: str) -> str:
    """The embeddings table's model key of answer sentences embedded with the model and variant `cache_key`."""
    return f"{cache_key}#sentence"


def is_marked(settings: Settings, version: int, cache_key: str) -> bool:
    try:
        mark = json.loads((version_folder(settings, version) / _MARK).read_text())
    except (OSError, ValueError):
        return False
    return mark.get("model") == sentence_key(cache_key)


def mark(settings: Settings, version: int, cache_key: str) -> None:
    """Say that every sentence of `version` has its vector; written whole or not at all."""
    folder = version_folder(settings, version)
    staging = folder / f".{_MARK}.tmp"
    staging.write_text(json.dumps({"model": sentence_key(cache_key)}))
    os.replace(staging, folder / _MARK)


def embed_sentences(
    sessions: sessionmaker[Session],
    embedder: Embedder,
    chunk_texts: Iterable[str],
    on_start: Callable[[int], None] = lambda total: None,
    on_batch: Callable[[int], None] = lambda n: None,
) -> int:
    """Embed the sentences of `chunk_texts` that have no stored vector yet; returns how many were embedded."""
    by_hash = {text_sha256(sentence): sentence for text in chunk_texts for sentence in split_sentences(text)}
    return embed_missing(
        sessions,
        embedder,
        by_hash,
        on_batch=on_batch,
        on_start=on_start,
        model=sentence_key(embedder.cache_key),
        dtype=_STORED,
    )


def indexed_chunk_texts(session: Session) -> list[str]:
    """The text of every indexed chunk, as an answer reads it (without the heading the index adds)."""
    return [row.text for row in indexed_chunks(session)]


def stored_vectors(session: Session, cache_key: str, texts: Iterable[str]) -> dict[str, np.ndarray]:
    """The stored vectors of those of `texts` that have one, as float32."""
    by_hash = {text_sha256(text): text for text in texts}
    found = stored_embeddings(session, sentence_key(cache_key), by_hash)
    return {
        by_hash[digest]: np.frombuffer(vector, dtype=_STORED).astype(np.float32) for digest, vector in found.items()
    }
