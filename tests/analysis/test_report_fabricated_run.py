"""A real-format RUN dir built around a real plan without training, for the report tests.

`make_run` writes run.json (with the plan's hash), one checkpoint dir per planned step
holding a dummy lit_model.pth, metrics.csv, an applied.parquet equal to the plan's
placements, and scores/step-*.parquet in the docs/formats.md schema. Scores are
deterministic: item r of an arm of n items gets the normal quantile (r + 0.5) / n, so two
arms that receive no treatment have exactly equal means (estimate 0, p = 1), and inserted
items are shifted by `shift` SDs scaled by log(1 + dose) and by step / final step.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tiny_designs import tiny_design, write_design
from scipy import stats

from designkit.probes import BUILTIN_PROBES, PROBES, scores_schema
from designkit.planning.planfile import Plan
from designkit.provenance import plan_checksums
from designkit.runfile import RunDir

# (center, sd, direction of a real effect) of each continuous score column
CONTINUOUS = {
    "logprob": (-30.0, 3.0, +1),
    "logprob_per_token": (-3.0, 0.5, +1),
    "gold_logprob_norm": (-3.0, 0.5, +1),
    "margin": (0.0, 0.4, +1),
    "loss": (5.0, 0.5, -1),
    "zlib_ratio": (1.0, 0.1, -1),
    "min_k_logprob": (-7.0, 0.8, +1),
}
# the scores files a run of this plan would have: the schema comes from the probe registry
PROBE_COLUMNS = {name: PROBES.get(name).column_names() for name in BUILTIN_PROBES}
SCORES_SCHEMA = scores_schema(PROBES.get(name) for name in BUILTIN_PROBES)

EQUIVALENCE_MARGIN = 1.0


def report_design(corpus: Path) -> dict:
    """Three doses (dose-response), two equal-dose windows (window contrast), a placebo (TOST)."""
    design = tiny_design(corpus)
    design["name"] = "report-test"
    design["experiments"] = [
        {
            "name": "bench", "kind": "contamination", "items": {"generate": {"n": 36}},
            "arms": {"control": {"dose": 0, "share": 0.3334}, "x2": {"dose": 2, "share": 0.3333},
                     "x6": {"dose": 6, "share": 0.3333}},
            "params": {"primary_outcome": "margin"},  # explicit: the tests read this outcome's wording
        },
        {
            "name": "canary", "kind": "canary", "items": {"generate": {"n": 18, "length": 16}},
            "arms": {"control": {"dose": 0, "share": 0.3334},
                     "early": {"dose": 3, "share": 0.3333, "window": [0.0, 0.5]},
                     "late": {"dose": 3, "share": 0.3333, "window": [0.5, 1.0]}},
            "params": {"prefix_tokens": 4},
        },
        {
            "name": "placebo", "kind": "canary", "placebo": True, "items": {"generate": {"n": 40, "length": 16}},
            "arms": {"control": {"dose": 0, "share": 0.5}, "x3": {"dose": 3, "share": 0.5}},
            "params": {"prefix_tokens": 4},
        },
    ]
    design["analysis"] = {"equivalence_margin": EQUIVALENCE_MARGIN}
    return design


_PLANS: dict[str, Path] = {}


def report_plan_dir(corpus: Path, root: Path) -> Path:
    """The report design's plan, made once per session (planning takes a few seconds)."""
    key = str(corpus)
    if key not in _PLANS:
        from designkit.planning import make_plan

        root.mkdir(parents=True, exist_ok=True)
        design = write_design(root / "design.yaml", report_design(corpus))
        make_plan(design, root / "plan", force=True, show_progress=False)
        _PLANS[key] = root / "plan"
    return _PLANS[key]


@pytest.fixture
def report_plan(tiny_corpus, tmp_path_factory) -> Path:
    return report_plan_dir(tiny_corpus, tmp_path_factory.getbasetemp() / "report-plan")


