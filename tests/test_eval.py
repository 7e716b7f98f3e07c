"""The evaluation harness: answer-quality metrics, per-strategy figures and the router sweep against hand-computed
numbers, and `penny eval` end to end on a tiny BEIR-like set with the real embedding model and the small LLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eval.fit_router import cross_set
from eval.quality import answer_f1, answer_recall, embedding_similarity, grade, token_f1
from eval.report import replay_router, summarise, sweep, targets
from eval.workspace import EvalQuestion, load_eval_set, sample_questions
from penny import FLAGS, BadInput, Settings
from retrieval.embedder import get_embedder

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- answer quality


def test_token_f1_counts_content_words_once():
    # tokens without stop words: {"25", "days", "leave"} against {"employees", "get", "25", "days"}: 2 shared
    assert token_f1("25 days of leave", "Employees get 25 days") == pytest.approx(
        2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4)
    )
    assert token_f1("days days days", "days") == 1.0
    assert token_f1("the of and", "25 days") == 0.0  # only stop words: nothing to match
    assert token_f1("", "25 days") == 0.0


def test_answer_f1_and_recall_take_the_best_reference():
    references = ["fixed-price type", "cost-plus type", "time-and-material type"]
    # "cost plus type contracts" -> {cost, plus, type, contracts}; best reference {cost, plus, type}: 3 of 3
    assert answer_recall("cost plus type contracts", references) == 1.0
    assert answer_f1("cost plus type contracts", references) == pytest.approx(2 * 0.75 * 1.0 / 1.75)
    assert answer_recall("nothing relevant here", references) == 0.0
    assert answer_f1("anything", []) == 0.0


def test_f1_beyond_the_question_ignores_what_the_question_already_says():
    question = "Which role does a user need to configure registry storage?"
    reference = "The user needs the cluster-admin role to configure registry storage."
    echo = "To configure registry storage, a user does need a role."
    # the echo shares 5 of its 7 tokens with the reference's 8; beyond the question the reference says
    # {needs, cluster, admin}, and the echo none of it
    assert answer_f1(echo, [reference]) == pytest.approx(2 * 5 / (7 + 8))
    assert answer_f1(echo, [reference], question) == 0.0
    assert answer_f1("the cluster-admin role", [reference], question) == pytest.approx(2 * 2 / 5)


def test_embedding_similarity_is_the_best_cosine_with_the_index_model():
    embedder = get_embedder(Settings())
    same = embedding_similarity(embedder, "Employees get 25 days of leave.", ["Employees get 25 days of leave."])
    assert same == pytest.approx(1.0, abs=1e-5)
    near = embedding_similarity(embedder, "Staff have 25 days of holiday a year.", ["Employees get 25 days of leave."])
    far = embedding_similarity(embedder, "Passwords need 14 characters.", ["Employees get 25 days of leave."])
    assert 0.4 < near < 1.0 and far < near
    best = embedding_similarity(
        embedder,
        "Staff have 25 days of holiday a year.",
        ["Passwords need 14 characters.", "Employees get 25 days of leave."],
    )
    assert best == pytest.approx(near, abs=1e-5)
    assert embedding_similarity(embedder, "", ["x"]) == 0.0


def test_grade_defines_correct():
    embedder = get_embedder(Settings())
    # recall 2/4 = 0.5 is correct (the threshold is inclusive); 1/4 is not
    assert grade(embedder, "How many?", "25 days", ["employees get 25 days"], False, False).correct
    assert not grade(embedder, "How many?", "25", ["employees get 25 days"], False, False).correct
    abstained = grade(embedder, "How many?", "I cannot answer", ["employees get 25 days"], True, False)
    assert (abstained.correct, abstained.answer_f1, abstained.answer_recall, abstained.similarity) == (False, 0, 0, 0)
    assert grade(embedder, "How many?", "I cannot answer", [], True, True).correct
    assert not grade(embedder, "How many?", "Yes, 25 days", [], False, True).correct


# ---------------------------------------------------------------- per-strategy figures


def _answer(
    qid,
    path,
    correct,
    *,
    recall=0.0,
    f1=0.0,
    sim=0.0,
    unanswerable=False,
    latency=100.0,
    local=0.0,
    api=0.0,
    prompt=0,
    completion=0,
    confidence=0.5,
    question="q",
):
    return {
        "kind": "answer",
        "strategy": "s",
        "qid": qid,
        "question": question,
        "path": path,
        "abstained": path == "abstain",
        "unanswerable": unanswerable,
        "graded": True,
        "correct": correct,
        "answer_recall": recall,
        "answer_f1": f1,
        "similarity": sim,
        "latency_ms": latency,
        "confidence": confidence,
        "cost": {
            "usd_local": local,
            "usd_api_equivalent": api,
            "llm_prompt_tokens": prompt,
            "llm_completion_tokens": completion,
        },
    }


def test_summarise_matches_hand_computed_figures():
    answers = [
        _answer("a", "passages", True, recall=1.0, f1=0.5, sim=0.9, latency=10, local=1e-6),
        _answer(
            "b", "llm", False, recall=0.25, f1=0.2, sim=0.6, latency=20, local=3e-5, api=2e-3, prompt=600, completion=50
        ),
        _answer("c", "abstain", True, unanswerable=True, latency=30, local=1e-6),
        _answer("d", "abstain", False, latency=40, local=2e-6),
    ]
    retrieval = {
        "a": {"recall@10": 1.0, "mrr@10": 1.0, "ndcg@10": 1.0},
        "b": {"recall@10": 0.5, "mrr@10": 0.25, "ndcg@10": 0.4},
        "d": {"recall@10": 0.0, "mrr@10": 0.0, "ndcg@10": 0.0},
    }
    figures = summarise(answers, retrieval)
    assert figures["n"] == 4 and figures["n_graded"] == 4 and figures["n_unanswerable"] == 1
    assert figures["recall@10"] == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3: c has no relevant documents
    assert figures["mrr@10"] == pytest.approx(1.25 / 3)
    assert figures["ndcg@10"] == pytest.approx(1.4 / 3)
    assert figures["context_answer_recall@10"] is None
    # quality over the 3 answerable questions a, b, d (d abstained: zeros)
    assert figures["answer_recall"] == pytest.approx(1.25 / 3)
    assert figures["answer_f1"] == pytest.approx(0.7 / 3)
    assert figures["answer_similarity"] == pytest.approx(1.5 / 3)
    assert figures["n_correct"] == 2 and figures["accuracy"] == 0.5
    assert figures["abstain_share"] == 0.5
    assert figures["abstention_precision"] == 0.5  # c and d abstained, only c was unanswerable
    assert figures["abstention_recall"] == 1.0
    assert figures["no_llm_share"] == 0.75 and figures["llm_share"] == 0.25
    assert figures["paths"] == {"passages": 1, "llm": 1, "abstain": 2}
    assert (figures["llm_prompt_tokens"], figures["llm_completion_tokens"]) == (600, 50)
    assert figures["llm_tokens_per_answer"] == 650 / 4
    # numpy's linear interpolation: p50 of 10,20,30,40 is 25; p95 is 30 + 0.85 * 10
    assert figures["p50_latency_ms"] == 25.0 and figures["p95_latency_ms"] == pytest.approx(38.5)
    assert figures["cost_per_answer_usd"] == pytest.approx(3.4e-5 / 4)
    assert figures["cost_per_correct_answer_usd"] == pytest.approx(3.4e-5 / 2)
    assert figures["cost_per_answer_usd_api_equivalent"] == pytest.approx(2e-3 / 4)
    assert figures["cost_per_correct_answer_usd_api_equivalent"] == pytest.approx(1e-3)


def test_summarise_gives_null_where_a_figure_cannot_exist():
    figures = summarise([_answer("a", "passages", False, recall=0.1)], {})
    assert figures["recall@10"] is None and figures["ndcg@10"] is None
    assert figures["abstention_precision"] is None and figures["abstention_recall"] is None
    assert figures["cost_per_correct_answer_usd"] is None  # nothing correct: no cost per correct answer


def test_summarise_counts_each_flag_of_the_vocabulary_by_name():
    flagged = [_answer("a", "cache", True), _answer("b", "llm", False), _answer("c", "passages", True)]
    flagged[0]["flags"] = ["cached_from:passages", "rewrite:ellipsis"]
    flagged[1]["flags"] = ["unsupported_numbers:42,7", "fell_back_to_passages", "rewrite:context"]
    counts = summarise(flagged, {})["flags"]
    assert set(counts) == set(FLAGS)  # every name of the vocabulary, raised or not
    assert counts["rewrite"] == 2 and counts["cached_from"] == 1 and counts["unsupported_numbers"] == 1
    assert counts["escalated"] == 0


# ---------------------------------------------------------------- the router sweep


def _paired():
    """Four questions: passage and LLM outcomes recorded separately, with the router's estimates; the floor is 0.2."""
    passages = [
        _answer("1", "passages", True, confidence=0.9, local=1e-6, f1=0.8) | {"p_passage": 0.8, "p_llm": 0.6},
        _answer("2", "passages", False, confidence=0.5, local=1e-6, f1=0.1) | {"p_passage": 0.2, "p_llm": 0.5},
        _answer("3", "passages", False, confidence=0.1, local=1e-6, f1=0.0) | {"p_passage": 0.1, "p_llm": 0.9},
        _answer("4", "passages", True, confidence=0.7, local=1e-6, f1=0.6, question="compare A and B")
        | {"p_passage": 0.7, "p_llm": 0.3},
    ]
    llm = [
        _answer(q, "llm", ok, local=1e-4, api=1e-3, prompt=300, completion=20, f1=0.5)
        for q, ok in (("1", True), ("2", True), ("3", True), ("4", False))
    ]
    return passages, llm


