"""Benchmark of the answer router: share of answers per path, answer quality against the references, latency and
cost per path, and peak memory with and without the LLM loaded.

    python -m eval.bench_answer                      # sample handbook questions + a slice of ocp-4.15
    python -m eval.bench_answer --llm-answers 0      # no LLM at all (seconds, not minutes)

Sets: data/sample-questions.jsonl over data/corpus, and (when ../shared/data is present) the ocp-4.15 questions
whose guide is one of a few small doc folders, over those folders. Steps per set:
1. sweep: every question answered on the passage path (no LLM), with retrieval confidence, to choose thresholds:
   a passage answer counts as right when it cites a reference source (sample set) or recalls at least half of the
   reference answer's tokens (ocp, which has no source labels);
2. routed: every question through the router with the configured thresholds; questions routed to the LLM are
   counted there and a bounded number of them are really generated (the LLM is slow on 2 shared cores);
3. cache: the first questions asked again.
Speed figures are from one run on a shared machine; compare them with each other, not with other runs.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from answer import Answerer, NeedsLlm
from answer.llm import loaded_models
from eval.datasets import REPO_ROOT, load_beir, shared_data_dir
from eval.metrics import answer_token_recall, answer_tokens
from ingest.pipeline import IngestRequest, ingest
from penny import Answer, Settings

OCP_FOLDERS = {"getting_started": "Getting Started", "architecture": "Architecture", "registry": "Registry"}
SWEEP = [round(0.05 * step, 2) for step in range(1, 20)]


@dataclass
class Question:
    id: str
    text: str
    reference: str
    sources: list[str] = field(default_factory=list)
    answerable: bool = True


@dataclass
class Outcome:
    question: Question
    answer: Answer
    seconds: float

    @property
    def f1(self) -> float:
        return token_f1(self.answer.text, self.question.reference)

    @property
    def recall(self) -> float:
        return answer_token_recall([self.answer.text], [self.question.reference])

    @property
    def cites_source(self) -> bool:
        cited = self.answer.citations
        return any(item.source_path.endswith(source) for item in cited for source in self.question.sources)


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style F1 over word tokens without stop words (counts matter)."""
    predicted = Counter(token for token in _tokens(prediction))
    wanted = Counter(token for token in _tokens(reference))
    common = sum((predicted & wanted).values())
    if not common:
        return 0.0
    precision, recall = common / sum(predicted.values()), common / sum(wanted.values())
    return 2 * precision * recall / (precision + recall)


def _tokens(text: str) -> list[str]:
    kept = answer_tokens(text)
    return [token for token in re.findall(r"\w+", text.lower()) if token in kept]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# ---------------------------------------------------------------- data


def sample_questions() -> list[Question]:
    rows = [json.loads(line) for line in (REPO_ROOT / "data" / "sample-questions.jsonl").read_text().splitlines()]
    return [
        Question(row["id"], row["question"], row["answer"], row["sources"], row["kind"] != "unanswerable")
        for row in rows
    ]


def ocp_questions(limit_per_guide: int) -> list[Question]:
    dataset = load_beir(shared_data_dir() / "ocp-4.15")
    per_guide: dict[str, list[Question]] = defaultdict(list)
    for query in dataset.queries.values():
        guide = query.metadata.get("doc_title")
        if guide in OCP_FOLDERS.values() and len(per_guide[guide]) < limit_per_guide:
            reference = (dataset.answers.get(query.id) or [""])[0]
            per_guide[guide].append(Question(query.id, query.text, reference))
    return [question for questions in per_guide.values() for question in questions]


def build_index(data_dir: Path, paths: list[Path]) -> Settings:
    settings = Settings(data_dir=data_dir)
    started = time.perf_counter()
    report = ingest(settings, IngestRequest(paths=paths, groups=["everyone"]))
    print(f"  indexed {report.counts()['chunks_added']} chunks in {time.perf_counter() - started:.0f} s")
    return settings


