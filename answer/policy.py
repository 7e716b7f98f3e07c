"""The routing policy: which path one question takes, as a pure function of what is known about it once
retrieval has run. The router calls it on live questions and eval's threshold sweep on recorded ones, so the
figures the sweep reports are the router's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

Route = Literal["passages", "llm", "abstain"]

# Questions whose answer combines several facts: a single extracted sentence rarely answers them.
COMBINES = re.compile(
    r"\b(?:compare|comparison|difference|differ|versus|vs\.?|both|combined|in total|altogether|sum of|"
    r"how many more|how much more|which is (?:larger|bigger|higher|longer|more|less|cheaper))\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RouteInputs:
    """What the policy sees of one question."""

    has_passages: bool
    confidence: float  # retrieval's P(the top passage holds the answer)
    combines: bool  # the question asks to combine facts (COMBINES)
    p_passage: float = 0.0  # estimated P(the passage answer is correct) (answer.correctness)
    p_llm: float = 0.0  # estimated P(the LLM's answer is correct)


@dataclass(frozen=True)
class Policy:
    abstain_floor: float
    # The LLM runs when it is expected to raise P(correct) by at least this much over the passage answer: the one
    # setting that trades accuracy for cost (PENNY_ROUTER_MIN_GAIN). 1 never asks the LLM, -1 always does.
    min_gain: float


def route_inputs(
    question: str, has_passages: bool, confidence: float | None, p_passage: float = 0.0, p_llm: float = 0.0
) -> RouteInputs:
    return RouteInputs(
        has_passages=has_passages,
        confidence=confidence or 0.0,
        combines=bool(COMBINES.search(question)),
        p_passage=p_passage,
        p_llm=p_llm,
    )


def route(inputs: RouteInputs, policy: Policy) -> Route:
    """Abstain when nothing was found. Below the confidence floor, the LLM reads the passages and either answers or
    declines (Penny then abstains): retrieval's confidence alone cannot tell a question the documents do not answer
    from one a new corpus's passages answer with little confidence; with the LLM off (min_gain 1) it abstains.
    Otherwise the LLM where it is expected to be right and the passage answer not (its expected gain reaches
    `min_gain`, or the question combines facts, which one passage answer rarely does), else the passage answer."""
    if not inputs.has_passages:
        return "abstain"
    below_floor = inputs.confidence < policy.abstain_floor
    if policy.min_gain >= 1.0:
        return "abstain" if below_floor else "passages"
    if below_floor or inputs.combines or inputs.p_llm - inputs.p_passage >= policy.min_gain - 1e-9:  # 0.3-0.2<0.1
        return "llm"
    return "passages"


def route_without_llm(inputs: RouteInputs, policy: Policy) -> Route:
    """The route when the chosen LLM cannot run (not installed): the same policy with the LLM off."""
    return route(inputs, replace(policy, min_gain=1.0))
