"""Spillover: n-gram overlap between the treated and control items of one experiment.

A control item is only a control if it learns nothing from the treated items' insertions.
Templated texts break that silently: when every text shares a long template ("Field note N:
the keeper of the … wrote the number … on the north wall"), each treated insertion also
trains the control texts' template, the controls' loss falls with the treated ones', and the
contrast measures almost nothing. Held-out probe instances (a reasoning template's test
problems, a trigger's held-out prompts) must likewise share nothing with the training
payloads, or the test measures recall of training text, not generalization.

Per experiment of inserted texts, the planner reports (plan.json ``spillover``):

- ``controls_exposed``: control items whose measured text shares an n-gram with a payload of
  a treated item of the same experiment: the scored tokens of their probe instances (a
  ``probe_tokens`` text in full; of a prompt and its target, the n-grams holding a target
  token, since the prompt is only context). A shared question template ("Question: What is
  the capital of") is not spillover when only the answers are scored; a shared template
  inside scored texts is;
- ``instances_overlapping``: for kinds whose probes are held out
  (``ExperimentKind.probes_held_out``), probe instances (prompt and target, and scored text,
  in full) sharing an n-gram with a treated payload of the experiment (their own item's
  included): the decontamination check of test problems against training problems.

n-grams are token n-grams of ``leakage.ngram`` (13 by default, as lm-eval decontamination),
matched exactly through the same n-gram table as the corpus leakage scan
(``ngram_scan.NgramTable``). Under ``leakage: error`` any overlap refuses the plan.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from designkit.planning.ngram_scan import NgramTable

def _instance_texts(instances: pd.DataFrame, n: int) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """Per instance text: its full tokens, the part whose n-grams touch a scored token, and its row.

    An instance's texts are its prompt followed by its target, and its ``probe_tokens``. Of the
    first only the target is scored (the prompt is context), so its scored part starts ``n - 1``
    tokens before the target: exactly the n-grams holding at least one target token.
    """
    full, scored, owner = [], [], []
    prompts, targets, probes = (instances[c].to_numpy(object) for c in ("prompt_tokens", "target_tokens", "probe_tokens"))
    for row in range(len(instances)):
        prompt, target, probe = prompts[row], targets[row], probes[row]
        if prompt is not None or target is not None:
            head = np.asarray(prompt if prompt is not None else [], dtype=np.int64)
            tail = np.asarray(target if target is not None else [], dtype=np.int64)
            text = np.concatenate([head, tail])
            full.append(text)
            scored.append(text[max(0, len(head) - n + 1) :] if len(tail) else text)
            owner.append(row)
        if probe is not None:
            text = np.asarray(probe, dtype=np.int64)
            full.append(text)
            scored.append(text)
            owner.append(row)
    return full, scored, owner


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
    inserted = items["inserted"].to_numpy(bool)
    control = ~inserted & (items["dose"].to_numpy() == 0)  # placebo arms are neither treated nor controls here
    experiment_code, experiment_names = pd.factorize(items["experiment"])
    held_codes = {int(c) for c, name in enumerate(experiment_names) if name in set(held_out)}
    # text kinds: 0 a payload of a treated item; 1 a held-out instance in full; 2 the scored part of a control's instance
    texts, kinds, rows = [], [], []
    tokens = np.asarray(payload_tokens)
    for p in keep_payload:
        if inserted[payload_item[p]]:
            texts.append(np.asarray(tokens[payload_index[p] : payload_index[p + 1]], dtype=np.int64))
            kinds.append(0)
            rows.append(int(p))
    full, scored, owner = _instance_texts(instances.iloc[keep_instance], n)
    for text_full, text_scored, r in zip(full, scored, owner):
        row = int(keep_instance[r])
        item = instance_item[row]
        if int(experiment_code[item]) in held_codes:
            texts.append(text_full)
            kinds.append(1)
            rows.append(row)
        if control[item]:
            texts.append(text_scored)
            kinds.append(2)
            rows.append(row)
    kinds_a, rows_a = np.asarray(kinds, dtype=np.int8), np.asarray(rows, dtype=np.int64)
    # payload rows index payload_item, instance rows instance_item: np.where would index both
    # arrays with every row (IndexError once an experiment has more payloads than instances)
    is_payload = kinds_a == 0
    item_of_text = np.zeros(len(rows_a), dtype=np.int64)
    item_of_text[is_payload] = payload_item[rows_a[is_payload]]
    item_of_text[~is_payload] = instance_item[rows_a[~is_payload]]
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    index = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    flat = np.concatenate(texts) if texts else np.zeros(0, np.int64)
    table = NgramTable.build(flat, index, n)
    entry, owner = table.entry_owners()

    owner_item = item_of_text[owner]
    frame = pd.DataFrame({
        "key": entry.astype(np.int64) * len(experiment_names) + experiment_code[owner_item],
        "item": owner_item,
        "text_kind": kinds_a[owner],
        "row": rows_a[owner],
    })
    treated_payload = frame[frame["text_kind"] == 0]
    first_treated = treated_payload.groupby("key", sort=False)["item"].first()
    frame["treated_item"] = frame["key"].map(first_treated)
    shared = frame[frame["treated_item"].notna()]

    item_ids = items["item_id"].to_numpy(object)
    held = set(held_out)
    for name in experiments:
        code = int(np.flatnonzero(np.asarray(experiment_names) == name)[0])
        mine = shared[experiment_code[shared["item"].to_numpy()] == code] if len(shared) else shared
        exposed = mine[mine["text_kind"] == 2] if len(mine) else mine
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