# ---------------------------------------------------------------- steps


def ask(answerer: Answerer, question: Question, **options) -> Outcome:
    started = time.perf_counter()
    answer = answerer.answer(question.text, **options)
    return Outcome(question, answer, time.perf_counter() - started)


def sweep(answerer: Answerer, questions: list[Question], right) -> list[Outcome]:
    outcomes = [ask(answerer, question, strategy="passages", use_cache=False) for question in questions]
    answerable = [o for o in outcomes if o.question.answerable]
    unanswerable = [o for o in outcomes if not o.question.answerable]
    print("  threshold  passages≥t  right among them  unanswerable≥t  right below t")
    for threshold in SWEEP:
        above = [o for o in answerable if o.answer.confidence >= threshold]
        below = [o for o in answerable if o.answer.confidence < threshold]
        print(
            f"  {threshold:9.2f}  {len(above) / max(1, len(answerable)):10.2f}  "
            f"{sum(map(right, above)) / max(1, len(above)):16.2f}  "
            f"{sum(o.answer.confidence >= threshold for o in unanswerable):14d}  "
            f"{sum(map(right, below)):12d}"
        )
    right_conf = [o.answer.confidence for o in answerable if right(o)]
    wrong_conf = [o.answer.confidence for o in answerable if not right(o)]
    none_conf = [o.answer.confidence for o in unanswerable]
    for name, values in (("right", right_conf), ("wrong", wrong_conf), ("unanswerable", none_conf)):
        if values:
            print(f"  confidence of {name:>12} passage answers: n={len(values)} median {statistics.median(values):.2f} "
                  f"p10 {percentile(values, 0.1):.2f} p90 {percentile(values, 0.9):.2f}")  # fmt: skip
    f1, recall = mean(o.f1 for o in answerable), mean(o.recall for o in answerable)
    print(f"  passage path over all answerable: token F1 {f1:.3f}, answer-token recall {recall:.3f}, "
          f"right {mean(map(right, answerable)):.2f}")  # fmt: skip
    return outcomes


def routed(answerer: Answerer, questions: list[Question], llm_answers: int) -> tuple[list[Outcome], int, float]:
    """Answers without the LLM where the route allows, then up to `llm_answers` of the LLM-routed questions."""
    outcomes, needs_llm = [], []
    loaded_before = loaded_models()
    for question in questions:
        try:
            outcomes.append(ask(answerer, question, use_cache=False, allow_llm=False))
        except NeedsLlm:
            needs_llm.append(question)
    assert loaded_models() == loaded_before, "a passage or abstain answer loaded the LLM"
    rss_without_llm = peak_rss_mb()
    for question in needs_llm[:llm_answers]:
        outcomes.append(ask(answerer, question, use_cache=False))
    return outcomes, len(needs_llm), rss_without_llm


def report(name: str, outcomes: list[Outcome], llm_routed: int, total: int, right) -> None:
    by_path: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_path[outcome.answer.path].append(outcome)
    print(f"\n  {name}: {total} questions; {llm_routed} routed to the LLM, {len(by_path['llm'])} of them generated")
    header = (
        "  path       share  n   F1     recall  right  p50 ms    p95 ms    tokens(p+c)  cpu s   usd_local    usd_api_eq"
    )
    print(header)
    for path in ("cache", "passages", "llm", "external", "abstain"):
        group = by_path.get(path, [])
        if path == "llm":
            share = llm_routed / total
        else:
            share = len(group) / total if path != "cache" else float("nan")
        if not group:
            print(f"  {path:<9} {share:5.2f}  0")
            continue
        latencies = [o.seconds * 1000 for o in group]
        print(
            f"  {path:<9} {share:5.2f}  {len(group):<3} {mean(o.f1 for o in group):.3f}  "
            f"{mean(o.recall for o in group):.3f}   {mean(map(right, group)):.2f}   "
            f"{percentile(latencies, 0.5):8.0f}  {percentile(latencies, 0.95):8.0f}  "
            f"{mean(o.answer.cost.llm_prompt_tokens for o in group):5.0f}+"
            f"{mean(o.answer.cost.llm_completion_tokens for o in group):<5.0f}  "
            f"{mean(o.answer.cost.cpu_seconds for o in group):6.3f}  "
            f"{mean(o.answer.cost.usd_local for o in group):.2e}   "
            f"{mean(o.answer.cost.usd_api_equivalent for o in group):.2e}"
        )
    search_only = [o.seconds for o in by_path.get("abstain", []) if not o.answer.cost.llm_prompt_tokens]
    if by_path.get("passages") and search_only:
        ratio = percentile([o.seconds for o in by_path["passages"]], 0.5) / percentile(search_only, 0.5)
        print(f"  passage answer p50 / abstain answer p50 (search and nothing else): {ratio:.1f}x")
    flagged = Counter(flag.split(":")[0] for o in outcomes for flag in o.answer.flags)
    if flagged:
        print(f"  flags: {dict(flagged)}")


