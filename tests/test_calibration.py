"""Per-index fusion calibration on small real indexes: real embedder, SQLite catalogue, FAISS and BM25."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ingest.records import Record, ingest_records
from penny import Settings
from retrieval.analysis import analyze
from retrieval.calibration import (
    MIN_PSEUDO_QUERIES,
    PseudoQuery,
    calibrate,
    calibrate_on,
    hidden_sentence_candidates,
    pseudo_queries,
    shifts_to_try,
)
from retrieval.calibration_store import FILE_NAME, Calibration, load_calibration
from retrieval.catalogue import open_catalogue
from retrieval.fusion import FusionMethod, fuse_scores
from retrieval.indexer import chunk_texts, compact, index_text
from retrieval.search import Searcher, SearchFilter

# ---------------------------------------------------------------- a corpus the embedder cannot read

_TOPICS = (
    "The harbour crane was repainted after the winter storms",
    "Our choir sang at the summer festival in the park",
    "A storm flooded the low fields along the river",
    "The bakery doubled its bread order for the holidays",
    "Volunteers cleaned the river bank on Saturday morning",
    "The museum opened a new wing for modern sculpture",
    "Engineers tested the bridge cables under heavy load",
    "The school library bought new atlases and maps",
    "Farmers sold apples and pears at the dawn market",
    "The orchestra tuned their instruments before the concert",
    "Nurses finished the night shift at the county hospital",
    "The ferry left the harbour in thick fog",
)
_SYLLABLES = ("ka", "lo", "mi", "te")


def made_up_name_records(count: int = 100) -> list[Record]:
    """Stories of made-up names built from four syllables, each after a sentence on one of twelve real topics.
    A pseudo-query takes some names of one sentence, and the rest of its passage names them again: BM25 matches
    them exactly, while to a sentence embedding the names are the same few word pieces, so it ranks by the topic
    sentence, which says nothing about them. Dense is weak, BM25 strong."""
    rng = random.Random(7)

    def name() -> str:
        return "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((3, 4))))

    records = []
    for i in range(count):
        a, b, c, d, e = (name() for _ in range(5))
        text = (
            f"{_TOPICS[i % len(_TOPICS)]}. The {a} {b} moved the {c} near {d} before {e} arrived. Later {b} and "
            f"{d} praised the {a} for the {c}. Everyone in the {e} district talked about it for weeks."
        )
        records.append(Record(f"s{i}", "", text))
    return records


@pytest.fixture(scope="module")
def weak_dense(tmp_path_factory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("weak-dense"))
    ingest_records(settings, made_up_name_records(), source="stories")
    return settings


def _texts_of(settings: Settings):
    """Chunk ids -> their index texts, read from the committed catalogue as publishing reads its own session."""

    def texts_of(chunk_ids: np.ndarray) -> list[str]:
        with open_catalogue(settings)() as session:
            return chunk_texts(session, chunk_ids)

    return texts_of


def _texts(searcher: Searcher) -> dict[int, str]:
    """Each live row's index text (heading and text), by row."""
    snapshot = searcher.snapshot()
    rows = np.flatnonzero(snapshot.live)
    return dict(zip(rows.tolist(), _texts_of(searcher.settings)(snapshot.chunk_ids[rows]), strict=True))


def _calibrate(settings: Settings) -> Calibration:
    searcher = Searcher(settings)
    return calibrate(searcher, searcher.snapshot(), _texts_of(settings))


def test_pseudo_queries_are_a_few_words_of_one_sentence_of_their_row():
    texts = {row: index_text("", "", record.text) for row, record in enumerate(made_up_name_records())}
    queries = pseudo_queries(texts, 20)
    assert len(queries) == 20 and len({q.row for q in queries}) == 20
    for query in queries:
        words = query.text.split()
        assert 3 <= len(words) <= 8
        assert query.sentence in texts[query.row] and query.sentence not in query.context
        assert all(word in query.sentence for word in words)
        assert len(words) < len(query.sentence.split())  # some words are always dropped
    assert pseudo_queries(texts, 20) == queries  # seeded


