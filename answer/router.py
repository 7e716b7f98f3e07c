"""The answer router: each question goes down the cheapest path that is still right, and the answer says what
it cost.

    cache     an earlier answer to the same (or a near-identical) question, same scope, same index version
    passages  retrieval is confident: the best passage's answering sentences, picked out without an LLM
    llm       confidence between the floor and the threshold, or the question combines facts: a local LLM
              writes the answer from numbered passages
    external  the local model declined, invented a number or is missing, and an external endpoint is configured
    abstain   confidence below the floor: say so and list the closest documents
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from answer import correctness, external, followup, grounding
from answer.cache import AnswerCache, scope_key
from answer.cost import price
from answer.extract import pick_sentences, score_sentences
from answer.forms import shape
from answer.llm import Generation, get_llm
from answer.policy import COMBINES, Policy, route, route_inputs, route_without_llm
from penny import Answer, BadInput, Citation, Cost, ModelNotFound, Passage, SearchResult, Settings
from retrieval.catalogue import open_catalogue
from retrieval.search import Searcher, SearchFilter, get_searcher
from retrieval.sentence_vectors import stored_vectors
from retrieval.snapshot import Snapshot

Strategy = Literal["routed", "passages", "llm", "external"]
STRATEGIES = ("routed", "passages", "llm", "external")
ROLES = ("user", "assistant")
SEARCH_DEPTH = 5
ABSTAIN_DOCUMENTS = 3
REWRITE_MAX_TOKENS = 48
NOT_ANSWERED = "The documents I can search do not answer this question."


@dataclass
class _Work:
    """What one answer has done so far: the cost meter and what the caller sees at the end."""

    question: str
    standalone: str
    focus: str = ""  # what the answering sentences must answer: the follow-up itself when context was attached
    cpu_seconds: float = 0.0  # process CPU time of the plan and of the finish, summed
    cost: Cost = field(default_factory=Cost)
    flags: list[str] = field(default_factory=list)
    vector: np.ndarray | None = None
    external_prompt_tokens: int = 0
    external_completion_tokens: int = 0
    span_score: float = 0.0  # the passage answer's best sentence score (answer.extract)
    span_passage: str = ""  # the passage it was taken from
    load_cpu_seconds: float = 0.0  # loading the LLM once per process: not charged to the answer that triggered it

    def add_generation(self, generation: Generation, remote: bool = False) -> None:
        self.cost.llm_prompt_tokens += generation.prompt_tokens
        self.cost.llm_completion_tokens += generation.completion_tokens
        self.cost.llm_wall_seconds += generation.wall_seconds
        if remote:
            self.external_prompt_tokens += generation.prompt_tokens
            self.external_completion_tokens += generation.completion_tokens
        else:
            self.cost.llm_cpu_seconds += generation.cpu_seconds


@dataclass
class Plan:
    """One question answered short of generation (Answerer.plan): the route, and the answer when the route needs
    no LLM. Hand it to Answerer.finish, in another thread if you like (the API's LLM worker)."""

    work: _Work
    strategy: Strategy
    path: str  # cache, passages, abstain, llm or external
    history: tuple[tuple[str, str], ...]
    search_filter: SearchFilter
    scope: str
    use_cache: bool
    rewrite_method: str
    result: SearchResult | None = None
    answer: Answer | None = None
    features: dict[str, float] = field(default_factory=dict)  # answer.correctness.features, when estimated
    p_passage: float = 0.0  # estimated P(the passage answer is correct)
    p_llm: float = 0.0  # estimated P(the LLM's answer is correct)

    @property
    def needs_llm(self) -> bool:
        return self.answer is None


class Answerer:
    """Answers questions over the live index. Creating one loads nothing; the LLM loads on first need."""

    def __init__(self, settings: Settings, searcher: Searcher | None = None) -> None:
        self.settings = settings
        self._searcher = searcher
        self._cache: AnswerCache | None = None
        self.correctness_model = correctness.CorrectnessModel.packaged()

    @property
    def searcher(self) -> Searcher:
        if self._searcher is None:
            self._searcher = get_searcher(self.settings)
        return self._searcher

    @property
    def cache(self) -> AnswerCache:
        if self._cache is None:
            self._cache = AnswerCache(open_catalogue(self.settings), self.settings.semantic_cache_similarity)
        return self._cache

    # ------------------------------------------------------------ public

    def answer(
        self,
        question: str,
        history: Sequence[tuple[str, str]] = (),
        groups: Sequence[str] | None = None,
        strategy: Strategy = "routed",
        document_ids: Sequence[int] = (),
        use_cache: bool = True,
    ) -> Answer:
        final = None
        for item in self.stream(question, history, groups, strategy, document_ids, use_cache):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        return final

    def stream(
        self,
        question: str,
        history: Sequence[tuple[str, str]] = (),
        groups: Sequence[str] | None = None,
        strategy: Strategy = "routed",
        document_ids: Sequence[int] = (),
        use_cache: bool = True,
    ) -> Iterator[str | Answer]:
        """Yield text deltas as they are produced, then the final Answer. The Answer's text is authoritative: when
        a generated text fails its checks the Answer carries the replacement and the flag `replaced_streamed_text`."""
        return self.finish(self.plan(question, history, groups, strategy, document_ids, use_cache))

    def plan(
        self,
        question: str,
        history: Sequence[tuple[str, str]] = (),
        groups: Sequence[str] | None = None,
        strategy: Strategy = "routed",
        document_ids: Sequence[int] = (),
        use_cache: bool = True,
    ) -> Plan:
        """Everything short of generation: the cache lookup, retrieval, the passage answer and the route, costed.
        A plan whose route needs no LLM carries its finished answer; `finish` does the generation of the rest."""
        question = self._validate(question, history, strategy)
        snapshot = self.searcher.snapshot()  # one version for the cache lookup and the search
        self.searcher.embedder.model  # noqa: B018  (a one-time load is not part of any answer's cost)
        started = time.process_time()
        rewrite = followup.rewrite_heuristic(question, history)
        work = _Work(question=question, standalone=rewrite.question)
        work.focus = question if rewrite.method == "context" else rewrite.question
        if rewrite.method in ("ellipsis", "context"):
            work.flags.append(f"rewrite:{rewrite.method}")
        search_filter = SearchFilter(
            groups=None if groups is None else tuple(groups), document_ids=tuple(int(i) for i in document_ids)
        )
        scope = scope_key(groups, document_ids, self.settings)
        use_cache = use_cache and strategy == "routed"
        plan = Plan(
            work=work,
            strategy=strategy,
            path="cache",
            history=tuple(history),
            search_filter=search_filter,
            scope=scope,
            use_cache=use_cache,
            rewrite_method=rewrite.method,
        )
        if use_cache:
            plan.answer = self._lookup(work, scope, snapshot.version)
        if plan.answer is None:
            plan.result = self._search(work, search_filter, snapshot)
            candidate = self._estimate(plan)
            plan.path = self._route(plan)
            if plan.path == "abstain":
                plan.answer = self._abstain(work, plan.result)
            elif plan.path == "passages":
                plan.answer = candidate
        work.cpu_seconds += time.process_time() - started
        if plan.answer is not None:
            plan.answer = self._close(plan, plan.answer)
        return plan

    def finish(self, plan: Plan) -> Iterator[str | Answer]:
        """Yield the plan's answer: at once when it has one, else generated by the LLM (text deltas, then it)."""
        if plan.answer is not None:
            yield plan.answer.text
            yield plan.answer
            return
        work, result, path = plan.work, plan.result, plan.path
        assert result is not None
        started = time.process_time()
        try:
            if plan.rewrite_method == "context" and self.settings.followup_llm_rewrite:
                result, path = yield from self._rewrite_with_llm(
                    work, plan.history, plan.search_filter, plan.strategy, result, path
                )
            if path == "abstain":
                answer = self._abstain(work, result)
            elif path == "passages":
                answer = self._passages(work, result)
            else:
                answer = yield from self._generate(work, result, path, plan.strategy)
            if answer.path != "llm" and answer.path != "external":
                yield answer.text
        finally:
            work.cpu_seconds += time.process_time() - started
        plan.result = result
        yield self._close(plan, answer)

    def _close(self, plan: Plan, answer: Answer) -> Answer:
        answer = self._finish(plan.work, answer)
        if plan.use_cache and answer.path in ("passages", "llm", "external") and plan.result is not None:
            self.cache.store(
                plan.work.standalone, self._question_vector(plan.work), plan.scope, plan.result.index_version, answer
            )
        return answer

    # ------------------------------------------------------------ steps

    def _validate(self, question: str, history: Sequence[tuple[str, str]], strategy: str) -> str:
        question = (question or "").strip()
        if not question:
            raise BadInput("the question is empty")
        if len(question) > self.settings.max_question_chars:
            raise BadInput(f"the question is longer than {self.settings.max_question_chars} characters")
        if strategy not in STRATEGIES:
            raise BadInput(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
        for turn in history:
            if len(turn) != 2 or turn[0] not in ROLES:
                raise BadInput("history must be (role, text) pairs with role 'user' or 'assistant'")
        return question

    def _question_vector(self, work: _Work) -> np.ndarray:
        if work.vector is None:
            work.vector = self.searcher.embedder.embed_one(work.standalone)
            work.cost.embed_calls += 1
        return work.vector

    def _lookup(self, work: _Work, scope: str, version: int) -> Answer | None:
        hit = self.cache.exact(work.standalone, scope, version)
        if hit is None:
            hit = self.cache.semantic(work.standalone, self._question_vector(work), scope, version)
        if hit is None:
            return None
        answer = Answer(
            text=hit.text,
            path="cache",
            confidence=hit.confidence,
            citations=hit.citations,
            flags=[*work.flags, *hit.flags],
            form=hit.form,
            source_documents=hit.source_documents,
        )
        return answer

    def _search(self, work: _Work, search_filter: SearchFilter, snapshot: Snapshot | None = None) -> SearchResult:
        depth = max(SEARCH_DEPTH, self.settings.llm_passages)
        result = self.searcher.search(
            work.standalone, k=depth, search_filter=search_filter, query_vector=work.vector, snapshot=snapshot
        )
        work.vector = result.query_vector
        work.cost.embed_calls += result.embed_calls
        work.cost.retrieval_cpu_ms += result.cpu_ms
        return result

    def _estimate(self, plan: Plan) -> Answer | None:
        """The passage answer the route may pick, and the estimated P(correct) of it and of the LLM's answer."""
        result, work = plan.result, plan.work
        assert result is not None
        if not result.passages or plan.strategy not in ("routed", "passages"):
            return None
        candidate = self._passages(work, result)
        quote = candidate.citations[0].quote if candidate.citations else candidate.text
        plan.features = correctness.features(
            work.standalone,
            bool(COMBINES.search(work.standalone)),
            result.confidence,
            result.passages,
            quote,
            work.span_passage,
            work.span_score,
            candidate.form,
        )
        plan.p_passage, plan.p_llm = self.correctness_model.estimate(plan.features)
        return candidate

    def _route(self, plan: Plan) -> str:
        result = plan.result
        assert result is not None
        if not result.passages:
            return "abstain"
        if plan.strategy != "routed":
            return plan.strategy
        inputs = route_inputs(plan.work.standalone, True, result.confidence, plan.p_passage, plan.p_llm)
        return route(inputs, self._policy())

    def _policy(self) -> Policy:
        return Policy(abstain_floor=self.settings.abstain_floor, min_gain=self.settings.router_min_gain)

    def _rewrite_with_llm(self, work, history, search_filter, strategy, result, path):
        """The heuristic leaned on context and retrieval was not confident: the LLM, which answers next anyway,
        writes a stand-alone question, and retrieval runs again on it."""
        try:
            llm = self._load_llm(work)
        except ModelNotFound:
            return result, path
        generation = Generation()
        messages = followup.rewrite_messages(work.question, history)
        for _ in llm.stream(messages, REWRITE_MAX_TOKENS, self.settings.llm_timeout_seconds, generation):
            pass
        work.add_generation(generation)
        rewritten = generation.text.strip().splitlines()[0].strip() if generation.text.strip() else ""
        if not rewritten or generation.timed_out:
            return result, path
        work.standalone = work.focus = rewritten
        work.vector = None
        work.flags = [flag for flag in work.flags if not flag.startswith("rewrite:")] + ["rewrite:llm"]
        new_result = self._search(work, search_filter)
        return new_result, "abstain" if not new_result.passages else path
        yield  # a generator, so the caller can `yield from` it like the other steps

    def _load_llm(self, work: _Work):
        started = time.process_time()
        try:
            return get_llm(self.settings)
        finally:
            work.load_cpu_seconds += time.process_time() - started

    def _passages(self, work: _Work, result: SearchResult) -> Answer:
        candidates = result.passages[: self.settings.llm_passages]
        embedder, stored = self.searcher.embedder, self._stored_sentence_vectors
        if work.focus == work.standalone:
            scored, work.vector, calls = score_sentences(work.focus, work.vector, candidates, embedder, stored)
        else:  # retrieval used the attached context; the sentence must answer the follow-up itself
            scored, _, calls = score_sentences(work.focus, None, candidates, embedder, stored)
        work.cost.embed_calls += calls
        chosen = pick_sentences(scored, self.settings.answer_sentences)
        passage = candidates[chosen[0].passage_index]
        work.span_score, work.span_passage = chosen[0].score, passage.chunk.text
        shaped = shape(work.focus, passage.chunk.text, chosen, self.settings.passage_answer)
        cited = replace(
            citation(passage, passage.chunk.text[shaped.start : shaped.end]),
            passage=passage.chunk.text,
            span_start=shaped.start,
            span_end=shaped.end,
        )
        return Answer(
            text=shaped.text,
            path="passages",
            confidence=result.confidence,
            citations=[cited],
            form=shaped.form,
            source_documents=[passage.chunk.document_id],
        )

    def _stored_sentence_vectors(self, texts: list[str]) -> dict[str, np.ndarray]:
        if not self.settings.sentence_vectors:
            return {}
        with self.searcher.sessions() as session:
            return stored_vectors(session, self.searcher.embedder.cache_key, texts)

    def _abstain(self, work: _Work, result: SearchResult) -> Answer:
        closest: list[Citation] = []
        for passage in result.passages:
            if all(item.document_id != passage.chunk.document_id for item in closest):
                closest.append(citation(passage))
            if len(closest) == ABSTAIN_DOCUMENTS:
                break
        lines = [NOT_ANSWERED]
        if closest:
            lines.append("The closest documents are:")
            lines += [f"- {item.title} ({item.source_path})" for item in closest]
        return Answer(text="\n".join(lines), path="abstain", confidence=result.confidence, related=closest)

    def _generate(self, work: _Work, result: SearchResult, path: str, strategy: Strategy):
        """The LLM path, escalating to the external tier when the local answer cannot be used and it is allowed."""
        supplied = result.passages[: self.settings.llm_passages]
        messages = grounding.build_messages(work.standalone, supplied)
        can_escalate = strategy == "routed" and external.is_configured(self.settings)
        if path == "llm":
            try:
                llm = self._load_llm(work)
            except ModelNotFound as exc:
                if strategy == "llm":
                    raise
                if not can_escalate:
                    work.flags.append(f"llm_unavailable:{exc.code}")
                    inputs = route_inputs(work.standalone, True, result.confidence)
                    if route_without_llm(inputs, self._policy()) == "abstain":
                        return self._abstain(work, result)
                    return self._passages(work, result)
                work.flags.append("llm_unavailable")
            else:
                generation = Generation()
                yield from llm.stream(
                    messages, self.settings.llm_max_tokens, self.settings.llm_timeout_seconds, generation
                )
                work.add_generation(generation)
                answer, problem = self._check(work, generation, supplied, result, "llm")
                if problem is None or not can_escalate:
                    return answer
                work.flags.append("escalated")
        if not external.is_configured(self.settings):
            raise external.ExternalUnavailable(
                "no external model is configured: set PENNY_EXTERNAL_BASE_URL and PENNY_EXTERNAL_MODEL"
            )
        generation = Generation()
        try:
            yield from external.stream_external(self.settings, messages, self.settings.llm_max_tokens, generation)
        finally:
            work.add_generation(generation, remote=True)
        answer, _ = self._check(work, generation, supplied, result, "external")
        return answer

    def _check(self, work: _Work, generation: Generation, supplied: list[Passage], result: SearchResult, path: str):
        """The generated answer, or its replacement when it declined, invented numbers or produced nothing;
        with the name of the problem (None when the text stands)."""
        text = generation.text.strip()
        if generation.timed_out:
            work.flags.append(f"{path}_timeout")
        if grounding.is_decline(text):
            work.flags.append(f"{path}_declined")
            if text:
                work.flags.append("replaced_streamed_text")
            return self._abstain(work, result), "declined"
        sources = [passage.chunk.text for passage in supplied] + [work.standalone, work.question]
        invented = grounding.unsupported_numbers(text, sources)
        if invented:
            work.flags += [
                f"unsupported_numbers:{','.join(invented)}",
                "fell_back_to_passages",
                "replaced_streamed_text",
            ]
            fallback = self._passages(work, result)
            return replace(fallback, path=path), "unsupported_numbers"
        numbers = grounding.cited_numbers(text, len(supplied)) or list(range(1, len(supplied) + 1))
        renumbered = renumber_citations(text, numbers, len(supplied))
        if renumbered != text:
            work.flags.append("replaced_streamed_text")
        cited = [citation(supplied[number - 1]) for number in numbers]
        sources = sorted({passage.chunk.document_id for passage in supplied})
        return Answer(
            text=renumbered, path=path, confidence=result.confidence, citations=cited, source_documents=sources
        ), None

    def _finish(self, work: _Work, answer: Answer) -> Answer:
        work.cost.cpu_seconds = work.cpu_seconds - work.load_cpu_seconds
        price(work.cost, self.settings, work.external_prompt_tokens, work.external_completion_tokens)
        return replace(
            answer,
            question=work.question,
            standalone_question=work.standalone,
            cost=work.cost,
            flags=[*work.flags, *(flag for flag in answer.flags if flag not in work.flags)],
        )


_answerers: dict[str, Answerer] = {}
_answerers_lock = threading.Lock()


def get_answerer(settings: Settings) -> Answerer:
    """The process's Answerer for these settings, by value: the API's, and the one a plan sent to another process
    (the LLM's own Serve deployment) is finished by there."""
    key = settings.model_dump_json()
    with _answerers_lock:
        if key not in _answerers:
            _answerers[key] = Answerer(settings)
        return _answerers[key]


def citation(passage: Passage, quote: str = "") -> Citation:
    chunk = passage.chunk
    return Citation(
        document_id=chunk.document_id,
        chunk_id=chunk.id,
        title=chunk.title,
        source_path=chunk.source_path,
        section=chunk.section,
        page=chunk.page,
        quote=quote,
    )


def renumber_citations(text: str, cited: list[int], supplied: int) -> str:
    """Make [n] markers point into the answer's own citation list; drop markers of passages never supplied."""
    position = {number: index for index, number in enumerate(cited, start=1)}

    def swap(match: re.Match) -> str:
        number = int(match.group(1))
        return f"[{position[number]}]" if number in position and number <= supplied else ""

    return re.sub(r"\[(\d{1,2})\]", swap, text).strip()
