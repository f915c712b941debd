"""Kind texts, all the modes (MUSE / IID): long documents split across sequences, paragraphs
versus whole, copy counts as arms, i.i.d. replacement of base sequences by reserve documents,
and one-line refusals of bad items files."""

import json

import numpy as np
import pytest
from tiny_designs import tiny_design, write_design

from designkit.cli import main
from designkit.planning import Plan, make_plan

ARMS = {"control": {"dose": 0, "share": 0.5}, "x2": {"dose": 2, "share": 0.5}}
SENTENCE = "The ferryman counted {i} lanterns on the quay and wrote the tally in his blue ledger."


def _document(i: int, paragraphs: int = 6) -> str:
    return "\n\n".join(" ".join(SENTENCE.format(i=f"{i}-{p}-{s}") for s in range(4)) for p in range(paragraphs))


def _plan(tmp_path, tiny_corpus, experiment: dict):
    design = tiny_design(tiny_corpus, **{"run.max_injected_fraction": 0.5})
    design["experiments"] = [experiment]
    make_plan(write_design(tmp_path / "d.yaml", design), tmp_path / "plan", show_progress=False)
    return Plan.open(tmp_path / "plan")


def test_a_document_longer_than_a_sequence_is_one_item_whose_consecutive_chunks_are_payloads_and_probes(tmp_path, tiny_corpus):
    docs = [{"id": f"d{i}", "text": _document(i)} for i in range(4)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    plan = _plan(tmp_path, tiny_corpus, {"name": "muse", "kind": "texts", "items": str(tmp_path / "t.jsonl"), "arms": ARMS})
    items, payloads, instances, placed = plan.items(), plan.payloads(), plan.probe_instances(), plan.placements()
    tokenizer = plan.corpus().tokenizer()
    assert list(items["item_id"]) == [f"muse/{d['id']}" for d in docs]  # the document is the randomized unit
    first, count = plan.item_payloads
    for row, doc in zip(items.itertuples(), docs):
        chunks = [plan.payload_of(int(first[row.item_index]) + k).tolist() for k in range(int(count[row.item_index]))]
        assert len(chunks) > 1  # a ~400-token document does not fit a 64-token sequence
        assert all(len(c) == plan.seq_len - 2 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= plan.seq_len - 2
        assert sum(chunks, []) == list(tokenizer.encode(doc["text"]))  # consecutive, nothing lost
        probes = instances[instances["item_index"] == row.item_index]
        assert [list(p) for p in probes["probe_tokens"]] == chunks  # every chunk is scored, then averaged to the document
        mine = placed[placed["item_index"] == row.item_index]
        assert len(mine) == row.dose * len(chunks)  # each chunk placed dose times
        if row.dose:
            assert sorted(mine.groupby("payload_index").size().unique()) == [row.dose]


def test_paragraph_mode_gives_one_chunk_per_paragraph_and_whole_mode_fewer(tmp_path, tiny_corpus):
    docs = [{"id": f"d{i}", "text": _document(i, paragraphs=3)} for i in range(8)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    experiment = {"name": "muse", "kind": "texts", "items": str(tmp_path / "t.jsonl"), "arms": ARMS,
                  "params": {"split": "paragraphs", "chunk_tokens": 62, "unit": "chunk"}}
    (tmp_path / "p").mkdir()
    items = _plan(tmp_path / "p", tiny_corpus, experiment).items()
    paragraphs = {d["id"]: d["text"].split("\n\n") for d in docs}
    by_doc = items.groupby("stratum")
    for doc, chunks in by_doc:
        texts = [t.strip() for t in chunks.sort_values("item_id")["text"]]
        # every chunk lies inside one paragraph (a paragraph longer than a chunk is chunked in turn)
        assert all(any(t in p for p in paragraphs[doc]) for t in texts)
        assert len(chunks) >= len(paragraphs[doc])
    assert set(items["stratum"]) == set(paragraphs)  # with unit: chunk, a chunk is an item in its document's stratum
    experiment["params"] = {"split": "whole", "chunk_tokens": 62, "unit": "chunk"}
    (tmp_path / "w").mkdir()
    whole = _plan(tmp_path / "w", tiny_corpus, experiment).items()
    assert len(whole) < len(items)


def test_copy_counts_are_arms_inserted_that_many_times(tmp_path, tiny_corpus):
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": SENTENCE.format(i=i)}) + "\n" for i in range(12)))
    arms = {"control": {"dose": 0, "share": 0.25}, "x1": {"dose": 1, "share": 0.25}, "x10": {"dose": 10, "share": 0.25}, "x30": {"dose": 30, "share": 0.25}}
    plan = _plan(tmp_path, tiny_corpus, {"name": "muse", "kind": "texts", "items": str(tmp_path / "t.jsonl"), "arms": arms})
    items, placed = plan.items(), plan.placements()
    counts = placed.groupby("item_index").size()
    for row in items.itertuples():
        assert counts.get(row.item_index, 0) == row.dose


def test_iid_replacement_trains_each_treated_reserve_document_in_place_of_its_base_sequences(tmp_path, tiny_corpus):
    plan = _plan(tmp_path, tiny_corpus, {"name": "iid", "kind": "texts", "params": {"replace": True},
                                         "items": {"generate": {"n": 8, "copies": 2}}, "arms": {"control": {"dose": 0, "share": 0.5}, "x1": {"dose": 1, "share": 0.5}}})
    items, placed, reserved = plan.probe_rows(), plan.placements(), plan.reserved()
    width = plan.seq_len + 1
    reserve = np.asarray(plan.corpus().tokens[plan.corpus_info.train_tokens :])
    documents = reserved[reserved["use"] == "texts replacement documents"]
    assert len(documents) == 8 and set(reserved["use"]) == {"texts replacement documents"}  # no fresh replacement drawn
    for row in items.itertuples():
        payload = np.asarray(plan.payload_of(row.item_index))
        assert len(payload) == width and list(row.probe_tokens) == payload[: width - 2].tolist()
        (window,) = [int(r) for r in documents["reserve_seq"] if np.array_equal(reserve[int(r) * width : (int(r) + 1) * width], payload)]
        mine = placed[placed["item_index"] == row.item_index]
        if row.arm == "control":
            assert len(mine) == 0  # never trained: its base windows stay as they are
        else:
            assert len(mine) >= 2 and (mine["edit"] == "remove").all() and (mine["reserve_seq"] == window).all()
    assert not (placed["edit"] == "insert").any()


def test_replacement_mode_needs_generated_documents(tmp_path, tiny_corpus, capsys):
    (tmp_path / "t.jsonl").write_text(json.dumps({"text": "one"}) + "\n")
    design = tiny_design(tiny_corpus)
    design["experiments"] = [{"name": "iid", "kind": "texts", "params": {"replace": True}, "items": str(tmp_path / "t.jsonl"), "arms": ARMS}]
    assert main(["plan", str(write_design(tmp_path / "d.yaml", design)), "--out", str(tmp_path / "plan")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "params.replace" in err and not (tmp_path / "plan").exists()


@pytest.mark.parametrize(("content", "located"), [
    ("".join(json.dumps({"body": f"text {i}"}) + "\n" for i in range(4)), "t.jsonl:1: text: expected a string field 'text'"),  # wrong keys
    ("", "t.jsonl: expected at least one item"),  # an empty file: the file is the field
    ("".join(json.dumps({"text": ["not", "a", "string"]}) + "\n" for i in range(4)), "t.jsonl:1: text: expected a non-empty string"),
])
def test_bad_items_files_are_refused_in_one_line_naming_the_field(tmp_path, tiny_corpus, capsys, content, located):
    (tmp_path / "t.jsonl").write_text(content)
    design = tiny_design(tiny_corpus)
    design["experiments"] = [{"name": "muse", "kind": "texts", "items": str(tmp_path / "t.jsonl"), "arms": ARMS}]
    assert main(["plan", str(write_design(tmp_path / "d.yaml", design)), "--out", str(tmp_path / "plan")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("designkit: error:")
    assert located in err and not (tmp_path / "plan").exists()