def plan_meta(plan_dir: Path) -> dict:
    return json.loads((plan_dir / "plan.json").read_text(encoding="utf-8"))


def plan_hash(plan_dir: Path) -> str:
    return plan_meta(plan_dir)["plan_hash"]


def make_run(
    run_dir: Path,
    plan_dir: Path,
    *,
    shift: float = 3.0,
    placebo_shift: float = 0.0,
    skip_checkpoints: tuple[int, ...] = (),
    skip_scores: tuple[int, ...] = (),
    applied_drop: int = 0,
    recorded_hash: str | None = None,
    relative_plan_path: bool = False,
) -> Path:
    """Fabricate a finished, scored RUN dir for `plan_dir` (see the module docstring)."""
    meta = plan_meta(plan_dir)
    run_dir.mkdir(parents=True)
    plan_path = Path(plan_dir).resolve()
    if relative_plan_path:
        import os

        plan_path = Path(os.path.relpath(plan_path, run_dir.resolve()))
    (run_dir / "run.json").write_text(json.dumps({
        "format": "designkit-run/3", "plan_hash": recorded_hash or plan_hash(plan_dir), "plan_path": str(plan_path),
        "designkit_version": "0.1.0", "devices": 1, "world_size": 1, "strategy": "auto", "accelerator": "cpu",
        "precision": "32-true", "resumes": [],
    }), encoding="utf-8")
    steps = meta["training"]["checkpoint_steps"]
    for step in steps:
        if step in skip_checkpoints:
            continue
        ckpt = run_dir / "checkpoints" / f"step-{step:08d}"
        ckpt.mkdir(parents=True)
        (ckpt / "lit_model.pth").write_bytes(b"not a real model")
        (ckpt / "model_config.yaml").write_text("n_layer: 2\n", encoding="utf-8")
        (ckpt / "training_state.pt").write_bytes(b"not a real state")
    _write_metrics(run_dir, meta)
    _write_applied(run_dir, plan_dir, meta, applied_drop)
    items = pd.read_parquet(plan_dir / "items.parquet")
    for step in steps:
        if step in skip_scores:
            continue
        frame = scores_at(meta, items, step, max(steps), shift, placebo_shift)
        (run_dir / "scores").mkdir(exist_ok=True)
        table = pa.Table.from_pandas(frame, schema=SCORES_SCHEMA, preserve_index=False)
        pq.write_table(table, run_dir / "scores" / f"step-{step:08d}.parquet")
    return run_dir


def _write_metrics(run_dir: Path, meta: dict) -> None:
    geometry = meta["geometry"]
    steps = np.arange(5, geometry["steps"] + 1, 5)
    tokens = steps * geometry["global_batch"] * geometry["seq_len"]
    frame = pd.DataFrame({
        "step": steps, "tokens": tokens, "loss": 2.0 + 4.0 * np.exp(-steps / 15), "lr": 3e-3,
        "tokens_per_s": 12000.0, "injected_share": 0.08 + 0.02 * np.cos(steps / 7),
    })
    frame.to_csv(run_dir / "metrics.csv", index=False)


