"""How likely an answer is to be correct, estimated before any LLM runs: one logistic model for the passage answer
and one for the LLM's, over the same features of the question, its retrieval and the passage answer.

Features hold across domains by construction: probabilities and cosines rather than raw BM25 scores, shares
rather than counts, and the question's type from its wording. The weights of the evidence features are kept
non-negative by the fit (eval/fit_router.py), so the estimate can only rise when retrieval gets more confident or
the answering span scores higher. The coefficients ship as correctness.json beside this file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from penny import Passage
from retrieval.analysis import analyze
from retrieval.confidence import Logistic

PACKAGED = Path(__file__).with_name("correctness.json")

# evidence: a larger value means a likelier correct answer (non-negative weights)
EVIDENCE = ("confidence", "top_dense", "span_score", "span_coverage")
FEATURES = EVIDENCE + (
    "whole_passage",  # the answer's form is its passage whole
    "short_form",  # the answer's form is a figure or a span (a date, a name)
    "block_form",  # the answer's form is a list, steps or table rows
    "answer_share",  # the answer's share of its passage's characters
    "question_terms",  # analysed question terms over 10, capped at 1
    "asks_figure",  # how many / how much / what percentage / when / which year
    "asks_procedure",  # how do I / how to / steps / configure / install
    "asks_definition",  # what is / what are / describe / explain
    "asks_yes_no",  # is / are / can / does ... ?
    "combines",  # compare / difference / both ... (answer.policy.COMBINES)
)
_FIGURE = re.compile(
    r"\b(?:how (?:many|much|long|often|old)|what (?:percentage|percent|proportion|amount|number|year|date|"
    r"was the (?:total|value|change|average))|when\b|which year|in which year)",
    re.I,
)
_PROCEDURE = re.compile(
    r"\b(?:how (?:do|can|should|would) (?:i|you|we|one|users?|administrators?)|how to|steps?|"
    r"procedure|configure|install|enable|create|set up|deploy|upgrade)\b",
    re.I,
)
_DEFINITION = re.compile(r"^\s*(?:what (?:is|are)|describe|explain|define|what does)\b", re.I)
_YES_NO = re.compile(r"^\s*(?:is|are|can|does|do|should|must|may|will|was|were|has|have)\b", re.I)


def features(
    question: str,
    combines: bool,
    confidence: float,
    passages: list[Passage],
    answer_text: str,
    passage_text: str,
    span_score: float,
    form: str,
) -> dict[str, float]:
    """The features of one question's passage answer (see FEATURES)."""
    terms = set(analyze(question))
    answer_terms = set(analyze(answer_text))
    top_dense = passages[0].dense_score if passages and passages[0].dense_score is not None else 0.0
    return {
        "confidence": confidence,
        "top_dense": float(top_dense),
        "span_score": span_score,
        "span_coverage": len(terms & answer_terms) / len(terms) if terms else 0.0,
        "whole_passage": 1.0 if form == "passage" else 0.0,
        "short_form": 1.0 if form in ("figure", "span") else 0.0,
        "block_form": 1.0 if form == "block" else 0.0,
        "answer_share": len(answer_text) / len(passage_text) if passage_text else 0.0,
        "question_terms": min(1.0, len(terms) / 10),
        "asks_figure": 1.0 if _FIGURE.search(question) else 0.0,
        "asks_procedure": 1.0 if _PROCEDURE.search(question) else 0.0,
        "asks_definition": 1.0 if _DEFINITION.search(question) else 0.0,
        "asks_yes_no": 1.0 if _YES_NO.search(question) else 0.0,
        "combines": 1.0 if combines else 0.0,
    }


@dataclass(frozen=True)
class CorrectnessModel:
    """P(passage answer correct) and P(LLM answer correct) for one question's features."""

    passage: Logistic
    llm: Logistic
    note: str = ""

    @classmethod
    def packaged(cls) -> CorrectnessModel:
        return cls.load(PACKAGED)

    @classmethod
    def load(cls, path: Path) -> CorrectnessModel:
        data = json.loads(path.read_text())
        return cls(passage=Logistic.of(data["passage"]), llm=Logistic.of(data["llm"]), note=data.get("note", ""))

    def estimate(self, values: dict[str, float]) -> tuple[float, float]:
        return self.passage.predict(values), self.llm.predict(values)
