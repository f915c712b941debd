"""The verbatim kind plans spans into removed and kept arms, and no removed span is ever trained:
the training stream is rebuilt from the plan with the engine's own stream code and scanned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_designs import write_design
from verbatim_designs import SPAN_HALF, random_token_corpus, verbatim_design

from designkit.planning import Plan, make_plan
from engine.stream import InjectingStream

MIN_PIECE = 6  # a straddled piece at a sequence edge this long is the span's, not chance (64 symbols: 64**-6)


@pytest.fixture(scope="module")
def verbatim_plan(tmp_path_factory, tiny_corpus) -> Path:
    root = tmp_path_factory.mktemp("verbatim-plan")
    # a stretch of the training region appears twice, so many spans occur twice (and in other windows)
    corpus = random_token_corpus(root / "data", tiny_corpus, n_tokens=30_000, repeat=(500, 8003, 5000))
    design = verbatim_design(corpus, n=24, steps=60)
    make_plan(write_design(root / "design.yaml", design), root / "plan", show_progress=False)
    return root / "plan"


def _span_arms(plan: Plan) -> tuple[list[np.ndarray], list[np.ndarray]]:
    items = plan.probe_rows()
    spans = [np.concatenate([p, t]).astype(np.int64) for p, t in zip(items["prompt_tokens"], items["target_tokens"])]
    removed = [s for s, arm in zip(spans, items["arm"]) if arm == "removed"]
    kept = [s for s, arm in zip(spans, items["arm"]) if arm == "kept"]
    return removed, kept


def _trained_sequences(plan: Plan) -> np.ndarray:
    """Every sequence of every global batch, as the training loop gets them (engine.stream)."""
    stream = InjectingStream.from_plan(plan)
    steps = plan.n_sequences // plan.global_batch
    return np.concatenate([np.asarray(stream.batch(step).tokens, dtype=np.int64) for step in range(steps)])


def _contains(rows: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Per row: does the span occur anywhere in it."""
    windows = np.lib.stride_tricks.sliding_window_view(rows, len(span), axis=1)
    return (windows == span).all(axis=2).any(axis=1)