def test_replay_router_follows_the_router_policy():
    passages, llm = _paired()
    routed = replay_router(passages, llm, min_gain=0.2, abstain_floor=0.2)
    # 1: gain -0.2 -> passages; 2: gain 0.3 -> llm; 3: 0.1 < floor -> the LLM decides; 4: combines facts -> llm
    assert [r["path"] for r in routed] == ["passages", "llm", "llm", "llm"]
    never = replay_router(passages, llm, min_gain=1.0, abstain_floor=0.2)  # with the LLM off, below the floor abstains
    assert [r["path"] for r in never] == ["passages", "passages", "abstain", "passages"]
    assert never[2]["correct"] is False and never[2]["cost"] == passages[2]["cost"]


def test_sweep_finds_the_cheapest_min_gain_as_good_as_always_llm():
    passages, llm = _paired()
    records = {"passages": {r["qid"]: r for r in passages}, "llm": {r["qid"]: r for r in llm}}
    result = sweep(records, abstain_floor=0.2)
    assert result["n"] == 4
    assert result["always_llm"]["accuracy"] == 0.75 and result["passages_only"]["accuracy"] == 0.5
    assert result["always_llm"]["cost_per_answer_usd"] == pytest.approx(1e-4)
    by_gain = {p["threshold"]: p for p in result["points"]}
    # every min gain < 1 sends 3 (below the floor) and 4 (combines, wrong) to the LLM; 2 too up to its gain of 0.3
    assert by_gain[0.3]["accuracy"] == 0.75 and by_gain[0.3]["llm_share"] == 0.75
    assert by_gain[0.4]["accuracy"] == 0.5 and by_gain[0.4]["llm_share"] == 0.5
    assert by_gain[1.0]["llm_share"] == 0.0 and by_gain[1.0]["accuracy"] == 0.5  # never the LLM: 3 abstains
    best = result["operating_point"]
    assert best["accuracy"] == 0.75 and best["threshold"] == 0.3
    assert best["cost_per_answer_usd"] == pytest.approx((1e-6 + 3e-4) / 4)


