"""MemP canary patterns: types × lengths × carriers as strata, least-likely canaries from a file."""

import json
from collections import Counter

import numpy as np
import pytest
from tiny_designs import tiny_design, write_design

from designkit.cli import main
from designkit.data.tokenizer import TextTokenizer
from designkit.errors import InputError
from designkit.planning import Plan, make_plan

ARMS = {"control": {"dose": 0, "share": 0.5}, "x4": {"dose": 4, "share": 0.5}}
CARRIER = "The secret code is"


def _plan(tmp_path, tiny_corpus, generate, **params):
    design = tiny_design(tiny_corpus)
    design["experiments"] = [{"name": "memp", "kind": "canary", "items": {"generate": generate}, "arms": ARMS,
                              "stratify_by": "stratum", "params": {"prefix_tokens": 4, **params}}]
    make_plan(write_design(tmp_path / "d.yaml", design), tmp_path / "plan", show_progress=False)
    return Plan.open(tmp_path / "plan")


def test_each_type_length_and_carrier_is_a_balanced_stratum_of_its_own_construction(tmp_path, tiny_corpus):
    tokenizer_vocab = 512
    ll = [{"tokens": [int(t) for t in np.random.default_rng(i).integers(3, tokenizer_vocab, size=n)]} for n in (1, 8) for i in range(4)]
    (tmp_path / "ll.jsonl").write_text("\n".join(json.dumps(r) for r in ll) + "\n")
    plan = _plan(tmp_path, tiny_corpus, {"n": 4, "lengths": [1, 8], "types": ["none", "rare", "random"],
                                         "carriers": ["@corpus", CARRIER], "carrier_tokens": 12, "least_likely": "ll.jsonl"},
                 rare_pool=16)
    items = plan.probe_rows()
    strata = Counter(items["stratum"])
    # none pairs only with corpus carriers; the others with every length and carrier
    expected = {"none/L0/corpus"} | {f"{t}/L{n}/{c}" for t in ("rare", "random", "least_likely") for n in (1, 8)
                                      for c in ("corpus", next(s.split("/")[2] for s in strata if "carrier-" in s))}
    assert set(strata) == expected and set(strata.values()) == {4}
    # randomization is stratified: every condition has treated and control canaries
    assert (items.groupby("stratum")["arm"].apply(lambda a: sorted(Counter(a).values())) == [[2, 2]] * len(strata)).all()
    carrier = TextTokenizer(plan.tokenizer_dir).encode(CARRIER)
    reserve = np.asarray(plan.corpus().tokens[plan.meta["corpus"]["train_tokens"]:])
    rare_seen, ll_tokens = set(), {tuple(r["tokens"]) for r in ll}
    for row in items.itertuples():
        kind, length, label = row.stratum.split("/")
        payload = plan.payload_of(row.item_index).tolist()
        head = carrier if label.startswith("carrier-") else payload[:12]
        canary = payload[len(head):]
        assert len(canary) == int(length[1:])
        if label == "corpus":  # a reserve excerpt, fresh per canary
            assert any(np.array_equal(reserve[s : s + 12], head) for s in np.flatnonzero(reserve == head[0]))
        else:
            assert payload[: len(carrier)] == carrier
        if kind != "none":  # with a carrier, the carrier prompts the whole canary
            assert list(row.prompt_tokens) == head and list(row.target_tokens) == canary
        if kind == "rare":
            rare_seen |= set(canary)
        if kind == "least_likely":
            assert tuple(canary) in ll_tokens
    assert len(rare_seen) <= 16
    counts = np.bincount(reserve, minlength=512)
    assert max(counts[t] for t in rare_seen) <= np.sort(counts[3:])[40]  # drawn from the rarest tokens
    assert len(set(items.loc[items["stratum"] == "none/L0/corpus", "text"])) == 4
    outcomes = {o["name"]: o.get("estimator") for o in plan.experiments[0]["outcomes"]}
    assert outcomes["membership_auc"] == "auc" and outcomes["membership_tpr"] == "tpr_at_fpr"
    assert outcomes["exposure"] == "exposure" and outcomes["loss_by_stratum"] == "per_stratum"


@pytest.mark.parametrize("generate,field,expected", [
    ({"n": 2, "types": ["none"], "carriers": [""], "length": 16}, "items.generate.carriers", "@corpus"),
    ({"n": 2, "lengths": [1, 8]}, "items.generate.lengths", "prefix_tokens"),
    ({"n": 2, "least_likely": "missing.jsonl"}, "items.generate.least_likely", "designkit canaries"),
])
def test_bad_canary_conditions_are_refused_in_one_line(tmp_path, tiny_corpus, generate, field, expected):
    with pytest.raises(InputError) as info:
        _plan(tmp_path, tiny_corpus, generate)
    assert info.value.field.endswith(field) and expected in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "plan").exists()


@pytest.mark.parametrize("content,field", [
    ('{"text": "a canary"}\n', "tokens"),               # wrong keys
    ('{"tokens": []}\n', "tokens"),
    ('{"tokens": [5, 6, 7, 8, 9, 10], "type": "banana"}\n', "type"),
    ("", None),                                          # empty file
])
def test_bad_canary_files_are_refused_naming_the_field(tmp_path, tiny_corpus, capsys, content, field):
    (tmp_path / "c.jsonl").write_text(content)
    design = tiny_design(tiny_corpus)
    design["experiments"] = [{"name": "memp", "kind": "canary", "items": "c.jsonl", "arms": ARMS}]
    assert main(["plan", str(write_design(tmp_path / "d.yaml", design)), "--out", str(tmp_path / "plan")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("designkit: error:") and "\n" not in err and "c.jsonl" in err
    if field:
        assert f": {field}: expected" in err
    assert not (tmp_path / "plan").exists()
