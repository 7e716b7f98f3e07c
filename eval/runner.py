"""Run every sampled question through each strategy and append one JSON record per (question, strategy) to
`OUT/results.jsonl`, so an interrupted run resumes where it stopped.

Records are of two kinds:
- `retrieval`: once per question, the ranked document keys of a k=20 search (inside the question's scope) and the
  ranking metrics against the qrels; the same ranking feeds every strategy;
- `answer`: one per strategy, with the answer, its path, confidence, graded quality, tokens, cost and latency.

The LLM strategies (`llm`, `external`) run on the first `llm_limit` questions of the sample only, because a local
LLM answer costs seconds; the report compares strategies on the questions all of them answered.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from answer import Answerer
from answer.llm import get_llm, loaded_models
from eval import metrics
from eval.quality import CORRECT_RECALL, grade
from eval.workspace import EvalQuestion, EvalSet, document_ids, prepare_data_dir, sample_questions
from penny import Answer, BadInput, PennyError, Settings
from retrieval.embedder import get_embedder
from retrieval.search import SearchFilter, get_searcher

STRATEGIES = ("passages", "llm", "routed", "external")
LLM_STRATEGIES = ("llm", "external")
RESULTS = "results.jsonl"
RUN = "run.json"
BLOCK = 10  # questions answered strategy by strategy before the next block: an interrupt leaves them paired
RANK_DEPTH = 20  # retrieved deeper than 10 so that several chunks of one document still leave 10 distinct documents
# settings that change answers: a resumed run must have been made with the same values. Those that change only
# passage and routed answers are left out of a run of LLM strategies alone, so that its (slow) records can be
# replayed against passage answers made with other settings (the LLM answer's fallback on an invented number is
# a passage answer, the one exception).
_ANSWER_SETTINGS = (
    "llm_model",
    "llm_passages",
    "llm_max_tokens",
    "fusion",
    "fusion_dense_weight",
    "candidates",
    "external_model",
)
_PASSAGE_SETTINGS = ("router_min_gain", "abstain_floor", "answer_sentences", "passage_answer")


@dataclass(frozen=True)
class RunConfig:
    dataset: Path
    out: Path
    work_dir: Path
    strategies: tuple[str, ...] = ("passages", "llm", "routed")
    limit: int | None = None
    llm_limit: int | None = None
    seed: int = 13


@dataclass
class Run:
    """A prepared run: the set, its sampled questions, settings pointing at the cached index, and the config."""

    eval_set: EvalSet
    questions: list[EvalQuestion]
    settings: Settings
    config: RunConfig

    @property
    def results_path(self) -> Path:
        return self.config.out / RESULTS

    def planned(self) -> list[tuple[EvalQuestion, tuple[str, ...]]]:
        """Each sampled question with the strategies it gets, LLM strategies only inside the LLM subset."""
        llm_limit = len(self.questions) if self.config.llm_limit is None else self.config.llm_limit
        return [
            (question, tuple(s for s in self.config.strategies if s not in LLM_STRATEGIES or position < llm_limit))
            for position, question in enumerate(self.questions)
        ]


def validate_strategies(names: list[str], settings: Settings) -> tuple[str, ...]:
    unknown = [name for name in names if name not in STRATEGIES]
    if unknown or not names:
        raise BadInput(f"strategies must be some of {', '.join(STRATEGIES)}; got {', '.join(names) or 'none'}")
    if "external" in names and not (settings.external_base_url and settings.external_model):
        raise BadInput("the external strategy needs PENNY_EXTERNAL_BASE_URL and PENNY_EXTERNAL_MODEL")
    return tuple(dict.fromkeys(names))


def prepare(config: RunConfig, settings: Settings, load: Callable[[Path], EvalSet]) -> Run:
    """Load and sample the set, ingest (or reuse) its index, and check `out` holds no run of something else."""
    if config.limit is not None and config.limit < 1:
        raise BadInput("--limit must be at least 1")
    eval_set = load(config.dataset)
    questions = sample_questions(eval_set.questions, config.limit, config.seed)
    if not questions:
        raise BadInput(f"{config.dataset} has no questions")
    scoped = prepare_data_dir(eval_set, settings, config.work_dir)
    run = Run(eval_set=eval_set, questions=questions, settings=scoped, config=config)
    _claim_out_dir(run)
    return run


def _identity(run: Run) -> dict[str, Any]:
    names = _ANSWER_SETTINGS
    if any(strategy not in LLM_STRATEGIES for strategy in run.config.strategies):
        names += _PASSAGE_SETTINGS
    return {
        "dataset": run.eval_set.name,
        "index": run.settings.data_dir.name,
        "seed": run.config.seed,
        "settings": {name: getattr(run.settings, name) for name in names},
    }


def _claim_out_dir(run: Run) -> None:
    run.config.out.mkdir(parents=True, exist_ok=True)
    marker = run.config.out / RUN
    identity = _identity(run)
    if marker.exists():
        before = json.loads(marker.read_text())
        if before != identity:
            raise BadInput(
                f"{run.config.out} holds results of a different run ({before}); give another --out or delete it"
            )
    else:
        marker.write_text(json.dumps(identity, indent=2))


def load_records(path: Path) -> list[dict[str, Any]]:
    """The records written so far; a line cut short by an interrupt is dropped (its work is redone)."""
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def _key(record: dict[str, Any]) -> tuple[str, str, str]:
    return record["kind"], record.get("strategy", ""), record["qid"]


def pending_steps(run: Run) -> list[tuple[EvalQuestion, str]]:
    """(question, 'retrieval' or a strategy) still to do, in run order: blocks of BLOCK questions, strategy by
    strategy inside a block. Never the same question twice in a row through the LLM: llama.cpp reuses the prompt
    it evaluated last, so a second call with the same passages would cost a fraction of a real one."""
    done = {_key(record) for record in load_records(run.results_path)}
    planned = run.planned()
    steps = []
    for start in range(0, len(planned), BLOCK):
        block = planned[start : start + BLOCK]
        steps += [(question, "retrieval") for question, _ in block if ("retrieval", "", question.id) not in done]
        for strategy in run.config.strategies:
            steps += [
                (question, strategy)
                for question, strategies in block
                if strategy in strategies and ("answer", strategy, question.id) not in done
            ]
    return steps


def execute(run: Run, steps: list[tuple[EvalQuestion, str]], advance: Callable[[], None] = lambda: None) -> None:
    """Do the steps, appending each record as soon as it is made (flushed, so a kill loses at most one)."""
    if not steps:
        return
    answerer = Answerer(run.settings)
    code = code_version()
    keys = document_ids(run.settings, run.eval_set)
    if any(step in LLM_STRATEGIES for _, step in steps):
        _warm_up(answerer, steps)
    with open(run.results_path, "a+", encoding="utf-8") as handle:
        handle.seek(0, 2)
        if handle.tell() and not run.results_path.read_bytes().endswith(b"\n"):
            handle.write("\n")  # a line cut short by an interrupt stays a line of its own, skipped when read
        for record in _records(run, answerer, keys, steps, advance):
            handle.write(json.dumps(record | {"code": code}) + "\n")
            handle.flush()


def code_version() -> str:
    """The commit the answering code ran at, `+dirty` when its packages had uncommitted changes: records made by
    different code can then be told apart when a run is resumed across commits."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "diff", "--quiet", "HEAD", "--", "answer", "retrieval", "ingest", "penny.py"],
            capture_output=True,
        ).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _warm_up(answerer: Answerer, steps: list[tuple[EvalQuestion, str]]) -> None:
    """Load the LLM before timing anything, so the first LLM answer's latency is not the model's load time."""
    question, strategy = next((q, s) for q, s in steps if s in LLM_STRATEGIES)
    try:
        answerer.answer(question.text, strategy=strategy, use_cache=False)
    except PennyError:
        pass  # the timed run records the error itself