def _write_applied(run_dir: Path, plan_dir: Path, meta: dict, drop: int) -> None:
    placements = pd.read_parquet(plan_dir / "placements.parquet")
    if drop:
        placements = placements.iloc[drop:]
    applied = pd.DataFrame({
        "step": (placements["global_seq"] // meta["geometry"]["global_batch"]).astype("int64"),
        "rank": np.zeros(len(placements), dtype=np.int32),
        "global_seq": placements["global_seq"].astype("int64"),
        "offset": placements["offset"].astype("int32"),
        "n_tokens": placements["n_tokens"].astype("int32"),
        "item_index": placements["item_index"].astype("int32"),
        "item_id": placements["item_id"].astype(str),
        "payload_index": placements["payload_index"].astype("int32"),
        "edit": placements["edit"].astype(str),
        # what the engine reads back from a correctly trained batch: the plan's own checksums
        "checksum": plan_checksums(Plan.open(plan_dir))[drop:],
    })
    pq.write_table(pa.Table.from_pandas(applied, preserve_index=False), run_dir / "applied.parquet")


def scores_at(meta: dict, items: pd.DataFrame, step: int, final_step: int, shift: float, placebo_shift: float) -> pd.DataFrame:
    """One row per item and probe of the plan, at `step`."""
    rows = []
    progress = step / final_step
    for experiment in meta["experiments"]:
        mine = items[items["experiment"] == experiment["name"]]
        max_dose = max(arm["dose"] for arm in experiment["arms"].values())
        for _, group in mine.groupby("arm"):
            n = len(group)
            for rank, item in enumerate(group.itertuples(index=False)):
                dose = int(item.dose)
                if item.inserted:
                    strength = shift * math.log1p(dose) / math.log1p(max_dose) * progress
                elif experiment["placebo"] and dose > 0:
                    strength = placebo_shift * progress
                else:
                    strength = 0.0
                for probe in experiment["probes"]:
                    # the unrelated-question probe ranks items the other way, so contrasts vary by item
                    r = n - 1 - rank if probe["name"].endswith("_unrelated") else rank
                    z = stats.norm.ppf((r + 0.5) / n)
                    row = {"item_index": int(item.item_index), "item_id": item.item_id, "instance": 0,
                           "experiment": experiment["name"], "probe": probe["name"], "step": step}
                    row.update(_probe_values(probe["type"], z, r, n, strength))
                    rows.append(row)
    frame = pd.DataFrame(rows)
    for column in SCORES_SCHEMA.names:
        if column not in frame.columns:
            frame[column] = None
    return frame[SCORES_SCHEMA.names]


def _probe_values(probe_type: str, z: float, rank: int, n: int, strength: float) -> dict:
    def continuous(column: str) -> float:
        center, sd, direction = CONTINUOUS[column]
        return center + sd * (z + direction * strength)

    values: dict = {}
    for column in PROBE_COLUMNS[probe_type]:
        if column in CONTINUOUS:
            values[column] = continuous(column)
    if probe_type == "logprob":
        values["n_target_tokens"] = 5
    elif probe_type == "multiple_choice":
        correct = rank < round(n * min(1.0, 0.25 + 0.25 * strength))
        values.update(correct=correct, correct_norm=correct, chosen=0, chosen_norm=0,
                      choice_logprobs=[-3.0, -4.0, -4.0, -4.0], choice_logprobs_norm=[-1.0, -1.2, -1.2, -1.2])
    elif probe_type == "greedy":
        values.update(exact_match=rank < round(n * min(1.0, 0.25 * strength)), prefix_match=int(round(3 * strength)) + rank % 2,
                      n_reference=12)
    elif probe_type == "text_loss":
        values["n_tokens"] = 16
    return values


def test_fabricated_run_reads_like_a_real_one(report_plan, tmp_path):
    run = RunDir.open(make_run(tmp_path / "run", report_plan, relative_plan_path=True))
    steps = plan_meta(report_plan)["training"]["checkpoint_steps"]
    assert run.plan_path.resolve() == report_plan.resolve()  # a relative plan_path resolves against the run dir
    assert list(run.checkpoints()) == steps
    scores = run.scores()
    assert sorted(scores["step"].unique()) == steps
    assert len(run.applied()) == len(pd.read_parquet(report_plan / "placements.parquet"))
    assert list(run.metrics().columns[:3]) == ["step", "tokens", "loss"]


def test_a_checkpoint_without_weights_is_not_complete(report_plan, tmp_path):
    run_dir = make_run(tmp_path / "run", report_plan)
    (run_dir / "checkpoints" / "step-00000020" / "lit_model.pth").unlink()
    assert 20 not in RunDir.open(run_dir).checkpoints()