def test_targets_compare_routed_with_always_llm_and_say_unknown():
    def figures(accuracy, f1, no_llm, local, api):
        return {
            "n": 10,
            "accuracy": accuracy,
            "answer_f1": f1,
            "no_llm_share": no_llm,
            "cost_per_correct_answer_usd": local,
            "cost_per_correct_answer_usd_api_equivalent": api,
        }

    met = targets({"routed": figures(0.6, 0.39, 0.8, 1e-6, 1e-4), "llm": figures(0.6, 0.4, 0.0, 1e-5, 1e-3)})
    assert met["accuracy_at_least_llm"] and met["f1_within_002_of_llm"] and met["no_llm_share_at_least_80pct"]
    assert met["local_cost_per_correct_ratio"] == pytest.approx(0.1) and met["local_cost_per_correct_at_most_one_tenth"]
    missed = targets({"routed": figures(0.5, 0.3, 0.7, 3e-6, 1e-4), "llm": figures(0.6, 0.4, 0.0, 1e-5, 1e-3)})
    assert not any(
        missed[k]
        for k in (
            "accuracy_at_least_llm",
            "f1_within_002_of_llm",
            "no_llm_share_at_least_80pct",
            "local_cost_per_correct_at_most_one_tenth",
        )
    )
    unknown = targets({"routed": figures(0.0, None, 0.9, None, None), "llm": figures(0.6, 0.4, 0.0, 1e-5, 1e-3)})
    assert unknown["f1_within_002_of_llm"] is None and unknown["local_cost_per_correct_at_most_one_tenth"] is None
    assert targets({"routed": figures(0.5, 0.3, 0.7, 3e-6, 1e-4)}) is None


