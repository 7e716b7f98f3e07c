"""What an index version was built with: every setting that shapes it, grouped by the work a change costs.

An index version's manifest records `build_settings`; a reader compares them with its own settings and refuses
a mismatch (`check_build`), and the next ingestion redoes only the stages that differ (`stale_stages`):
chunking means re-chunking documents (and embedding the new chunks), embedding means re-embedding every chunk
under the new model or variant, bm25 and ann mean rebuilding those indexes from what the catalogue holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from penny import IndexUnavailable, Settings
from retrieval.bm25 import BM25_PARAMETERS
from retrieval.embedder import embedding_key

STAGES = ("chunking", "embedding", "bm25", "ann")
# recorded under "chunking" when some indexed documents were cut with other chunking settings
OTHERWISE_CHUNKED = "documents_chunked_otherwise"


def build_settings(settings: Settings, chunks: int) -> dict[str, dict[str, Any]]:
    """The settings that shape an index of `chunks` chunks, by stage; keys are Settings fields where one exists."""
    approximate = chunks >= settings.ann_min_chunks
    return {
        # the tokenizer is the embedding model's own: another model measures chunks differently
        "chunking": {
            "tokenizer": settings.embedding_model,
            "chunk_max_tokens": settings.chunk_max_tokens,
            "chunk_overlap_tokens": settings.chunk_overlap_tokens,
        },
        "embedding": {"embedding_model": settings.embedding_model, "embed_backend": embedding_key(settings)},
        "bm25": {"bm25_backend": settings.bm25_backend, **BM25_PARAMETERS},
        # which structure the dense index has: hnsw_m shapes it only when it is approximate
        "ann": {"approximate": approximate, "hnsw_m": settings.hnsw_m if approximate else None},
    }


def chunking_key(settings: Settings) -> str:
    """What a document records of the chunking that cut it."""
    return json.dumps(build_settings(settings, 0)["chunking"], sort_keys=True)


@dataclass(frozen=True)
class Difference:
    stage: str
    setting: str
    recorded: Any
    current: Any

    def describe(self) -> str:
        name = f"PENNY_{self.setting.upper()}" if self.setting in Settings.model_fields else self.setting
        if self.setting == OTHERWISE_CHUNKED:
            return (
                f"{self.recorded} documents were chunked with other settings and not re-chunked (they are outside "
                "the folders ingested since)"
            )
        if self.setting == "tokenizer":
            name = "the tokenizer (PENNY_EMBEDDING_MODEL)"
        elif self.setting == "approximate":
            name = "the dense index type (PENNY_ANN_MIN_CHUNKS)"
        return f"{name} is {self.current!r} but the index was built with {self.recorded!r}"


def differences(recorded: dict[str, dict[str, Any]] | None, current: dict[str, dict[str, Any]]) -> list[Difference]:
    """Every setting whose value differs; a manifest without build settings (older Penny) differs in all."""
    found = []
    for stage in STAGES:
        old = (recorded or {}).get(stage, {})
        new = current[stage]
        for setting in [*new, *(key for key in old if key not in new)]:
            if old.get(setting, _ABSENT) != new.get(setting, _ABSENT):
                found.append(Difference(stage, setting, old.get(setting, "unrecorded"), new.get(setting)))
    return found


def stale_stages(found: list[Difference]) -> set[str]:
    return {difference.stage for difference in found}


def check_build(manifest: dict[str, Any], settings: Settings, where: str) -> None:
    """Refuse an index version built with other settings, naming the setting and the command that rebuilds."""
    found = differences(manifest.get("build"), build_settings(settings, manifest.get("chunks", 0)))
    if found:
        listed = "; ".join(difference.describe() for difference in found)
        raise IndexUnavailable(
            f"the index in {where} was built with other settings: {listed}. Run `penny ingest PATH` on the same "
            "folders to rebuild what changed, or set those settings back",
            code="index_settings_mismatch",
        )


_ABSENT = object()
