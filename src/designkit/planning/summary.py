"""Human-readable views of a plan: the summary table and ``inspect`` listings."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from designkit.console_table import format_table
from designkit.errors import InputError
from designkit.planning.planfile import Plan
from designkit.planning.spillover import describe, found


def summary_rows(meta: dict[str, Any]) -> list[dict[str, Any]]:
    power = {(r["experiment"], r["arm"]): r for r in meta["power"]}
    rows = []
    for row in meta["budget"]["rows"]:
        exp = next(e for e in meta["experiments"] if e["name"] == row["experiment"])
        p = power.get((row["experiment"], row["arm"]))
        mde = None
        if p is not None:
            mde = f"{p['mde_effect_size']:.2f} ({'h' if p['effect_size_name'] == 'cohen_h' else 'd'})"
            if p.get("mde_natural") is not None:
                mde += f" = {p['mde_natural'] * 100:+.1f} pp"
        rows.append(
            {
                "experiment": row["experiment"] + (" (placebo)" if exp["placebo"] else ""),
                "kind": exp["kind"],
                "arm": row["arm"],
                "dose": row["dose"],
                "items": row["n_items"],
                "insertions": row["insertions"],
                "tokens": row["tokens"],
                "share": f"{row['share_of_run']:.3%}",
                "sequences": f"{row.get('edited_sequences', 0):,} ({row.get('edited_sequence_share', 0.0):.2%})",
                "outcome": p["outcome"] if p else ("control" if row["arm"] == exp["control_arm"] else "-"),
                "MDE": mde or "-",
            }
        )
    return rows


def power_settings(meta: dict[str, Any]) -> tuple[float, float]:
    """(alpha, power) the plan's MDEs were computed at: the design's ``analysis`` block
    (plans written before it held them kept a ``power`` block)."""
    design = meta.get("design") or {}
    given = {**(design.get("power") or {}), **(design.get("analysis") or {})}
    return float(given.get("alpha", 0.05)), float(given.get("power", 0.8))


def format_summary(meta: dict[str, Any], plan_hash: str) -> str:
    alpha, power = power_settings(meta)
    geo = meta["geometry"]
    budget = meta["budget"]
    leak = meta["leakage"]
    # sequences removed or noised whole get their own column, shown only when a plan has any
    edited = int(budget.get("edited_sequences", 0))
    columns = ["experiment", "kind", "arm", "dose", "items", "insertions", "tokens", "share", *(["sequences"] if edited else []), "outcome", "MDE"]
    headers = ["experiment", "kind", "arm", "dose", "items", "insertions", "tokens", "share of run",
               *(["sequences removed/noised"] if edited else []), "primary outcome", f"MDE (α={alpha:g}, power {power:g})"]  # fmt: skip
    lines = [
        f"plan {meta['name']}  seed {meta['seed']}  hash {plan_hash[:16]}",
        f"run: {geo['steps']:,} steps × {geo['global_batch']} sequences × {geo['seq_len']} tokens = {geo['total_tokens']:,} tokens"
        f" ({geo['corpus_epochs']:.2f} epochs of the corpus's training region); model ≈ {meta['model']['n_params'] / 1e6:.2f}M parameters",
        "",
        format_table(summary_rows(meta), columns, headers),
        "",
        f"injected: {budget['injected_tokens']:,} tokens = {budget['injected_fraction']:.2%} of the run (limit {budget['max_injected_fraction']:.2%})",
        *([f"removed or noised: {edited:,} sequences = {budget['edited_sequence_fraction']:.2%} of the run's sequences"] if edited else []),
        f"leakage ({leak['ngram']}-grams, {leak['corpus_tokens_scanned']:,} corpus tokens scanned): "
        f"{leak['items_in_corpus']} items found in the corpus, {leak['cross_experiment_pairs']} cross-experiment pairs"
        + (f", {leak['items_too_short']} items shorter than the n-gram (not checked)" if leak["items_too_short"] else ""),
        *[f"warning: spillover ({leak['ngram']}-grams), {describe(row, leak['ngram'])}" for row in found(meta.get("spillover") or {})],
    ]
    return "\n".join(lines)


def describe_sequence(plan: Plan, global_seq: int) -> str:
    if not 0 <= global_seq < plan.n_sequences:
        raise InputError(plan.path, "--seq", f"expected a global sequence index in [0, {plan.n_sequences}), got {global_seq}")
    placements = plan.placements()
    seqs = placements["global_seq"].to_numpy()
    lo, hi = np.searchsorted(seqs, global_seq, "left"), np.searchsorted(seqs, global_seq, "right")
    edits = placements.iloc[lo:hi]
    items = plan.items()
    step, slot = divmod(global_seq, plan.global_batch)
    header = f"sequence {global_seq}: step {step}, position {slot} of the global batch; {len(edits)} edit(s)"
    if not len(edits):
        return header + " (plain corpus text)"
    rows = []
    for edit in edits.itertuples():
        item = items.iloc[edit.item_index] if edit.item_index >= 0 else None
        rows.append(
            {
                "offset": int(edit.offset),
                "tokens": int(edit.n_tokens),
                "edit": edit.edit,
                "item": edit.item_id,
                "arm": item.arm if item is not None else "-",
                "repetition": int(edit.repetition) + 1,
                "of": int(item.dose) if item is not None else "-",
                "text": _snippet(item.text) if item is not None else "-",
            }
        )
    return header + "\n" + format_table(rows, ["offset", "tokens", "edit", "item", "arm", "repetition", "of", "text"])


def describe_item(plan: Plan, item_id: str) -> str:
    items = plan.items()
    matches = items.index[items["item_id"] == item_id]
    if not len(matches):
        raise InputError(plan.path, "--item", f"expected an item id such as {items['item_id'].iloc[0]!r}, got {item_id!r}")
    item = items.iloc[matches[0]]
    lines = [
        f"item {item.item_id}: experiment {item.experiment} ({item.kind}), arm {item.arm}, dose {item.dose}"
        + ("" if item.inserted else " (never inserted)"),
        f"text: {item.text!r}",
    ]
    if int(item.n_payloads) > 1:
        lines.append(f"payloads: {int(item.n_payloads)} (placements name each by payload_index)")
    instances = plan.probe_instances()
    for inst in instances[instances["item_index"] == item.item_index].itertuples():
        label = f"instance {int(inst.instance)}: " if int(item.n_instances) > 1 else ""
        if isinstance(inst.prompt, str):
            lines.append(f"{label}prompt: {inst.prompt!r}  target: {inst.target!r}")
        if inst.choices is not None and len(inst.choices):
            lines.append(f"{label}choices: {list(inst.choices)}  gold: {int(inst.gold)}")
    meta = json.loads(item.meta)
    if meta:
        lines.append(f"meta: {json.dumps(meta, ensure_ascii=False)}")
    placements = plan.placements()
    mine = placements[placements["item_index"] == item.item_index]
    if len(mine):
        rows = [
            {"payload": int(r.payload_index), "repetition": int(r.repetition) + 1, "global_seq": int(r.global_seq),
             "step": int(r.global_seq) // plan.global_batch, "offset": int(r.offset), "tokens": int(r.n_tokens)}
            for r in mine.sort_values(["global_seq", "offset"]).itertuples()
        ]
        columns = ["repetition", "global_seq", "step", "offset", "tokens"]
        lines.append(format_table(rows, ["payload", *columns] if int(item.n_payloads) > 1 else columns))
    return "\n".join(lines)


def _snippet(text: str, width: int = 60) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"