# ---------------------------------------------------------------- datasets


def test_fit_router_judges_each_set_by_a_fit_on_the_others_and_by_the_shipped_estimate():
    # the shipped estimate says 0.5 everywhere: right on a set half correct, 0.5 off on one always correct
    half = [({"confidence": 0.2}, False), ({"confidence": 0.9}, True)] * 20
    always = [({"confidence": 0.3}, True), ({"confidence": 0.8}, True)] * 20
    report = cross_set({"half": half, "always": always}, shipped={"weights": {}, "bias": 0.0})
    assert report["half"]["ece_shipped"] == 0.0 and report["always"]["ece_shipped"] == 0.5
    assert (report["half"]["n"], report["half"]["share_correct"], report["always"]["share_correct"]) == (40, 0.5, 1.0)
    # fitted on an always-correct set alone, the estimate runs high on the half-correct one
    assert report["half"]["ece_held_out"] > 0.3


def test_sample_is_stable_and_nested():
    questions = [EvalQuestion(id=f"q{i:02d}", text=f"question {i}", answers=("a",)) for i in range(30)]
    first = sample_questions(questions, 10, seed=7)
    assert [q.id for q in first] == [q.id for q in sample_questions(list(reversed(questions)), 10, seed=7)]
    assert [q.id for q in sample_questions(questions, 20, seed=7)][:10] == [q.id for q in first]
    assert [q.id for q in sample_questions(questions, 10, seed=8)] != [q.id for q in first]


def test_project_data_layout_uses_sources_as_document_qrels(tmp_path):
    (tmp_path / "corpus" / "leave").mkdir(parents=True)
    (tmp_path / "corpus" / "leave" / "annual.md").write_text("# Leave\n\n25 days.\n")
    rows = [
        {
            "id": "q1",
            "question": "How much leave?",
            "answer": "25 days",
            "sources": ["leave/annual.md"],
            "kind": "single",
        },
        {"id": "q2", "question": "Who won the cup?", "answer": "", "sources": [], "kind": "unanswerable"},
    ]
    (tmp_path / "sample-questions.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    eval_set = load_eval_set(tmp_path)
    first, second = eval_set.questions
    assert first.relevant == {"leave/annual.md": 1} and first.answers == ("25 days",)
    assert second.unanswerable and second.answers == ()
    path = str((tmp_path / "corpus" / "leave" / "annual.md").resolve())
    assert eval_set.document_key(path) == "leave/annual.md" and eval_set.document_path("leave/annual.md") == path
    with pytest.raises(BadInput):
        load_eval_set(tmp_path / "corpus")


# ---------------------------------------------------------------- end to end

CORPUS = [
    (
        "leave",
        "Annual leave",
        "Full-time employees receive 25 days of paid annual leave per year. Up to 5 unused "
        "days may be carried over into the next year and expire on 31 March.",
    ),
    (
        "passwords",
        "Password standard",
        "Passwords must be at least 14 characters long. Multi-factor "
        "authentication is required for remote access and administrator accounts.",
    ),
    (
        "travel",
        "Travel policy",
        "Economy class is required for flights shorter than 6 hours. Hotels in London are "
        "capped at 180 pounds per night.",
    ),
    (
        "pension",
        "Pension scheme",
        "The company pays 6 percent of salary into the pension scheme when the employee pays at least 4 percent.",
    ),
    ("report-a", "table", "Revenue | 2019 | 2018\nLicences | 120 | 100\nServices | 80 | 70"),
    ("report-b", "table", "Revenue | 2019 | 2018\nLicences | 300 | 250\nServices | 40 | 45"),
]
QUERIES = [
    ("q1", "How many days of paid annual leave do full-time employees receive?", {}, ["25 days"], "leave"),
    ("q2", "How long must passwords be?", {}, ["at least 14 characters"], "passwords"),
    ("q3", "How much does the company pay into the pension scheme?", {}, ["6 percent of salary"], "pension"),
    ("q4", "What were licences revenue in 2019?", {"scope": "report-b"}, ["300"], "report-b"),
    ("q5", "What is the airspeed velocity of an unladen swallow?", {"kind": "unanswerable"}, [], None),
]


def _write_tiny_set(folder: Path) -> None:
    folder.mkdir()
    with open(folder / "corpus.jsonl", "w") as handle:
        for doc_id, title, text in CORPUS:
            metadata = {"context": doc_id} if doc_id.startswith("report") else {}
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text, "metadata": metadata}) + "\n")
    with open(folder / "queries.jsonl", "w") as handle:
        for qid, text, metadata, _, _ in QUERIES:
            handle.write(json.dumps({"_id": qid, "text": text, "metadata": metadata}) + "\n")
    with open(folder / "answers.jsonl", "w") as handle:
        for qid, _, _, answers, _ in QUERIES:
            handle.write(json.dumps({"_id": qid, "answers": answers}) + "\n")
    with open(folder / "qrels.tsv", "w") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for qid, _, _, _, relevant in QUERIES:
            if relevant:
                handle.write(f"{qid}\t{relevant}\t1\n")


