"""The routing policy as a pure function: the same inputs give the same path in the router and in eval's sweep."""

from __future__ import annotations

import pytest

from answer.correctness import EVIDENCE, CorrectnessModel
from answer.policy import Policy, RouteInputs, route, route_inputs, route_without_llm
from eval.report import replay_router

POLICY = Policy(abstain_floor=0.2, min_gain=0.1)


def inputs(confidence=0.8, p_passage=0.5, p_llm=0.5, combines=False, found=True) -> RouteInputs:
    return RouteInputs(has_passages=found, confidence=confidence, combines=combines, p_passage=p_passage, p_llm=p_llm)


@pytest.mark.parametrize(
    ("given", "policy", "expected"),
    [
        (inputs(found=False), POLICY, "abstain"),
        (inputs(confidence=0.1, p_llm=0.0, p_passage=0.9), POLICY, "llm"),  # below the floor: the LLM decides
        (inputs(confidence=0.1, p_passage=0.9), Policy(abstain_floor=0.2, min_gain=1.0), "abstain"),  # no LLM
        (inputs(confidence=0.2, p_passage=0.2, p_llm=0.3), POLICY, "llm"),  # the floor itself answers; gain 0.1
        (inputs(p_passage=0.2, p_llm=0.29), POLICY, "passages"),  # gain below min_gain
        (inputs(p_passage=0.6, p_llm=0.5), POLICY, "passages"),  # the LLM is not expected to do better
        (inputs(p_passage=0.9, p_llm=0.9, combines=True), POLICY, "llm"),
        (inputs(p_passage=0.0, p_llm=1.0, combines=True), Policy(abstain_floor=0.2, min_gain=1.0), "passages"),
        (inputs(p_passage=1.0, p_llm=0.0), Policy(abstain_floor=0.2, min_gain=-1.0), "llm"),
    ],
)
def test_route_is_a_function_of_its_inputs(given, policy, expected):
    assert route(given, policy) == expected


def test_route_inputs_see_questions_that_combine_facts():
    assert route_inputs("Compare the leave and the carry-over rule", True, 0.9).combines
    assert not route_inputs("How many days of leave do I get?", True, 0.9).combines
    assert route_inputs("anything", True, None).confidence == 0.0


def _record(qid: str, strategy: str, question: str, confidence: float, p_passage: float, p_llm: float) -> dict:
    return {
        "qid": qid,
        "strategy": strategy,
        "question": question,
        "confidence": confidence,
        "path": strategy,
        "p_passage": p_passage,
        "p_llm": p_llm,
        "unanswerable": False,
        "correct": True,
        "cost": {},
    }


def test_the_sweep_replays_the_same_policy():
    questions = [
        ("1", "How long must passwords be?", 0.9, 0.8, 0.5),
        ("2", "Compare A and B", 0.9, 0.8, 0.5),
        ("3", "When do carried-over days expire?", 0.4, 0.1, 0.6),
        ("4", "Who approves salaries?", 0.05, 0.0, 0.9),
    ]
    passages = [_record(q, "passages", text, c, pp, pl) for q, text, c, pp, pl in questions]
    llm = [_record(q, "llm", text, c, pp, pl) for q, text, c, pp, pl in questions]
    for policy in (POLICY, Policy(abstain_floor=0.2, min_gain=1.0)):
        replayed = replay_router(passages, llm, policy.min_gain, policy.abstain_floor)
        paths = [r["path"] for r in replayed]
        expected = [route(route_inputs(text, True, c, pp, pl), policy) for _, text, c, pp, pl in questions]
        assert paths == expected
    assert expected == ["passages", "passages", "passages", "abstain"]
    assert [r["path"] for r in replay_router(passages, llm, 0.1, 0.2)] == ["passages", "llm", "llm", "llm"]


def test_the_packaged_estimate_loads_and_rises_with_the_evidence():
    model = CorrectnessModel.packaged()
    base = dict.fromkeys(EVIDENCE, 0.3) | {"question_terms": 0.5}
    for name in EVIDENCE:
        weak, strong = model.estimate(base), model.estimate(base | {name: 0.9})
        assert strong[0] >= weak[0] and strong[1] >= weak[1], name
    low, high = model.estimate(base | {"confidence": 0.05}), model.estimate(base | {"confidence": 0.95})
    assert 0.0 < low[0] <= high[0] < 1.0


def test_without_its_llm_the_route_abstains_below_the_floor_and_answers_from_passages_above():
    assert route_without_llm(inputs(confidence=0.1, p_llm=0.9), POLICY) == "abstain"
    assert route_without_llm(inputs(p_passage=0.0, p_llm=1.0, combines=True), POLICY) == "passages"
