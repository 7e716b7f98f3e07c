"""Request and response bodies of the API, kept apart from the library's records (penny.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from penny import Answer, AnswerForm, AnswerPath, Citation

# ---------------------------------------------------------------- answers


class CitationOut(BaseModel):
    document_id: int
    chunk_id: int
    title: str
    source_path: str
    section: str
    page: int | None
    url: str = Field(description="Where the web page links the citation: the document in the API")
    passage: str = Field("", description="Passage answers: the cited passage's text (else empty)")
    span_start: int | None = Field(None, description="Passage answers: where the answering span starts in `passage`")
    span_end: int | None = Field(None, description="Passage answers: where it ends (exclusive)")

    @classmethod
    def of(cls, c: Citation) -> CitationOut:
        return cls(document_id=c.document_id, chunk_id=c.chunk_id, title=c.title, source_path=c.source_path,
                   section=c.section, page=c.page, url=f"/v1/documents/{c.document_id}#chunk-{c.chunk_id}",
                   passage=c.passage, span_start=c.span_start, span_end=c.span_end)  # fmt: skip


class CostOut(BaseModel):
    embed_calls: int
    retrieval_cpu_ms: float
    llm_prompt_tokens: int
    llm_completion_tokens: int
    llm_wall_seconds: float
    llm_cpu_seconds: float
    cpu_seconds: float
    usd_local: float
    usd_api_equivalent: float


class AnswerOut(BaseModel):
    text: str
    path: AnswerPath
    confidence: float
    citations: list[CitationOut]
    cost: CostOut
    standalone_question: str = ""
    flags: list[str] = []
    related: list[CitationOut] = Field(default=[], description="Closest documents when the path is abstain")
    form: AnswerForm | None = Field(None, description="A passage answer's shape: figure|span|sentence|block|passage")

    @classmethod
    def of(cls, answer: Answer) -> AnswerOut:
        return cls(
            text=answer.text,
            path=answer.path,
            confidence=answer.confidence,
            citations=[CitationOut.of(c) for c in answer.citations],
            cost=CostOut(**{name: getattr(answer.cost, name) for name in CostOut.model_fields}),
            standalone_question=answer.standalone_question,
            flags=list(answer.flags),
            related=[CitationOut.of(c) for c in answer.related],
            form=answer.form,
        )


# ---------------------------------------------------------------- chat and conversations


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(description="The question")
    conversation_id: str | None = Field(None, description="Continue this conversation; a new one when absent")
    document_ids: list[int] = Field(default_factory=list, max_length=100, description="Only these documents")
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
    created_at: datetime


class ConversationOut(BaseModel):
    id: str
    owner: str
    created_at: datetime
    messages: list[MessageOut]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: int
    rating: Literal["up", "down"]
    comment: str = Field("", max_length=4000)


class FeedbackResponse(BaseModel):
    id: int
    message_id: int
    rating: Literal["up", "down"]


# ---------------------------------------------------------------- search


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str
    k: int = Field(5, ge=1, le=50)
    document_ids: list[int] = Field(default_factory=list, max_length=100)


class PassageOut(BaseModel):
    rank: int
    score: float
    dense_score: float | None
    bm25_score: float | None
    chunk_id: int
    document_id: int
    title: str
    section: str
    source_path: str
    page: int | None
    text: str


class SearchResponse(BaseModel):
    passages: list[PassageOut]
    confidence: float
    index_version: int


# ---------------------------------------------------------------- OpenAI-compatible chat completions


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, top_p and the like are accepted and ignored
    model: str = "penny"
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=200)
    stream: bool = False


# ---------------------------------------------------------------- admin


class IngestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paths: list[str] = Field(min_length=1, max_length=1000, description="Files or folders on the server")
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
    started_at: datetime
    finished_at: datetime | None
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
    updated_at: datetime


class DocumentDeleted(BaseModel):
    removed: int
    index_version: int | None