def test_calibration_leans_on_bm25_when_the_embedder_cannot_read_the_passages(weak_dense):
    searcher = Searcher(weak_dense)
    calibration = load_calibration(searcher.snapshot().folder)
    assert calibration is not None, "publishing must store the version's calibration"
    assert calibration.mrr_dense / calibration.mrr_bm25 < Settings().fusion_calibration_dense_ratio[0]
    assert calibration.dense_shift < 0 and "dense is weak here" in calibration.reason
    assert calibration.mrr_calibrated > calibration.mrr_configured + Settings().fusion_calibration_margin
    fixed = FusionMethod.from_settings(weak_dense)
    shifted = searcher.fusion_for(searcher.snapshot())
    assert shifted.dense_weight < fixed.dense_weight and shifted.long_dense_weight < fixed.long_dense_weight
    assert calibration.pseudo_queries == 100 and calibration.texts_embedded == 200  # each query and its context
    assert calibration.seconds >= calibration.embed_seconds > 0


def test_calibration_is_deterministic(weak_dense):
    searcher = Searcher(weak_dense)
    first, second = _calibrate(weak_dense), _calibrate(weak_dense)
    assert first.dense_shift == second.dense_shift and first.mrr_by_shift == second.mrr_by_shift
    assert first.dense_shift == load_calibration(searcher.snapshot().folder).dense_shift


def test_a_gain_within_the_margin_keeps_the_configured_weights(weak_dense):
    calibration = _calibrate(weak_dense.model_copy(update={"fusion_calibration_margin": 0.99}))
    assert calibration.dense_shift == 0.0 and "within the margin" in calibration.reason
    assert max(calibration.mrr_by_shift.values()) > calibration.mrr_configured  # a gain there was, just too small


def test_search_ranks_by_the_versions_calibrated_weights(weak_dense):
    searcher = Searcher(weak_dense)
    snapshot = searcher.snapshot()
    calibrated = searcher.fusion_for(snapshot)
    fixed = FusionMethod.from_settings(weak_dense)
    assert calibrated != fixed
    query = pseudo_queries(_texts(searcher), 1)[0].text
    result = searcher.search(query, k=5)
    candidates = searcher.candidates(snapshot, query, result.query_vector, 5, SearchFilter())
    by_chunk = {int(snapshot.chunk_ids[row]): i for i, row in enumerate(candidates.rows)}
    expected = fuse_scores(candidates, calibrated, query)
    unshifted = fuse_scores(candidates, fixed, query)
    for passage in result.passages:
        position = by_chunk[passage.chunk.id]
        assert passage.score == pytest.approx(expected[position])
    assert not np.allclose(expected, unshifted)


def test_calibration_switched_off_stores_nothing_and_search_keeps_the_configured_weights(weak_dense, tmp_path):
    off = Settings(data_dir=tmp_path, fusion_calibration=False)
    ingest_records(off, made_up_name_records(), source="stories")
    searcher = Searcher(off)
    assert not (searcher.snapshot().folder / FILE_NAME).exists()
    assert searcher.fusion_for(searcher.snapshot()) == FusionMethod.from_settings(off)
    # and a calibrated version is searched with the configured weights when calibration is off at search time
    calibrated_index = Searcher(weak_dense.model_copy(update={"fusion_calibration": False}))
    assert (calibrated_index.snapshot().folder / FILE_NAME).exists()
    assert calibrated_index.fusion_for(calibrated_index.snapshot()) == FusionMethod.from_settings(weak_dense)


def test_a_corpus_too_small_to_calibrate_keeps_the_configured_weights(tmp_path):
    settings = Settings(data_dir=tmp_path)
    ingest_records(settings, made_up_name_records(MIN_PSEUDO_QUERIES - 5), source="stories")
    calibration = load_calibration(Searcher(settings).snapshot().folder)
    assert calibration is not None and calibration.dense_shift == 0.0
    assert calibration.texts_embedded == 0 and "fewer than" in calibration.reason


# ---------------------------------------------------------------- versions grown by segments


