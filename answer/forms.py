"""Answer forms: the shape a passage answer takes, chosen per question and passage, and the span of the passage it
rests on.

    figure    a table cell, named by its row and column labels ("Total sales, 2019: $1,496.5"), or a figure worked
              out from one row's cells for the years the question names: a change, a percentage change or an
              average ("-3.62% (2018 to 2019)")
    span      a short span of a sentence: a date or a name asked for by "when" / "who"
    sentence  the answering sentence (and its neighbour when that scores as well)
    block     a contiguous block: a list with its lead-in, a procedure's steps, a table's rows
    passage   the whole passage: an explanation, or prose whose answer spreads over several of its sentences

The choice uses features that hold in any domain: what the question asks for (an amount, a date, a name, steps or a
list, an explanation), the passage's layout (tables, lists) and how the answering sentence scored against the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from answer.extract import ScoredSentence
from penny import AnswerForm
from retrieval.analysis import analyze
from retrieval.text_layout import Line, Table, find_tables, split_lines

QuestionType = Literal["figure", "date", "name", "block", "explain", "other"]

_ASKS = (
    (
        "figure",
        r"how (?:many|much|long|often|old|far|big|large|high|low)|what (?:percentage|proportion|share|number|"
        r"amount|total|value|rate|ratio|price|cost|size|level)\b|\b(?:amount|number|total|percentage|value) of\b|"
        r"\bwhat (?:is|was|were|are) the (?:\w+ )?(?:change|average|sum|increase|decrease|growth|percentage|"
        r"proportion|ratio|rate|amount|number|total|values?)\b|\brespective (?:values?|amounts?)\b",
    ),
    ("date", r"^\s*when\b|\bwhat (?:year|date|day|month|time)\b|\bwhich (?:year|date|day|month)\b|\bby when\b"),
    ("name", r"^\s*who\b|\bwhose\b|\bwhom\b|\bwhich (?:company|person|team|department|organi[sz]ation)\b"),
    (
        "block",
        r"\bhow (?:do|can|should|would|could|does|to)\b|\bsteps?\b|\bprocedure\b|\bthe process\b|^\s*list\b|"
        r"\ba list of\b|\bwhat are some\b|\bwhich \w+ (?:are|support)\b|\b(?:what|which) (?:are|were) (?:the )?"
        r"(?:\w+ )?(?:options|ways|types|kinds|requirements|prerequisites|features|components|methods|commands|"
        r"benefits|parts|stages|phases)\b",
    ),
    (
        "explain",
        r"^\s*(?:why|explain|describe)\b|\bwhat (?:is|are|does) (?:the )?(?:purpose|role|function|meaning|"
        r"difference|relationship|significance)\b",
    ),
)
_ASKS_RE = [(kind, re.compile(pattern, re.IGNORECASE)) for kind, pattern in _ASKS]
# Below this share of the question's terms in its best sentences, a prose passage answers whole. Seed 13, passages
# strategy (accuracy / F1; sample 91 questions, tatqa-dev and the ocp slice 300), without -> with the rule: sample
# 0.286/0.375 -> 0.385/0.356, tatqa-dev 0.517/0.204 -> 0.527/0.203, ocp 0.183/0.346 -> 0.243/0.362. At 0.7 ocp gains
# more (0.273/0.367) but tatqa-dev's F1 falls to 0.197, under always-LLM's 0.215 - 0.02 on its 100 paired questions.
SPREAD_COVERAGE = 0.6
# What a figure question asks to work out from a row's values; the first match wins ("percentage increase" is a
# percentage, not a change).
_DERIVED = (
    (
        "percent",
        re.compile(
            r"\bpercent(?:age)? (?:change|increase|decrease|growth)\b|% (?:change|increase|decrease)|change \(%\)"
        ),
    ),
    ("change", re.compile(r"\b(?:change|difference|increase|decrease)\b")),
    ("average", re.compile(r"\baverage\b")),
)
_YEAR = re.compile(r"\b(?:19|20)\d{2}\b")
_YEAR_SPAN = re.compile(r"\b((?:19|20)\d{2}) ?(?:-|–|to) ?((?:19|20)\d{2})\b")
_AMOUNT = re.compile(
    r"^[$€£¥]?(?P<open>\()?(?P<minus>-)?[$€£¥]?(?P<sign>-)?(?P<digits>\d[\d,]*(?:\.\d+)?)%?(?P<close>\))?$"
)
_DATE = re.compile(
    r"\b(?:\d{1,2}(?:st|nd|rd|th)? (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?(?: \d{4})?|"
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?(?:, \d{4})?|"
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{4}|"
    r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}|(?:19|20)\d{2})\b"
)
# a run of capitalised words (allowing "of", "and", "&" inside): a person, company or product name
_NAME = re.compile(r"\b[A-Z][\w.&'-]*(?: (?:of|and|&|de|van|von) [A-Z][\w.&'-]*| [A-Z][\w.&'-]*)+")


@dataclass(frozen=True)
class Shaped:
    form: AnswerForm
    text: str  # what the answer says
    start: int  # [start, end) of the passage text it rests on
    end: int


def question_type(question: str) -> QuestionType:
    """What the question asks for, by its wording; the first matching kind in _ASKS wins."""
    for kind, pattern in _ASKS_RE:
        if pattern.search(question):
            return kind  # type: ignore[return-value]
    return "other"


def shape(question: str, text: str, chosen: list[ScoredSentence], mode: str = "forms") -> Shaped:
    """The answer to `question` from one passage's `text`, whose picked sentences are `chosen` (any order).
    `mode` is Settings.passage_answer: "forms" chooses, "sentences" and "passage" force that form."""
    if mode == "passage":
        return Shaped("passage", text, 0, len(text))
    if mode == "sentences":
        return _sentences(text, chosen)
    asks = question_type(question)
    lines = split_lines(text)
    tables = find_tables(lines)
    best = max(chosen, key=lambda item: item.score)
    if asks == "figure":
        derived = _derived_figure(question, lines, tables, best.line)
        if derived is not None:
            return derived
    if asks in ("figure", "date", "other"):
        cell = _table_cell(question, lines, tables)
        if cell is not None:
            return cell
    if asks == "block":
        block = _block(lines, tables, best.line)
        if block is not None:
            start, end = block
            return Shaped("block", text[start:end], start, end)
    if asks in ("block", "explain"):
        # steps with no list to hold them, an explanation: the answer runs over several sentences of the passage
        return Shaped("passage", text, 0, len(text))
    if asks in ("date", "name"):
        found = _short_span(question, text, best, asks)
        if found is not None:
            return found
    if asks == "other" and not tables and _coverage(question, chosen) < SPREAD_COVERAGE:
        # prose whose best sentences miss much of what the question names: the answer is spread over the passage
        return Shaped("passage", text, 0, len(text))
    return _sentences(text, chosen)


def _coverage(question: str, chosen: list[ScoredSentence]) -> float:
    """The share of the question's terms that the picked sentences hold."""
    terms = set(analyze(question))
    held = {term for item in chosen for term in analyze(item.text)}
    return len(terms & held) / len(terms) if terms else 1.0


