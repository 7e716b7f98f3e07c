"""Request and response bodies of the API, kept apart from the library's records (penny.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasPath, BaseModel, ConfigDict, Field, computed_field, model_validator

from penny import FLAGS, Answer, AnswerForm, AnswerPath

# Ids fit SQLite's signed 64-bit integers; past 2^53 JSON numbers lose precision (JavaScript, many clients), and
# the catalogue never counts that far: a larger id cannot name a row.
MAX_ID = 2**53 - 1
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux
MAX_NAME_BYTES = 255  # NAME_MAX: the longest file or folder name in a path


def _as_utc(value: datetime) -> datetime:
    """The catalogue stores UTC without a zone (SQLite has none): say so in every response."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


def _lone_surrogates(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= char <= "\udfff" for char in value)
    if isinstance(value, dict):
        return any(_lone_surrogates(key) or _lone_surrogates(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_lone_surrogates(item) for item in value)
    return False


class RequestBody(BaseModel):
    """A JSON request body. JSON's \\u escapes can spell half a UTF-16 pair, which no UTF-8 text (a model, the
    catalogue) can hold: such bodies are refused whole, before any field is used."""

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        if _lone_surrogates(data):
            raise ValueError("the text holds a lone UTF-16 surrogate (such as \\ud800): send valid Unicode")
        return data


# ---------------------------------------------------------------- errors


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, for machines: unauthorized, empty_question, rate_limited, ...")
    message: str = Field(description="For people: what went wrong and what to change")
    request_id: str = Field(description="The X-Request-ID of the request, as in the server's log")


class ErrorOut(BaseModel):
    error: ErrorDetail


_ERROR_MEANINGS = {
    400: "The request is well-formed but unusable (an empty question, a bad file name, ...)",
    401: "No API key, or an unknown or revoked one",
    403: "The key may not use this endpoint (admin only)",
    404: "No such resource that this key may read",
    408: "The request body stopped arriving (PENNY_REQUEST_READ_TIMEOUT_SECONDS)",
    409: "Another ingestion job is running",
    413: "The body is over PENNY_MAX_REQUEST_BYTES (uploads: PENNY_MAX_UPLOAD_BYTES)",
    422: "The body or a parameter does not match the schema",
    429: "Too many requests for this key, or too many wrong keys from this address; see Retry-After",
    502: "The external model tier failed",
    503: "Not ready (no index, no model) or the local LLM is busy; see Retry-After",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with the one error body every error has."""
    return {status: {"model": ErrorOut, "description": _ERROR_MEANINGS[status]} for status in statuses}


# Every /v1 endpoint can answer these: a bad body, a missing key, limits.
COMMON_ERRORS = (400, 401, 408, 413, 422, 429)


# ---------------------------------------------------------------- answers

_FLAGS_DOC = "What happened on the way, each `name` or `name:detail` (penny.FLAGS): " + "; ".join(
    f"`{name}`: {meaning}" for name, meaning in FLAGS.items()
)


class CitationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from penny.Citation as it is
    document_id: int
    chunk_id: int
    title: str
    source_path: str
    section: str
    page: int | None
    quote: str = Field("", description="The sentences of the chunk the answer rests on (passage answers)")
    passage: str = Field("", description="Passage answers: the cited passage's text (else empty)")
    span_start: int | None = Field(None, description="Passage answers: where the answering span starts in `passage`")
    span_end: int | None = Field(None, description="Passage answers: where it ends (exclusive)")

    @computed_field(description="Where the web page links the citation: the document in the API")
    @property
    def url(self) -> str:
        return f"/v1/documents/{self.document_id}#chunk-{self.chunk_id}"


class CostOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # penny.Cost, every field
    embed_calls: int
    retrieval_cpu_ms: float
    llm_prompt_tokens: int
    llm_completion_tokens: int
    llm_wall_seconds: float
    llm_cpu_seconds: float
    cpu_seconds: float
    usd_local: float
    usd_api_equivalent: float
    usd_external: float = Field(0.0, description="What the external tier charged for this answer")


class AnswerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # penny.Answer as it is, less the question it answers
    text: str
    path: AnswerPath
    confidence: float
    citations: list[CitationOut]
    cost: CostOut
    standalone_question: str = ""
    flags: list[str] = Field([], description=_FLAGS_DOC)
    related: list[CitationOut] = Field(default=[], description="Closest documents when the path is abstain")
    form: AnswerForm | None = Field(None, description="A passage answer's shape: figure|span|sentence|block|passage")
    source_documents: list[int] = Field(
        default=[], description="Every document whose text reached the answer, cited or only given to the model"
    )

    @classmethod
    def of(cls, answer: Answer) -> AnswerOut:
        return cls.model_validate(answer)


# ---------------------------------------------------------------- chat and conversations


class ChatRequest(RequestBody):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(description="The question", json_schema_extra={"minLength": 1})
    conversation_id: str | None = Field(None, description="Continue this conversation; a new one when absent")
    document_ids: list[RowId] = Field(default_factory=list, max_length=100, description="Only these documents")
    use_cache: bool = True


class ChatResponse(BaseModel):
    conversation_id: str
    message_id: int
    answer: AnswerOut


class MessageOut(BaseModel):
    id: int
    role: Literal["user", "assistant"]
    content: str
    answer: AnswerOut | None = None
    created_at: UtcDatetime


class ConversationOut(BaseModel):
    id: str
    owner: str
    created_at: UtcDatetime
    messages: list[MessageOut]


class FeedbackRequest(RequestBody):
    model_config = ConfigDict(extra="forbid")
    message_id: RowId
    rating: Literal["up", "down"]
    comment: str = Field("", max_length=4000)


class FeedbackResponse(BaseModel):
    id: int
    message_id: int
    rating: Literal["up", "down"]


# ---------------------------------------------------------------- search


class SearchRequest(RequestBody):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(json_schema_extra={"minLength": 1})
    k: int = Field(5, ge=1, le=50)
    document_ids: list[RowId] = Field(default_factory=list, max_length=100)


def _of_chunk(name: str):
    return Field(validation_alias=AliasPath("chunk", name))


class PassageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # penny.Passage, its chunk's fields lifted up
    rank: int
    score: float
    dense_score: float | None
    bm25_score: float | None
    chunk_id: int = _of_chunk("id")
    document_id: int = _of_chunk("document_id")
    title: str = _of_chunk("title")
    section: str = _of_chunk("section")
    source_path: str = _of_chunk("source_path")
    page: int | None = _of_chunk("page")
    text: str = _of_chunk("text")


class SearchResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # penny.SearchResult
    passages: list[PassageOut]
    confidence: float
    index_version: int


# ---------------------------------------------------------------- OpenAI-compatible chat completions


class ContentPart(BaseModel):
    """One part of a message's content: a text part has its text; other kinds (images, audio) are ignored."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None

    @model_validator(mode="after")
    def _text_has_text(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise ValueError("a content part of type `text` needs its `text` as a string")
        return self


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class CompletionRequest(RequestBody):
    model_config = ConfigDict(extra="allow")  # temperature, top_p and the like are accepted and ignored
    model: str = "penny"  # any name is accepted and echoed back
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=200)
    stream: bool = False


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "penny"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


# ---------------------------------------------------------------- admin


# In the schema, so that clients see it: no NUL, and no file or folder name longer than NAME_MAX characters. A name
# of at most that many characters can still exceed NAME_MAX bytes in UTF-8: the ingestion request refuses it (400).
_SERVER_PATH = rf"^/*(?:[^/\x00]{{1,{MAX_NAME_BYTES}}}/+)*[^/\x00]{{0,{MAX_NAME_BYTES}}}$"
ServerPath = Annotated[str, Field(min_length=1, max_length=MAX_PATH_CHARS, pattern=_SERVER_PATH)]


class IngestBody(RequestBody):
    model_config = ConfigDict(extra="forbid")
    paths: list[ServerPath] = Field(min_length=1, max_length=1000, description="Files or folders on the server")
    groups: list[str] = Field(default_factory=lambda: ["everyone"], min_length=1, max_length=100)
    source: str = Field("default", min_length=1, max_length=200)
    prune: bool = False


class JobStarted(BaseModel):
    job_id: int
    status: str
    url: str


class UploadStarted(JobStarted):
    stored: list[str] = Field(description="The uploaded files' names under the data directory's uploads/")


class JobOut(BaseModel):
    id: int
    status: str
    started_at: UtcDatetime
    finished_at: UtcDatetime | None
    counts: dict[str, int]
    index_version: int | None
    message: str | None
    errors: list[dict[str, str]]


class DocumentOut(BaseModel):
    id: int
    path: str
    source: str
    title: str
    doc_type: str
    groups: list[str]
    status: str
    error: str | None
    chunk_count: int
    updated_at: UtcDatetime


class ChunkOut(BaseModel):
    id: int
    ordinal: int
    section: str
    page: int | None
    text: str
    char_start: int
    char_end: int
    token_count: int


class DocumentDetail(DocumentOut):
    chunks: list[ChunkOut]


class DocumentDeleted(BaseModel):
    removed: int
    index_version: int | None