def _records(run, answerer, keys, steps, advance) -> Iterator[dict[str, Any]]:
    for question, step in steps:
        scope = _scope_ids(question, keys)
        if step == "retrieval":
            yield retrieval_record(run, question, scope)
        else:
            yield answer_record(run, answerer, question, step, scope)
        advance()


def _scope_ids(question: EvalQuestion, keys: dict[str, int]) -> tuple[int, ...]:
    if not question.scope:
        return ()
    return tuple(keys[key] for key in question.scope if key in keys)


def retrieval_record(run: Run, question: EvalQuestion, scope: tuple[int, ...]) -> dict[str, Any]:
    result = get_searcher(run.settings).search(
        question.text, k=RANK_DEPTH, search_filter=SearchFilter(document_ids=scope)
    )
    ranked = [run.eval_set.document_key(passage.chunk.source_path) for passage in result.passages]
    record: dict[str, Any] = {
        "kind": "retrieval",
        "qid": question.id,
        "ranked": ranked,
        "confidence": result.confidence,
    }
    if run.eval_set.has_qrels and question.relevant:
        record["recall@10"] = metrics.recall_at_k(ranked, question.relevant, 10)
        record["mrr@10"] = metrics.reciprocal_rank(ranked, question.relevant, 10)
        record["ndcg@10"] = metrics.ndcg_at_k(ranked, question.relevant, 10)
    if question.answers:
        top = [passage.chunk.text for passage in result.passages[:10]]
        record["context_answer_recall@10"] = metrics.answer_token_recall(top, question.answers)
    return record