def test_a_small_append_keeps_the_calibration_and_a_larger_one_measures_it_again(tmp_path):
    settings = Settings(data_dir=tmp_path)
    records = made_up_name_records(120)
    ingest_records(settings, records[:100], source="stories")
    first = load_calibration(Searcher(settings).snapshot().folder)
    ingest_records(settings, records[:105], source="stories")  # 5 rows: under a tenth of the 100 measured
    kept = load_calibration(Searcher(settings).snapshot().folder)
    assert kept == replace(first, changed_since=5)  # nothing measured, nothing embedded again
    ingest_records(settings, records[:111], source="stories")  # 11 rows since the measured version: past a tenth
    snapshot = Searcher(settings).snapshot()
    measured = load_calibration(snapshot.folder)
    assert measured.version == snapshot.version > first.version and measured.changed_since == 0
    assert measured.rows == 111 and measured.texts_embedded == 2 * measured.pseudo_queries


def test_calibration_ranks_only_live_rows_of_every_segment_as_a_compacted_index_does(tmp_path):
    settings = Settings(data_dir=tmp_path)
    records = made_up_name_records(120)
    ingest_records(settings, records[:100], source="stories")
    ingest_records(settings, records[20:], source="stories")  # 20 removed, 20 added: two segments, 20 rows deleted
    searcher = Searcher(settings)
    grown = searcher.snapshot()
    assert len(grown.segments) == 2 and int((~grown.live).sum()) == 20
    stored = load_calibration(grown.folder)
    assert stored.version == grown.version and stored.rows == 100  # 40 rows changed: measured again
    queries = pseudo_queries(_texts(searcher), 100)
    vectors = searcher.embedder.embed([q.text for q in queries])
    contexts = searcher.embedder.embed([q.context for q in queries])
    found = hidden_sentence_candidates(searcher, grown, queries, vectors, contexts, _texts_of(settings))
    texts = _texts(searcher)
    assert all(grown.live[c.rows].all() for c in found)
    for query, candidates, vector, context in zip(queries, found, vectors, contexts, strict=True):
        holders = [row for row in candidates.rows if query.sentence in texts[int(row)]]
        assert holders in ([], [query.row])  # only the source, and scored as if the sentence were not there
        if holders:
            source = int(np.flatnonzero(candidates.rows == query.row)[0])
            assert candidates.dense[source] == pytest.approx(float(context @ vector), abs=1e-5)
    compacted_version = compact(settings)
    compacted = Searcher(settings).snapshot()
    assert compacted.version == compacted_version and len(compacted.segments) == 1
    assert load_calibration(compacted.folder) == stored  # the same live rows: the calibration is kept
    again = _calibrate(settings)
    assert again.pseudo_queries == stored.pseudo_queries
    assert again.mrr_dense == pytest.approx(stored.mrr_dense, abs=0.02)
    assert again.mrr_bm25 == pytest.approx(stored.mrr_bm25, abs=0.02)
    assert again.dense_shift == stored.dense_shift


# ---------------------------------------------------------------- queries BM25 gets wrong