def _edge_pieces(rows: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Per row: does it end with a head of the span or start with its tail (at least MIN_PIECE
    tokens): the piece a sequence holds of an occurrence that straddles two windows."""
    hit = np.zeros(len(rows), dtype=bool)
    for k in range(MIN_PIECE, len(span)):
        hit |= (rows[:, -k:] == span[:k]).all(axis=1) | (rows[:, :k] == span[-k:]).all(axis=1)
    return hit


def test_verbatim_items_are_spans_with_prefix_and_suffix_and_their_windows(verbatim_plan):
    plan = Plan.open(verbatim_plan)
    items = plan.probe_rows()
    assert len(items) == 24 and set(items["arm"]) == {"kept", "removed"}
    assert all(len(p) == SPAN_HALF and len(t) == SPAN_HALF for p, t in zip(items["prompt_tokens"], items["target_tokens"]))
    meta = [json.loads(m) for m in items["meta"]]
    assert all(m["trained_sequences"] >= 1 and m["occurrences"] >= 1 for m in meta)
    twice = [m for m, arm in zip(meta, items["arm"]) if m["occurrences"] == 2 and arm == "removed"]
    assert twice  # removal must cover every occurrence, not only the one the span was drawn from
    placements = plan.placements()
    removed_items = set(items.loc[items["arm"] == "removed", "item_index"])
    assert set(placements["item_index"]) == removed_items  # only removed spans are edited, all of them
    assert (placements["edit"].astype(str) == "remove").all() and (placements["reserve_seq"] >= 0).all()
    assert placements["reserve_seq"].is_unique  # a fresh reserve window per removed visit


def test_removed_spans_never_appear_in_any_trained_sequence(verbatim_plan):
    plan = Plan.open(verbatim_plan)
    removed, kept = _span_arms(plan)
    rows = _trained_sequences(plan)
    assert len(rows) == plan.n_sequences
    stream_tokens = rows.reshape(1, -1)  # the stream end to end: occurrences across sequence boundaries too
    for span in removed:
        assert not _contains(rows, span).any()
        assert not _edge_pieces(rows, span).any()
        assert not _contains(stream_tokens, span).any()
    # the scan can see spans: every kept span is trained, whole or as straddled pieces
    for span in kept:
        assert (_contains(rows, span) | _edge_pieces(rows, span)).any()


def test_without_the_removal_edits_the_removed_spans_would_be_trained(verbatim_plan):
    """The property above is the edits' doing: the unedited stream trains every removed span."""
    from engine.stream import PlanEdits

    plan = Plan.open(verbatim_plan)
    removed, _ = _span_arms(plan)
    tokens, _, _ = InjectingStream.from_plan(plan, edits=PlanEdits.empty()).sequences(0, plan.n_sequences)
    rows = np.asarray(tokens, dtype=np.int64)
    assert all((_contains(rows, span) | _edge_pieces(rows, span)).any() for span in removed)


def test_prefer_repeated_takes_the_spans_the_corpus_repeats(tmp_path, tiny_corpus):
    corpus = random_token_corpus(tmp_path / "data", tiny_corpus, n_tokens=30_000, repeat=(500, 8003, 5000))
    design = verbatim_design(corpus, n=12, steps=60)
    design["experiments"][0]["items"]["generate"]["prefer_repeated"] = True
    make_plan(write_design(tmp_path / "design.yaml", design), tmp_path / "plan", show_progress=False)
    meta = [json.loads(m) for m in Plan.open(tmp_path / "plan").items()["meta"]]
    assert all(m["occurrences"] == 2 for m in meta)  # in draw order about a third would occur once


def _file_design(tmp_path: Path, corpus: Path, records: list[dict]) -> Path:
    spans = tmp_path / "spans.jsonl"
    spans.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    design = verbatim_design(corpus, n=1, steps=60)
    design["experiments"][0]["items"] = {"path": str(spans)}
    return write_design(tmp_path / "design.yaml", design)


def test_spans_from_an_items_file_are_found_in_the_corpus_and_removed(tmp_path, tiny_corpus):
    from designkit.data.corpus import TokenCorpus

    corpus = random_token_corpus(tmp_path / "data", tiny_corpus, n_tokens=30_000)
    tokens = np.asarray(TokenCorpus.open(corpus).tokens, dtype=np.int64)
    starts = [1000, 3100, 5150, 7300, 9400, 11500]  # well apart: no two share a window
    records = [{"id": f"s{i}", "tokens": tokens[s : s + 2 * SPAN_HALF].tolist(), "source": "test"} for i, s in enumerate(starts)]
    make_plan(_file_design(tmp_path, corpus, records), tmp_path / "plan", show_progress=False)
    plan = Plan.open(tmp_path / "plan")
    items = plan.items()
    assert sorted(items["item_id"]) == [f"memv/s{i}" for i in range(6)]
    assert all(json.loads(m)["source"] == "test" for m in items["meta"])
    removed, _ = _span_arms(plan)
    rows = _trained_sequences(plan)
    assert removed and not any(_contains(rows, span).any() or _edge_pieces(rows, span).any() for span in removed)


def test_an_items_file_span_the_run_never_trains_is_refused_in_one_line(tmp_path, tiny_corpus):
    from designkit.errors import InputError

    corpus = random_token_corpus(tmp_path / "data", tiny_corpus, n_tokens=30_000)
    never = {"id": "absent", "tokens": list(range(300, 300 + 2 * SPAN_HALF))}  # ids the corpus never uses
    with pytest.raises(InputError, match="expected a span the run trains") as caught:
        make_plan(_file_design(tmp_path, corpus, [never, never | {"id": "again"}]), tmp_path / "plan", show_progress=False)
    assert "spans.jsonl:1" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "plan").exists()