# ---------------------------------------------------------------- figure: a table cell


def _table_cell(question: str, lines: list[Line], tables: list[Table]) -> Shaped | None:
    """The cell whose row label and column label both name what the question names; None unless one cell is the
    clear best (a question that names the row but not the column is answered by the row, as a sentence)."""
    terms = set(analyze(question)) | set(re.findall(r"\b\d{4}\b", question))
    best: tuple[float, Shaped] | None = None
    tie = False
    for table in tables:
        value_columns = [c for c in range(1, len(table.columns))]
        column_match = {c: _match(terms, table.columns[c]) for c in value_columns}
        for row in table.rows:
            row_match = _match(terms, table.row_label(lines, row))
            if not row_match:
                continue
            for c in value_columns:
                cell = lines[row].cells[c]
                if not cell.text or (len(value_columns) > 1 and not column_match[c]):
                    continue
                score = row_match + column_match[c]
                label = ", ".join(part for part in (table.row_label(lines, row), table.columns[c]) if part)
                shaped = Shaped("figure", f"{label}: {' '.join(cell.text.split())}", cell.start, cell.end)
                if best is None or score > best[0]:
                    best, tie = (score, shaped), False
                elif score == best[0]:
                    tie = True
    return None if best is None or tie else best[1]


def _match(terms: set[str], label: str) -> float:
    """How well a label is named by the question: the share of its terms the question holds, plus a little for
    each (so "total sales" beats "sales" when the question says "total sales")."""
    label_terms = set(analyze(label)) | set(re.findall(r"\b\d{4}\b", label))
    shared = terms & label_terms
    return len(shared) / len(label_terms) + 0.1 * len(shared) if shared else 0.0


# ---------------------------------------------------------------- figure: worked out from a row


def _derived_figure(question: str, lines: list[Line], tables: list[Table], best_line: int) -> Shaped | None:
    """A change (later year minus earlier), a percentage change (over the earlier year) or an average of the row
    the question names, over the year columns it names; None unless the question names the years, one row is
    the clear best and each of its cells for those years is a plain amount."""
    asked = question.lower()
    operation = next((name for name, pattern in _DERIVED if pattern.search(asked)), None)
    if operation is None:
        return None
    years = sorted(set(_YEAR.findall(question)))
    if operation == "average":
        for first, last in _YEAR_SPAN.findall(question):  # "fiscal years 2017-2019": every year of the span
            years = sorted(set(years) | {str(y) for y in range(int(first), int(last) + 1)})
    if len(years) < 2 or (operation != "average" and len(years) != 2):
        return None
    found = _row_for_years(question, lines, tables, years, best_line)
    if found is None:
        return None
    row, values = found
    if operation == "average":
        result, unit, said = sum(values) / len(values), "", f"average of {', '.join(years)}"
    elif operation == "change":
        result, unit, said = values[-1] - values[0], "", f"{years[0]} to {years[-1]}"
    elif values[0]:
        result, unit, said = (values[-1] - values[0]) / values[0] * 100, "%", f"{years[0]} to {years[-1]}"
    else:
        return None
    figure = f"{result:.2f}".rstrip("0").rstrip(".")
    return Shaped("figure", f"{figure}{unit} ({said})", lines[row].start, lines[row].end)