# Each passage with a question that asks for it in other words: no term in common with its own passage.
PARAPHRASED = [
    (
        "Annual leave requests must be approved by your line manager before booking flights.",
        "who signs off on holiday time",
    ),
    ("The cafeteria serves vegetarian lunches between noon and two o'clock.", "when can I eat a meat-free midday meal"),
    ("Laptops are replaced every three years by the IT department.", "how often do we get new notebook computers"),
    ("Parking permits for the basement garage cost forty pounds per month.", "price of a car space underground"),
    ("Fire drills take place on the first Tuesday of each quarter.", "when do we practise building evacuation"),
    ("Expense claims need original receipts scanned into the finance portal.", "what proof of spending must I upload"),
    ("New starters receive a welcome pack with a badge and a laptop bag.", "what do recruits get on day one"),
    ("The gym on the fourth floor opens at six in the morning.", "how early can I exercise at the fitness room"),
    (
        "Printer toner cartridges are ordered through the stationery catalogue.",
        "where do I request ink for copying machines",
    ),
    ("Remote employees may claim a monthly internet allowance of twenty euros.", "home workers broadband subsidy"),
    (
        "Passwords expire after ninety days and must contain twelve characters.",
        "how long until my login secret has to change",
    ),
    ("Maternity pay covers thirty-nine weeks at the statutory rate.", "paid time off after having a baby"),
    (
        "Visitors sign the guest register at reception and wear a red lanyard.",
        "what do people from outside the company do when they arrive",
    ),
    ("The pension scheme matches contributions up to five percent of salary.", "retirement savings the employer adds"),
    ("Bicycle racks are located beside the north entrance.", "where can I leave my bike"),
    ("Overtime is paid at one and a half times the hourly wage.", "extra shifts late evenings compensation"),
    ("Quarterly sales targets are reviewed by the regional director.", "who checks revenue goals"),
    ("Sick notes from a doctor are required after seven consecutive absences.", "medical certificate when ill"),
    ("The library lends technical books for up to three weeks.", "borrowing manuals from the reading room"),
    ("Conference rooms are reserved through the online calendar.", "how to book a meeting space"),
    ("Company cars must be refuelled before they are returned to the pool.", "fill up the shared vehicle with petrol"),
    ("Software licences are audited twice a year by procurement.", "how often are program subscriptions checked"),
    (
        "Travel insurance covers lost luggage and medical emergencies abroad.",
        "protection for missing suitcases overseas",
    ),
    ("Desk plants are watered by the facilities team on Fridays.", "who looks after office greenery"),
    ("Jury service leave is granted with full pay.", "court duty absence salary"),
    ("The staff newsletter is emailed on the last day of every month.", "internal bulletin publication schedule"),
    ("Smoking is only permitted in the shelter behind the warehouse.", "where may I have a cigarette"),
    ("Performance reviews happen each spring with your team lead.", "yearly appraisal timing"),
    ("Lockers in the changing area require a personal padlock.", "storage cupboard security for clothes"),
    ("Interns are mentored by a senior engineer for six months.", "who guides trainees during placement"),
    ("Coffee machines are descaled weekly by the cleaning contractor.", "maintenance of espresso equipment"),
    (
        "Whistleblowing reports can be submitted anonymously to the ethics hotline.",
        "confidential channel to raise misconduct",
    ),
]


def _trap(passage: str) -> str:
    """The passage's rarest-looking term (its longest word): added to another passage's question, it pulls BM25
    to this passage while the question still means the other one."""
    return max(passage.rstrip(".").split(), key=len)


def test_calibration_leans_on_dense_when_bm25_is_led_astray(tmp_path):
    settings = Settings(
        data_dir=tmp_path, fusion_dense_weight=0.5, fusion_numeric_dense_weight=None, fusion_long_dense_weight=None
    )
    ingest_records(settings, [Record(f"p{i}", "", text) for i, (text, _) in enumerate(PARAPHRASED)], source="hb")
    searcher = Searcher(settings)
    texts = _texts(searcher)
    queries = []
    for i, (passage, question) in enumerate(PARAPHRASED):
        assert not set(analyze(question)) & set(analyze(passage)), question
        row = next(row for row, text in texts.items() if passage in text)
        trap = _trap(PARAPHRASED[(i + 1) % len(PARAPHRASED)][0])
        queries.append(PseudoQuery(f"{question} {trap}", row, "", texts[row]))  # no sentence to hide
    assert len(queries) >= MIN_PSEUDO_QUERIES
    calibration = calibrate_on(searcher, searcher.snapshot(), queries, _texts_of(settings))
    assert calibration.mrr_dense > calibration.mrr_bm25 + 0.2
    assert calibration.dense_shift > 0 and "BM25 is weak here" in calibration.reason
    assert calibration.apply(FusionMethod.from_settings(settings)).dense_weight > 0.5
    assert calibration.mrr_calibrated > calibration.mrr_configured


def test_the_configured_weights_stand_where_the_rankers_compare_as_on_the_dev_sets():
    settings = Settings()
    assert shifts_to_try(0.40, 0.45, settings)[0] == (0.0,)
    weak_dense, reason = shifts_to_try(0.05, 0.30, settings)
    assert 0.0 in weak_dense and max(weak_dense) == 0.0 and min(weak_dense) < 0 and "dense is weak" in reason
    weak_bm25, reason = shifts_to_try(0.80, 0.10, settings)
    assert 0.0 in weak_bm25 and min(weak_bm25) == 0.0 and max(weak_bm25) > 0 and "BM25 is weak" in reason
    assert shifts_to_try(0.5, 0.0, settings)[0] == weak_bm25


def test_a_version_written_by_an_older_penny_has_no_calibration(tmp_path):
    assert load_calibration(Path(tmp_path)) is None
