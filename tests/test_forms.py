"""Answer forms on hand-written passages: each form's exact span, chosen by the real sentence scorer (the real
embedding model) and answer/forms.py, with offsets that point at the span in the passage."""

from __future__ import annotations

import pytest

from answer.extract import RANK_PENALTY, pick_sentences, score_sentences
from answer.forms import question_type, shape
from penny import Chunk, Passage, Settings
from retrieval.embedder import get_embedder
from retrieval.sentences import sentences
from retrieval.text_layout import find_tables, split_lines

TABLE = """Sales by contract type (in millions):
|  | Years Ended September 30, |
 | 2019 | 2018 | 2017
Fixed Price | $  1,452.4 | $  1,146.2 | $  1,036.9
Other | 44.1 | 56.7 | 70.8
Total sales | $1,496.5 | $1,202.9 | $1,107.7"""

PROCEDURE = """After you install a cluster, you can use a Cinder volume for registry storage.
To configure the registry storage, follow these steps:
1. Create a YAML file that specifies the storage class.
2. Apply the configuration with oc apply.
3. Create a persistent volume claim that uses your storage class.
Verify the name of the availability zone before you apply the configuration."""

LEAVE = """Full-time employees receive 25 days of paid annual leave per leave year.
Part-time employees receive annual leave pro rata to their contracted hours. Carried-over days expire on 31 March.
Requests are approved by Dana Whitfield in the People team."""


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    return get_embedder(Settings(data_dir=tmp_path_factory.mktemp("forms"), embed_threads=1))


def answer(embedder, question: str, text: str, mode: str = "forms"):
    passage = Passage(Chunk(id=1, document_id=1, text=text, title="t", section="", source_path="t.md"), score=1.0)
    scored, _, _ = score_sentences(question, None, [passage], embedder)
    return shape(question, text, pick_sentences(scored, 2), mode)


def spans_point_at_the_passage(text, shaped):
    assert 0 <= shaped.start < shaped.end <= len(text)
    return text[shaped.start : shaped.end]


def test_a_table_cell_with_its_row_and_column_labels(embedder):
    shaped = answer(embedder, "What is the amount of total sales in 2019?", TABLE)
    assert shaped.form == "figure"
    assert spans_point_at_the_passage(TABLE, shaped) == "$1,496.5"
    assert shaped.text == "Total sales, 2019: $1,496.5"
    shaped = answer(embedder, "How much did Other contracts bring in 2017?", TABLE)
    assert (shaped.form, spans_point_at_the_passage(TABLE, shaped)) == ("figure", "70.8")


CASH = """Cash flows (in thousands):
 | 2019 | 2018
Net cash provided by operating activities | 152,337 | 141,809
Net cash used in investing activities | (97,727) | (20,876)
Net cash used in financing activities | n/a | (8,110)"""


def test_a_change_a_percentage_change_and_an_average_worked_out_from_a_row(embedder):
    total_row = TABLE[TABLE.index("Total sales") :]
    shaped = answer(embedder, "What was the percentage change in total sales from 2018 to 2019?", TABLE)
    assert (shaped.form, shaped.text) == ("figure", "24.41% (2018 to 2019)")  # (1,496.5 - 1,202.9) / 1,202.9
    assert spans_point_at_the_passage(TABLE, shaped) == total_row
    shaped = answer(embedder, "What is the change in Fixed Price sales between 2019 and 2018?", TABLE)
    assert (shaped.form, shaped.text) == ("figure", "306.2 (2018 to 2019)")  # later year minus earlier
    assert spans_point_at_the_passage(TABLE, shaped).startswith("Fixed Price |")
    shaped = answer(embedder, "What was the average Other sales over fiscal years 2017-2019?", TABLE)
    assert (shaped.form, shaped.text) == ("figure", "57.2 (average of 2017, 2018, 2019)")
    # amounts in parentheses are negative: the percentage is over the earlier year as it stands
    shaped = answer(
        embedder, "What is the percentage change in net cash used in investing activities from 2018 to 2019?", CASH
    )
    assert (shaped.form, shaped.text) == ("figure", "368.13% (2018 to 2019)")


def test_no_figure_is_worked_out_without_the_years_or_from_a_cell_that_is_no_amount(embedder):
    assert answer(embedder, "What was the change in total sales?", TABLE).form != "figure"
    # two years and a percent sign ask for the two values, not for the change between them
    shaped = answer(embedder, "What is the percentage (%) of Other sales in 2019 and 2018?", TABLE)
    assert "(2018 to 2019)" not in shaped.text
    shaped = answer(embedder, "What is the change in net cash used in financing activities from 2018 to 2019?", CASH)
    assert not shaped.text.endswith("(2018 to 2019)")


def test_a_row_named_without_its_column_is_the_labelled_row(embedder):
    shaped = answer(embedder, "What were the total sales?", TABLE)
    assert shaped.form == "sentence"
    assert spans_point_at_the_passage(TABLE, shaped) == "Total sales | $1,496.5 | $1,202.9 | $1,107.7"
    assert shaped.text == "Total sales; 2019: $1,496.5; 2018: $1,202.9; 2017: $1,107.7"


def test_steps_are_answered_by_the_whole_list_with_its_lead_in(embedder):
    shaped = answer(embedder, "How do I configure the registry storage?", PROCEDURE)
    assert shaped.form == "block"
    block = spans_point_at_the_passage(PROCEDURE, shaped)
    assert block.startswith("To configure the registry storage, follow these steps:\n1. Create")
    assert block.endswith("3. Create a persistent volume claim that uses your storage class.")
    assert shaped.text == block