def _penny_eval(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "penny"), "eval", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _mean(values):
    values = list(values)
    return sum(values) / len(values)


def _percentile(values, share):
    """Linear interpolation between closest ranks, computed by hand."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.mark.slow
@pytest.mark.llm
def test_penny_eval_end_to_end_on_a_tiny_set(tmp_path):
    dataset, out, work = tmp_path / "tiny", tmp_path / "out", tmp_path / "work"
    _write_tiny_set(dataset)
    env = os.environ | {
        "PENNY_LLM_MODEL": "smollm2-135m",
        "PENNY_LLM_MAX_TOKENS": "32",
        "PENNY_DATA_DIR": str(tmp_path / "unused"),
    }
    args = [
        str(dataset),
        "--strategies",
        "passages,llm,routed",
        "--llm-limit",
        "3",
        "--seed",
        "1",
        "--out",
        str(out),
        "--work-dir",
        str(work),
    ]
    done = _penny_eval(args, env)
    assert done.returncode == 0, done.stderr

    records = _records(out)
    retrieval = {r["qid"]: r for r in records if r["kind"] == "retrieval"}
    answers = [r for r in records if r["kind"] == "answer"]
    assert set(retrieval) == {"q1", "q2", "q3", "q4", "q5"}
    counts = {s: sum(1 for r in answers if r["strategy"] == s) for s in ("passages", "llm", "routed")}
    assert counts == {"passages": 5, "llm": 3, "routed": 5}  # the LLM strategy only on the first 3 sampled
    # retrieval on this corpus is unambiguous: each answerable question's one document ranks first
    for qid in ("q1", "q2", "q3", "q4"):
        assert retrieval[qid]["ranked"][0] == {q[0]: q[4] for q in QUERIES}[qid]
        assert (retrieval[qid]["recall@10"], retrieval[qid]["mrr@10"], retrieval[qid]["ndcg@10"]) == (1.0, 1.0, 1.0)
    assert "recall@10" not in retrieval["q5"]  # nothing is relevant to the unanswerable question
    # the scoped question was searched inside its report only
    assert set(retrieval["q4"]["ranked"]) == {"report-b"}
    assert len(set(retrieval["q1"]["ranked"])) > 1

    report = json.loads((out / "report.json").read_text())
    assert (out / "report.md").read_text().startswith("# Penny evaluation: tiny")
    assert (out / "cost_quality.png").stat().st_size > 1000
    for strategy, figures in report["strategies"].items():
        mine = [r for r in answers if r["strategy"] == strategy]
        answerable = [r for r in mine if not r["unanswerable"]]
        ranked = [retrieval[r["qid"]] for r in mine if "recall@10" in retrieval[r["qid"]]]
        correct = sum(r["correct"] for r in mine)
        local = sum(r["cost"]["usd_local"] for r in mine)
        api = sum(r["cost"]["usd_api_equivalent"] for r in mine)
        assert figures["n"] == len(mine)
        for key in ("recall@10", "mrr@10", "ndcg@10"):
            assert figures[key] == pytest.approx(_mean(x[key] for x in ranked)) == pytest.approx(1.0)
        assert figures["answer_f1"] == pytest.approx(_mean(r["answer_f1"] for r in answerable))
        assert figures["answer_recall"] == pytest.approx(_mean(r["answer_recall"] for r in answerable))
        assert figures["answer_similarity"] == pytest.approx(_mean(r["similarity"] for r in answerable))
        assert figures["accuracy"] == pytest.approx(correct / len(mine))
        tokens = [r["cost"]["llm_prompt_tokens"] + r["cost"]["llm_completion_tokens"] for r in mine]
        assert figures["no_llm_share"] == pytest.approx(sum(t == 0 for t in tokens) / len(mine))
        assert figures["llm_prompt_tokens"] == sum(r["cost"]["llm_prompt_tokens"] for r in mine)
        latencies = [r["latency_ms"] for r in mine]
        assert figures["p50_latency_ms"] == pytest.approx(_percentile(latencies, 0.5))
        assert figures["p95_latency_ms"] == pytest.approx(_percentile(latencies, 0.95))
        assert figures["cost_per_answer_usd"] == pytest.approx(local / len(mine))
        assert figures["cost_per_answer_usd_api_equivalent"] == pytest.approx(api / len(mine))
        if correct:
            assert figures["cost_per_correct_answer_usd"] == pytest.approx(local / correct)
        unanswerable = [r for r in mine if r["unanswerable"]]
        if unanswerable:
            assert figures["abstention_recall"] == pytest.approx(_mean(r["abstained"] for r in unanswerable))
        for record in mine:  # every record is graded by the stated rule
            expected = (
                record["abstained"]
                if record["unanswerable"]
                else (not record["abstained"] and record["answer_recall"] >= 0.5)
            )
            assert record["correct"] == expected
    passages = report["strategies"]["passages"]
    assert passages["no_llm_share"] == 1.0 and passages["llm_tokens_per_answer"] == 0
    llm = [r for r in answers if r["strategy"] == "llm"]
    assert len(llm) == 3 and not [r for r in llm if r["path"] == "error"]  # an errored answer is no LLM answer
    assert all(r["cost"]["llm_prompt_tokens"] > 0 for r in llm)
    assert report["paired"]["n"] == 3 and report["sweep"]["n"] == 3
    always = report["sweep"]["always_llm"]
    assert always["accuracy"] == pytest.approx(report["paired"]["strategies"]["llm"]["accuracy"])

    # a second run has nothing left to do and reuses the cached index
    lines = (out / "results.jsonl").read_text()
    again = _penny_eval(args, env)
    assert again.returncode == 0, again.stderr
    assert (out / "results.jsonl").read_text() == lines
    assert len(list(work.iterdir())) == 1

    # an interrupted run (the last two records lost, the last line cut in half) resumes and redoes only those
    kept = lines.splitlines()[:-2]
    (out / "results.jsonl").write_text("\n".join(kept) + "\n" + lines.splitlines()[-2][:20])
    resumed = _penny_eval(args, env)
    assert resumed.returncode == 0, resumed.stderr
    keys = [(r["kind"], r.get("strategy"), r["qid"]) for r in _records_lenient(out)]
    assert len(keys) == len(set(keys)) == len(records)


def _records_lenient(out: Path) -> list[dict]:
    found = []
    for line in (out / "results.jsonl").read_text().splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return found


def test_penny_eval_rejects_what_it_cannot_run(tmp_path):
    dataset = tmp_path / "tiny"
    _write_tiny_set(dataset)
    env = os.environ | {"PENNY_DATA_DIR": str(tmp_path / "unused")}
    unknown = _penny_eval([str(dataset), "--strategies", "passages,magic", "--work-dir", str(tmp_path)], env)
    assert unknown.returncode == 1 and "strategies must be some of" in unknown.stderr
    external = _penny_eval([str(dataset), "--strategies", "external", "--work-dir", str(tmp_path)], env)
    assert external.returncode == 1 and "PENNY_EXTERNAL_BASE_URL" in external.stderr
    neither = _penny_eval([str(tmp_path), "--work-dir", str(tmp_path)], env)
    assert neither.returncode == 1 and "is not an evaluation set" in " ".join(neither.stderr.split())
