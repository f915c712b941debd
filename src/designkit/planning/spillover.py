"""Spillover: n-gram overlap between the treated and control items of one experiment.

A control item is only a control if it learns nothing from the treated items' insertions.
Templated texts break that silently: when every text shares a long template ("Field note N:
the keeper of the … wrote the number … on the north wall"), each treated insertion also
trains the control texts' template, the controls' loss falls with the treated ones', and the
contrast measures almost nothing. Held-out probe instances (a reasoning template's test
problems, a trigger's held-out prompts) must likewise share nothing with the training
payloads, or the test measures recall of training text, not generalization.

Per experiment of inserted texts, the planner reports (plan.json ``spillover``):

- ``controls_exposed``: control items any of whose texts (payloads or probe instances)
  shares an n-gram with a payload of a treated item of the same experiment;
- ``instances_overlapping``: for kinds whose probes are held out
  (``ExperimentKind.probes_held_out``), probe instances sharing an n-gram with a treated
  payload of the experiment (their own item's included).

n-grams are token n-grams of ``leakage.ngram`` (13 by default, as lm-eval decontamination),
matched exactly through the same n-gram table as the corpus leakage scan
(``ngram_scan.NgramTable``). Under ``leakage: error`` any overlap refuses the plan.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from designkit.planning.ngram_scan import NgramTable

INSTANCE_TOKEN_COLUMNS = (("prompt_tokens", "target_tokens"), ("probe_tokens",))
"""The texts of a probe instance that are checked: its prompt followed by its target (what the
model is asked and must produce), and its scored text."""


def _instance_texts(instances: pd.DataFrame) -> tuple[list[np.ndarray], list[int]]:
    """Token arrays of every instance text and the instance row each belongs to."""
    texts, owner = [], []
    columns = {c: instances[c].to_numpy(object) for group in INSTANCE_TOKEN_COLUMNS for c in group}
    for row in range(len(instances)):
        for group in INSTANCE_TOKEN_COLUMNS:
            parts = [columns[c][row] for c in group if columns[c][row] is not None]
            if parts:
                texts.append(np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]))
                owner.append(row)
    return texts, owner


def spillover_report(
    items: pd.DataFrame,
    payloads: pd.DataFrame,
    payload_tokens: np.ndarray,
    payload_index: np.ndarray,
    instances: pd.DataFrame,
    n: int,
    held_out: Sequence[str] = (),
) -> dict:
    """plan.json's ``spillover`` section: per experiment with inserted texts, the counts and one
    example each. ``items`` needs ``item_id``, ``experiment``, ``inserted``, ``edit``, ``dose``;
    ``held_out`` names the experiments whose probe instances must not overlap training payloads."""
    edit = items["edit"].to_numpy(object)
    experiments = [str(e) for e in pd.unique(items.loc[edit == "insert", "experiment"])]
    out = {"ngram": int(n), "experiments": []}
    if not experiments:
        return out
    payload_item = payloads["item_index"].to_numpy(np.int64)
    keep_payload = np.flatnonzero(edit[payload_item] == "insert")
    instance_item = instances["item_index"].to_numpy(np.int64)
    keep_instance = np.flatnonzero(edit[instance_item] == "insert")
    texts, kinds, rows = [], [], []
    tokens = np.asarray(payload_tokens)
    for p in keep_payload:
        texts.append(np.asarray(tokens[payload_index[p] : payload_index[p + 1]], dtype=np.int64))
        kinds.append(0)
        rows.append(int(p))
    instance_texts, instance_rows = _instance_texts(instances.iloc[keep_instance])
    texts += instance_texts
    kinds += [1] * len(instance_texts)
    rows += [int(keep_instance[r]) for r in instance_rows]
    kinds_a, rows_a = np.asarray(kinds, dtype=np.int8), np.asarray(rows, dtype=np.int64)
    item_of_text = np.where(kinds_a == 0, payload_item[rows_a] if len(rows_a) else rows_a,
                            instance_item[rows_a] if len(rows_a) else rows_a)
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    index = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    flat = np.concatenate(texts) if texts else np.zeros(0, np.int64)
    table = NgramTable.build(flat, index, n)
    entry, owner = table.entry_owners()

    experiment_code, experiment_names = pd.factorize(items["experiment"])
    inserted = items["inserted"].to_numpy(bool)
    control = ~inserted & (items["dose"].to_numpy() == 0)  # placebo arms are neither treated nor controls here
    owner_item = item_of_text[owner]
    frame = pd.DataFrame({
        "key": entry.astype(np.int64) * len(experiment_names) + experiment_code[owner_item],
        "item": owner_item,
        "text_kind": kinds_a[owner],
        "row": rows_a[owner],
    })
    treated_payload = frame[(frame["text_kind"] == 0) & inserted[frame["item"].to_numpy()]]
    first_treated = treated_payload.groupby("key", sort=False)["item"].first()
    frame["treated_item"] = frame["key"].map(first_treated)
    shared = frame[frame["treated_item"].notna()]

    item_ids = items["item_id"].to_numpy(object)
    held = set(held_out)
    for name in experiments:
        code = int(np.flatnonzero(np.asarray(experiment_names) == name)[0])
        mine = shared[experiment_code[shared["item"].to_numpy()] == code] if len(shared) else shared
        exposed = mine[control[mine["item"].to_numpy()]] if len(mine) else mine
        row = {
            "experiment": name,
            "controls": int((control & (experiment_code == code)).sum()),
            "controls_exposed": int(exposed["item"].nunique()) if len(exposed) else 0,
            "example_pair": None,
            "instances_checked": None,
            "instances_overlapping": None,
            "example_instance": None,
        }
        if len(exposed):
            first = exposed.iloc[0]
            row["example_pair"] = [str(item_ids[int(first["treated_item"])]), str(item_ids[int(first["item"])])]
        if name in held:
            row["instances_checked"] = int((experiment_code[instance_item[keep_instance]] == code).sum()) if len(keep_instance) else 0
            overlapping = mine[mine["text_kind"] == 1] if len(mine) else mine
            row["instances_overlapping"] = int(overlapping["row"].nunique()) if len(overlapping) else 0
            if len(overlapping):
                first = overlapping.iloc[0]
                instance = int(instances["instance"].to_numpy()[int(first["row"])])
                row["example_instance"] = (f"{item_ids[int(first['item'])]} instance {instance} and a payload of "
                                           f"{item_ids[int(first['treated_item'])]}")
        out["experiments"].append(row)
    return out


def found(report: dict) -> list[dict]:
    """The experiments of a spillover report where overlap was found."""
    return [r for r in report.get("experiments", []) if r.get("controls_exposed") or r.get("instances_overlapping")]


def describe(row: dict, n: int) -> str:
    """One line naming the experiment and an example pair."""
    parts = []
    if row.get("controls_exposed"):
        a, b = row["example_pair"]
        parts.append(f"{row['controls_exposed']} of {row['controls']} control items share a {n}-gram with treated items "
                     f"(e.g. {a} and {b})")
    if row.get("instances_overlapping"):
        parts.append(f"{row['instances_overlapping']} held-out probe instances share a {n}-gram with treated payloads "
                     f"(e.g. {row['example_instance']})")
    return f"experiment {row['experiment']}: " + "; ".join(parts)