def _row_for_years(
    question: str, lines: list[Line], tables: list[Table], years: list[str], best_line: int
) -> tuple[int, list[float]] | None:
    """The data row the question names best (the best sentence's row on a tie), among tables with a column for
    each of `years`, with its amounts in the order of `years`; None when that row's cells are not all amounts
    (a row named less well is not the one asked about)."""
    terms = set(analyze(question))
    scored: list[tuple[float, bool, int, list[str]]] = []
    for table in tables:
        column_of = {}
        for c in range(1, len(table.columns)):
            named = _YEAR.findall(table.columns[c])
            if len(named) == 1:
                column_of.setdefault(named[0], c)
        if not all(year in column_of for year in years):
            continue
        for row in table.rows:
            match = _match(terms, table.row_label(lines, row))
            if match:
                cells = [lines[row].cells[column_of[year]].text for year in years]
                scored.append((match, row == best_line, row, cells))
    if not scored:
        return None
    scored.sort(key=lambda item: (-item[0], not item[1]))
    if len(scored) > 1 and scored[1][0] == scored[0][0] and not scored[0][1]:
        return None
    _, _, row, cells = scored[0]
    values = [value for value in map(_amount, cells) if value is not None]
    return (row, values) if len(values) == len(cells) else None


def _amount(cell: str) -> float | None:
    """A cell's amount: "$1,150" is 1150, "(97,727)" is -97727; None for anything else ("n/a", "—", words)."""
    found = _AMOUNT.match(cell.replace(" ", ""))
    if found is None or bool(found["open"]) != bool(found["close"]):
        return None
    value = float(found["digits"].replace(",", ""))
    return -value if found["open"] or found["minus"] or found["sign"] else value


# ---------------------------------------------------------------- block: a list, steps, table rows


def _block(lines: list[Line], tables: list[Table], best_line: int) -> tuple[int, int] | None:
    """The list or table holding the best sentence (or introduced by it: a line ending with a colon), with its
    lead-in line; None when the best sentence is in running text."""
    for table in tables:
        members = (*table.header, *table.rows)
        if best_line in members or best_line == members[0] - 1:
            under = _rows_under_heading(lines, table, best_line)
            if under is not None:
                return lines[under[0]].start, lines[under[-1]].end
            first = members[0] - 1 if _leads_in(lines, members[0] - 1) else members[0]
            return lines[first].start, lines[members[-1]].end
    line = lines[best_line] if best_line < len(lines) else None
    if line is None:
        return None
    if line.kind != "item" and not (_leads_in(lines, best_line) and _is_item(lines, best_line + 1)):
        return None
    first = best_line
    while first > 0 and lines[first].kind == "item" and _is_item(lines, first - 1):
        first -= 1
    if lines[first].kind == "item" and _leads_in(lines, first - 1):
        first -= 1
    last = best_line
    while _is_item(lines, last + 1):
        last += 1
    if last == first:
        return None
    return lines[first].start, lines[last].end


def _rows_under_heading(lines: list[Line], table: Table, best_line: int) -> list[int] | None:
    """The rows from the in-table heading (a row with a label and no values: "Current assets | | ") at or above
    the best line down to the next heading; None when the table has no such headings."""
    headings = [row for row in table.rows if lines[row].cells[0].text and not any(c.text for c in lines[row].cells[1:])]
    above = [row for row in headings if row <= best_line]
    if not above:
        return None
    after = [row for row in table.rows if row > above[-1]]
    rows = [above[-1]]
    for row in after:
        if row in headings:
            break
        rows.append(row)
    return rows if len(rows) > 1 else None


def _is_item(lines: list[Line], index: int) -> bool:
    return 0 <= index < len(lines) and lines[index].kind == "item"


def _leads_in(lines: list[Line], index: int) -> bool:
    return 0 <= index < len(lines) and lines[index].kind == "text" and lines[index].text.rstrip().endswith(":")


# ---------------------------------------------------------------- span: a date or a name


def _short_span(question: str, text: str, best: ScoredSentence, asks: QuestionType) -> Shaped | None:
    """The one date (for "when") or the one name the question does not already hold (for "who") in the best
    sentence; None when there is none or more than one to choose from."""
    pattern = _DATE if asks == "date" else _NAME
    asked = question.lower()
    found = [m for m in pattern.finditer(best.text) if m.group().lower() not in asked]
    if len(found) != 1 or text[best.start : best.end] != best.text:  # a labelled table row is no prose
        return None
    match = found[0]
    return Shaped("span", match.group(), best.start + match.start(), best.start + match.end())


# ---------------------------------------------------------------- sentence


def _sentences(text: str, chosen: list[ScoredSentence]) -> Shaped:
    """The picked sentences in reading order; the span runs from the first to the last of them."""
    ordered = sorted(chosen, key=lambda item: item.position)
    return Shaped("sentence", " ".join(item.text for item in ordered), ordered[0].start, ordered[-1].end)
