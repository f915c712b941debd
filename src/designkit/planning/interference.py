"""Interference designs: which experiments each continuation sub-run switches on.

Bordt & Pawelczyk (2025) ran n + 1 short continual-pretraining runs from one checkpoint
of the combined run (none, and each experiment's data alone) and read the resulting matrix
by eye. ``plan_interference`` derives the sub-plans of two designs from a parent plan and
one of its checkpoints:

- ``one-at-a-time``: none, each experiment alone, all together (n + 2 runs); cross effects
  come from "j alone" vs "none", and "all" vs "i alone" shows what the others do to i;
- ``factorial``: a two-level fractional factorial over the experiments from pyDOE3
  (``fracfact_by_res``; the full factorial ``ff2n`` where no fraction reaches the
  resolution), so main effects and two-way interactions come from far fewer runs than
  one-at-a-time would need for interactions. Resolution IV keeps main effects clear of
  two-way interactions; resolution V keeps two-way interactions clear of each other.

Replicates repeat every run with another base-data seed, so run-to-run noise is estimated.
The INTERFERENCE dir holds ``interference.json`` (this module's record of the design) and
``plans/NAME/`` (one ordinary PLAN dir per sub-run); ``designkit train-interference``
adds ``runs/NAME/``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from designkit import artefacts, atomic_files
from designkit.errors import InputError
from designkit.planning.planfile import Plan
from designkit.planning.subplan import (
    ContinuationSettings,
    ParentCheckpoint,
    SubRunSpec,
    insertable_experiments,
    joint_placements,
    replicate_seed,
    subrun_doses,
    write_subplan,
)

FORMAT = "designkit-interference/1"
INTERFERENCE_FILE = "interference.json"
DESIGNS = ("one-at-a-time", "factorial")
RESOLUTIONS = (4, 5)
DEFAULT_MARGIN = 0.02
"""Equivalence margin (primary-outcome units) of an experiment that declares none."""
MAX_FULL_FACTORS = 7  # a full factorial beyond 128 runs is no fallback


@dataclass(frozen=True)
class InterferenceDir:
    """Read side of an INTERFERENCE dir."""

    path: Path
    meta: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path) -> InterferenceDir:
        import json

        path = Path(path)
        file = path / INTERFERENCE_FILE
        if not file.is_file():
            raise InputError(path, INTERFERENCE_FILE, "expected an interference directory (made by designkit plan-interference)")
        try:
            meta = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(file, None, f"expected JSON ({exc.msg})") from None
        if meta.get("format") != FORMAT:
            raise InputError(file, "format", f"expected {FORMAT!r}, got {meta.get('format')!r}")
        return cls(path=path, meta=meta)

    @property
    def runs(self) -> list[dict[str, Any]]:
        return self.meta["runs"]

    def plan_dir(self, name: str) -> Path:
        return self.path / "plans" / name

    def run_dir(self, name: str) -> Path:
        return self.path / "runs" / name


def one_at_a_time_runs(factors: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """none, each factor alone, all together."""
    return [("none", ()), *((f"only-{name}", (name,)) for name in factors), ("all", tuple(factors))]


def factorial_matrix(n_factors: int, resolution: int) -> tuple[np.ndarray, str]:
    """A two-level design of at least ``resolution`` (rows: runs, columns: factors, entries ±1)
    and how pyDOE3 made it.

    ``fracfact_by_res`` first. Its fraction can fall short of the resolution it was asked
    for (8 factors at V gives 32 runs of resolution IV), so every design is checked; the
    next larger fractions come from pyDOE3's minimum-aberration search ``fracfact_opt``,
    and the full factorial ``ff2n`` is the last resort.
    """
    import pyDOE3

    def enough(matrix: np.ndarray) -> bool:
        achieved = design_resolution(matrix)
        return achieved is None or achieved >= resolution

    n_erased = n_factors
    try:
        matrix = np.asarray(pyDOE3.fracfact_by_res(n_factors, resolution), dtype=np.int64)
        if enough(matrix):
            return matrix, f"pyDOE3.fracfact_by_res({n_factors}, {resolution})"
        n_erased = n_factors - int(round(np.log2(len(matrix))))
    except ValueError:  # no fraction reaches the resolution
        n_erased = 1
    for erased in range(n_erased - 1, 0, -1):
        generator = pyDOE3.fracfact_opt(n_factors, erased)[0]
        matrix = np.asarray(pyDOE3.fracfact(generator), dtype=np.int64)
        if enough(matrix):
            return matrix, f"pyDOE3.fracfact('{generator}') from fracfact_opt({n_factors}, {erased})"
    if n_factors > MAX_FULL_FACTORS:
        raise InputError(None, "resolution", f"expected a resolution a fractional factorial over {n_factors} experiments can reach, got {resolution}")
    return np.asarray(pyDOE3.ff2n(n_factors), dtype=np.int64), f"pyDOE3.ff2n({n_factors})"


def design_resolution(matrix: np.ndarray) -> int | None:
    """Length of the shortest word of the defining relation (None: a full factorial, no aliasing).

    A check of what pyDOE3 built, not a generator: a set of columns whose product is
    constant over the runs is a word of the defining relation.
    """
    n = matrix.shape[1]
    for length in range(1, n + 1):
        for subset in itertools.combinations(range(n), length):
            if np.all(np.prod(matrix[:, subset], axis=1) == np.prod(matrix[0, subset])):
                return length
    return None


def alias_table(matrix: np.ndarray, factors: list[str], max_order: int = 2) -> list[list[str]]:
    """The alias chains of ``pyDOE3.fracfact_aliasing`` that hold a main effect or two-way interaction.

    Each chain lists its effects up to order ``max_order + 1`` by experiment name, e.g.
    ``["bench", "canary:texts:facts"]``; interactions join names with ``:``.
    """
    import pyDOE3

    letters = "abcdefghijklmnopqrstuvwxyz"
    names = dict(zip(letters, factors))
    chains, _ = pyDOE3.fracfact_aliasing(matrix)
    table = []
    for chain in chains:
        terms = [t.strip() for t in chain.split("=")]
        if min(len(t) for t in terms) > max_order:
            continue  # chains of higher-order terms only
        kept = sorted((t for t in terms if len(t) <= max_order + 1), key=lambda t: (len(t), t))
        if len(kept) < 2:
            continue  # aliased with higher-order interactions only
        table.append([":".join(names[c] for c in term) for term in kept])
    return table


def _margins(parent: Plan, overrides: dict[str, float]) -> dict[str, dict[str, Any]]:
    declared = {e["name"]: e.get("interference_margin") for e in parent.meta["design"]["experiments"]}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise InputError(None, "margin", f"expected experiments of the parent plan ({', '.join(declared)}), got {unknown[0]!r}")
    out = {}
    for name, value in declared.items():
        if name in overrides:
            out[name] = {"margin": float(overrides[name]), "source": "command line"}
        elif value is not None:
            out[name] = {"margin": float(value), "source": "design"}
        else:
            out[name] = {"margin": DEFAULT_MARGIN, "source": "default"}
    return out


def plan_interference(
    parent_plan: str | Path,
    checkpoint: str | Path,
    out: str | Path,
    *,
    steps: int,
    design: str = "one-at-a-time",
    resolution: int = 4,
    share: float = 0.01,
    replicates: int = 1,
    optimizer: str = "parent",
    warmup_steps: int = 0,
    margins: dict[str, float] | None = None,
    force: bool = False,
) -> InterferenceDir:
    """Write the INTERFERENCE dir ``out``: ``interference.json`` and ``plans/NAME/``."""
    if design not in DESIGNS:
        raise InputError(None, "design", f"expected one of {', '.join(DESIGNS)}, got {design!r}")
    if resolution not in RESOLUTIONS:
        raise InputError(None, "resolution", f"expected one of {', '.join(map(str, RESOLUTIONS))}, got {resolution}")
    if steps < 1:
        raise InputError(None, "steps", f"expected a positive integer, got {steps}")
    if not 0 < share <= 0.5:
        raise InputError(None, "share", f"expected a share in (0, 0.5], got {share}")
    if replicates < 1:
        raise InputError(None, "replicates", f"expected a positive integer, got {replicates}")
    if warmup_steps < 0 or (optimizer == "parent" and warmup_steps):
        raise InputError(None, "warmup_steps", "expected a non-negative warmup, and only with a fresh optimizer")
    out = Path(out)
    replace = artefacts.check_output(out, "interference", force=force, option="--out")

    parent = Plan.open(parent_plan)
    ckpt = ParentCheckpoint.open(checkpoint, parent)
    factors = insertable_experiments(parent)
    if not factors:
        raise InputError(parent.path / "plan.json", "experiments", "expected at least one experiment with data to switch on")
    settings = ContinuationSettings(steps=steps, share=share, optimizer=optimizer, warmup_steps=warmup_steps)  # type: ignore[arg-type]
    margin_table = _margins(parent, margins or {})

    matrix, generator, achieved, aliases = None, None, None, []
    if design == "one-at-a-time":
        base = one_at_a_time_runs(factors)
    else:
        if len(factors) < 2:
            raise InputError(None, "design", f"expected at least two experiments with data for a factorial design, got {factors}")
        matrix, generator = factorial_matrix(len(factors), resolution)
        achieved = design_resolution(matrix)
        aliases = alias_table(matrix, factors)
        width = len(str(len(matrix)))
        base = [(f"f{i + 1:0{width}d}", tuple(f for f, level in zip(factors, row) if level > 0)) for i, row in enumerate(matrix)]
    runs = [
        SubRunSpec(name if replicates == 1 else f"{name}-r{r}", on, replicate=r)
        for r in range(replicates)
        for name, on in base
    ]

    doses = subrun_doses(parent, settings)
    joint = joint_placements(parent, settings, doses)
    parent_seed = int(parent.meta["training"]["seed"])
    records = []
    with atomic_files.atomic_directory(out, replace=replace) as tmp:
        for run in runs:
            plan_hash = write_subplan(parent, ckpt, settings, run, tmp / "plans" / run.name, doses=doses, joint=joint, extra={"design": design})
            records.append({"name": run.name, "on": list(run.on), "replicate": run.replicate, "seed": replicate_seed(parent_seed, run.replicate),
                            "plan": f"plans/{run.name}", "plan_hash": plan_hash})  # fmt: skip
        meta = {
            "format": FORMAT,
            "design": design,
            "resolution_requested": resolution if design == "factorial" else None,
            "resolution": achieved,
            "generator": generator,
            "parent_plan": str(Path(parent.path).resolve()),
            "parent_plan_hash": parent.hash,
            "checkpoint": str(ckpt.path),
            "parent_step": ckpt.step,
            "steps": steps,
            "share": share,
            "optimizer": optimizer,
            "warmup_steps": warmup_steps,
            "replicates": replicates,
            "factors": factors,
            "experiments": [e["name"] for e in parent.experiments],
            "margins": margin_table,
            "doses": {f"{e}/{a}": int(d) for (e, a), d in _arm_doses(parent, doses).items()},
            "factor_matrix": None if matrix is None else matrix.tolist(),
            "alias_table": aliases,
            "runs": records,
        }
        atomic_files.write_json(tmp / INTERFERENCE_FILE, meta)
    return InterferenceDir(path=out, meta=meta)


def _arm_doses(parent: Plan, doses) -> dict[tuple[str, str], int]:
    items = parent.items()
    treated = items[items["inserted"]]
    frame = treated.assign(sub_dose=doses.reindex(treated["item_index"].to_numpy()).to_numpy())
    return {(e, a): int(g["sub_dose"].iloc[0]) for (e, a), g in frame.groupby(["experiment", "arm"], sort=False)}


def format_summary(meta: dict[str, Any]) -> str:
    """Run count, each run's switched-on experiments, and the alias structure."""
    factors = meta["factors"]
    lines = [
        f"{meta['design']} interference design over {len(factors)} experiments ({', '.join(factors)}): "
        f"{len(meta['runs'])} runs of {meta['steps']} steps from step {meta['parent_step']} of {meta['parent_plan']}",
        f"each switched-on experiment is {meta['share']:.2%} of a run's tokens; optimizer: {meta['optimizer']}; "
        f"replicates: {meta['replicates']}",
    ]
    if meta["design"] == "factorial":
        res = meta["resolution"]
        lines.append(f"generator: {meta['generator']}; resolution {'full factorial (no aliasing)' if res is None else _roman(res)}")
    lines.append("runs:")
    for run in meta["runs"]:
        lines.append(f"  {run['name']:<16} on: {', '.join(run['on']) or '(none)'}")
    if meta["design"] == "factorial":
        if meta["alias_table"]:
            lines.append("alias structure (main effects and two-way interactions, with their aliases up to order 3):")
            lines += [f"  {' = '.join(chain)}" for chain in meta["alias_table"]]
        else:
            lines.append("alias structure: no main effect or two-way interaction is aliased")
    margins = ", ".join(f"{name} ±{m['margin']:g} ({m['source']})" for name, m in meta["margins"].items())
    lines.append(f"equivalence margins: {margins}")
    return "\n".join(lines)


def _roman(n: int) -> str:
    return {3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}.get(n, str(n))


def subrun_commands(directory: str | Path) -> list[str]:
    """One ``designkit train`` command per sub-run (for a SLURM job array or any scheduler)."""
    import shlex

    inter = InterferenceDir.open(directory)
    return [
        f"designkit train {shlex.quote(str(inter.plan_dir(run['name'])))} --out {shlex.quote(str(inter.run_dir(run['name'])))} --resume"
        for run in inter.runs
    ]