def answer_without_llm(answerer: Answerer, question: Question) -> Outcome | None:
    try:
        return ask(answerer, question, allow_llm=False)
    except NeedsLlm:
        return None


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def run_set(name: str, settings: Settings, questions: list[Question], right, llm_answers: int, cache_n: int) -> None:
    answerer = Answerer(settings)
    print(f"\n== {name}: sweep on the passage path (thresholds now: passage {settings.passage_threshold}, "
          f"abstain floor {settings.abstain_floor})")  # fmt: skip
    sweep(answerer, questions, right)
    outcomes, llm_routed, rss_without = routed(answerer, questions, llm_answers)
    report(name, outcomes, llm_routed, len(questions), right)
    first = [answer_without_llm(answerer, question) for question in questions[:cache_n]]  # fills the cache
    cached = [ask(answerer, outcome.question) for outcome in first if outcome is not None]
    report(f"{name}, asked again", cached, 0, len(cached), right)
    print(f"  peak RSS so far: {rss_without:.0f} MB before this set's LLM answers, {peak_rss_mb():.0f} MB after "
          f"(LLM loaded: {bool(loaded_models())})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm-answers", type=int, default=6, help="LLM answers actually generated per set")
    parser.add_argument("--ocp-per-guide", type=int, default=12, help="ocp-4.15 questions per guide (0: skip ocp)")
    parser.add_argument("--cache-questions", type=int, default=15)
    parser.add_argument("--work-dir", type=Path, default=None, help="keep indexes here (default: a temp folder)")
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="penny-bench-answer-"))
    defaults = Settings()
    print(f"thresholds: passage {defaults.passage_threshold}, abstain floor {defaults.abstain_floor}; "
          f"LLM {defaults.llm_model} with {defaults.llm_threads} threads; work dir {work}")  # fmt: skip

    print("\n== indexing data/corpus")
    sample_settings = build_index(work / "sample", [REPO_ROOT / "data" / "corpus"])
    run_set("sample questions", sample_settings, sample_questions(),
            lambda o: o.cites_source if o.question.answerable else o.answer.path == "abstain",
            args.llm_answers, args.cache_questions)  # fmt: skip

    docs = shared_data_dir() / "ocp-4.15" / "docs"
    if args.ocp_per_guide and docs.is_dir():
        print(f"\n== indexing ocp-4.15 docs/{{{','.join(OCP_FOLDERS)}}}")
        ocp_settings = build_index(work / "ocp", [docs / folder for folder in OCP_FOLDERS])
        run_set("ocp-4.15 slice", ocp_settings, ocp_questions(args.ocp_per_guide), lambda o: o.recall >= 0.5,
                args.llm_answers, args.cache_questions)  # fmt: skip
    elif args.ocp_per_guide:
        print(f"\n(ocp-4.15 skipped: {docs} is absent)")


if __name__ == "__main__":
    main()