def _forget_last_prompt(settings: Settings) -> None:
    """Measure every answer from a cold LLM context: llama.cpp reuses the evaluated prefix of the previous prompt,
    so without this an answer's cost would depend on which question the harness happened to ask before it."""
    if loaded_models():
        get_llm(settings).model.reset()


def answer_record(
    run: Run, answerer: Answerer, question: EvalQuestion, strategy: str, scope: tuple[int, ...]
) -> dict[str, Any]:
    _forget_last_prompt(run.settings)
    started = time.perf_counter()
    plan = None
    try:
        plan = answerer.plan(question.text, strategy=strategy, document_ids=scope, use_cache=False)
        answer = [item for item in answerer.finish(plan) if isinstance(item, Answer)][-1]
    except PennyError as exc:
        answer, error = None, f"{exc.code}: {exc}"
    latency_ms = (time.perf_counter() - started) * 1000
    record: dict[str, Any] = {
        "kind": "answer",
        "strategy": strategy,
        "qid": question.id,
        "question": question.text,
        "unanswerable": question.unanswerable,
        "graded": bool(question.answers) or question.unanswerable,
        "latency_ms": latency_ms,
    }
    if plan is not None and plan.features:  # what the router estimated from, replayed by the sweep and the fit
        record |= {"features": plan.features, "p_passage": plan.p_passage, "p_llm": plan.p_llm}
    if answer is None:
        return record | {
            "error": error,
            "path": "error",
            "abstained": False,
            "answer_f1": 0.0,
            "f1_beyond_question": 0.0,
            "answer_recall": 0.0,
            "similarity": 0.0,
            "correct": False,
            "confidence": None,
            "text": "",
            "cost": {},
        }
    abstained = answer.path == "abstain"
    quality = grade(
        get_embedder(run.settings), question.text, answer.text, question.answers, abstained, question.unanswerable
    )
    return record | {
        "path": answer.path,
        "confidence": answer.confidence,
        "text": answer.text,
        "form": answer.form,
        "flags": answer.flags,
        "citations": [run.eval_set.document_key(c.source_path) for c in answer.citations],
        "abstained": abstained,
        "answer_f1": quality.answer_f1,
        "f1_beyond_question": quality.f1_beyond_question,
        "answer_recall": quality.answer_recall,
        "similarity": quality.similarity,
        "correct": quality.correct,
        "correct_rule": f"answer_recall>={CORRECT_RECALL} or abstained on unanswerable",
        "cost": asdict(answer.cost),
    }