def test_a_date_and_a_name_are_short_spans(embedder):
    shaped = answer(embedder, "When do carried-over days expire?", LEAVE)
    assert (shaped.form, shaped.text, spans_point_at_the_passage(LEAVE, shaped)) == ("span", "31 March", "31 March")
    shaped = answer(embedder, "Who approves leave requests?", LEAVE)
    assert (shaped.form, spans_point_at_the_passage(LEAVE, shaped)) == ("span", "Dana Whitfield")


def test_a_rule_is_answered_by_its_sentence(embedder):
    shaped = answer(embedder, "How many days of annual leave do full-time employees get?", LEAVE)
    assert shaped.form == "sentence"
    assert spans_point_at_the_passage(LEAVE, shaped) == shaped.text
    assert shaped.text == "Full-time employees receive 25 days of paid annual leave per leave year."


DRAIN = """Draining a node evicts its pods before maintenance.
The scheduler places evicted pods on the remaining nodes that have capacity.
A pod disruption budget can stop an eviction while too few replicas would be left running.
When maintenance is over, mark the node schedulable again."""


def test_prose_whose_answer_spreads_over_its_sentences_is_answered_whole(embedder):
    question = "What happens to evicted pods and replicas when a node is drained for maintenance?"
    shaped = answer(embedder, question, DRAIN)
    assert (shaped.form, shaped.start, shaped.end, shaped.text) == ("passage", 0, len(DRAIN), DRAIN)
    shaped = answer(embedder, "Which pods does draining a node evict before maintenance?", DRAIN)
    assert shaped.form == "sentence"
    assert shaped.text == "Draining a node evicts its pods before maintenance."


def test_the_whole_passage_when_asked_for(embedder):
    shaped = answer(embedder, "How many days of annual leave do full-time employees get?", LEAVE, mode="passage")
    assert (shaped.form, shaped.start, shaped.end, shaped.text) == ("passage", 0, len(LEAVE), LEAVE)


def test_a_markdown_table_cell(embedder):
    text = (
        "Approval limits per claim:\n| Grade | UK limit | Canada limit |\n|---|---|---|\n| L4 | £500 | CA$900 |\n"
        "| L5 | £2,500 | CA$4,500 |"
    )
    shaped = answer(embedder, "What is the Canada limit for an L5?", text)
    assert (shaped.form, spans_point_at_the_passage(text, shaped)) == ("figure", "CA$4,500")
    assert shaped.text == "L5, Canada limit: CA$4,500"


def test_table_rows_under_one_heading_are_a_block(embedder):
    text = (
        "Balance sheet (£m)\nItem | 2019 | 2018\nFixed assets |  | \nInvestments | 1,216.0 | 1,212.9\n"
        "Current assets |  | \nDebtors | 4.5 | 152.5\nCash at bank | 20.1 | 18.3\nCreditors | (3.2) | (2.9)"
    )
    shaped = answer(embedder, "What are the components of current assets?", text)
    assert shaped.form == "block"
    assert spans_point_at_the_passage(text, shaped) == text[text.index("Current assets") :]


def test_question_types():
    assert question_type("How many keeping-in-touch days can I work?") == "figure"
    assert question_type("When does the statement close?") == "date"
    assert question_type("Who has to sign off an expense claim?") == "name"
    assert question_type("How do I install the CLI on Linux?") == "block"
    assert question_type("What are the main components of the control plane?") == "block"
    assert question_type("What is the average excess tax benefits in 2018?") == "figure"
    assert question_type("What was the change in interest expense between 2017 and 2018?") == "figure"
    assert question_type("Which pods does draining a node evict?") == "other"
    assert question_type("Why is the registry read-only?") == "explain"


def test_layout_keeps_offsets_of_cells_rows_and_sentences():
    lines = split_lines(TABLE)
    (table,) = find_tables(lines)
    assert table.columns == ("", "2019", "2018", "2017")
    assert [lines[row].cells[0].text for row in table.rows] == ["Fixed Price", "Other", "Total sales"]
    for sentence in sentences(LEAVE + "\n" + PROCEDURE):
        assert (LEAVE + "\n" + PROCEDURE)[sentence.start : sentence.end] == sentence.text


def _passages(*texts: str) -> list[Passage]:
    return [
        Passage(Chunk(id=i, document_id=i, text=text, title="t", section="", source_path=f"{i}.md"), 1.0, rank=i)
        for i, text in enumerate(texts)
    ]


def test_a_sentence_of_a_lower_ranked_passage_gives_up_a_little_score_but_still_wins_when_it_answers(embedder):
    question = "How many days of paid annual leave do full-time employees receive?"
    same = LEAVE.splitlines()[0]
    scored, _, _ = score_sentences(question, None, _passages(same, same), embedder)
    by_passage = {item.passage_index: item.score for item in scored}
    assert by_passage[0] - by_passage[1] == pytest.approx(RANK_PENALTY, abs=1e-6)

    canteen = "The canteen serves lunch from 12:00 to 14:00 on weekdays."
    scored, _, _ = score_sentences(question, None, _passages(canteen, same), embedder)
    assert pick_sentences(scored, 1)[0].text == same  # retrieval's order is a prior, not the answer
