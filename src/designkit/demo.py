"""``designkit demo``: prepare → plan → train → analyze the built-in CPU demo in one go."""

from __future__ import annotations

import dataclasses
import time
from importlib import resources
from pathlib import Path

from designkit import artefacts, atomic_files
from designkit.errors import InputError, quote


BUILTIN_DESIGNS = {"demo": "demo", "ten": "ten-cpu", "ten-cpu": "ten-cpu"}
"""Names ``designkit demo --design`` accepts for the designs shipped in the package
(copies of ``designs/demo.yaml`` and ``designs/ten-cpu.yaml``)."""


def builtin_design(name: str = "demo") -> Path:
    return Path(str(resources.files("designkit") / "builtin_designs" / f"{BUILTIN_DESIGNS.get(name, name)}.yaml"))


def resolve_design(design: str | Path | None) -> Path:
    """A built-in design's name (``demo``, ``ten``) or a design file; a file of that name in
    the working directory wins over nothing, but a built-in name is never a path."""
    if design is None:
        return builtin_design()
    text = str(design)
    if text in BUILTIN_DESIGNS:
        return builtin_design(text)
    path = Path(text)
    if not path.is_file():
        names = ", ".join(sorted(BUILTIN_DESIGNS))
        raise InputError(None, "--design", f"expected a design file or a built-in design ({names}), got {quote(text)}")
    return path


WITH_REFERENCE = {"ten-cpu"}
"""Built-in designs whose demo also trains the reference run (see ``reference_design``)."""


def reference_design(design):
    """The same run with only the design's placebo experiments: same seed, data, model and
    training, nothing edited, the reference of the report's loss comparison (a design needs
    at least one experiment, and a placebo edits nothing). None for a design without a placebo."""
    placebos = [exp for exp in design.experiments if exp.placebo]
    return dataclasses.replace(design, name=f"{design.name}-reference", experiments=placebos) if placebos else None


def run_demo(out: str | Path, *, force: bool = False, design: str | Path | None = None, show_progress: bool = True,
             reference: bool | None = None) -> Path:
    """Run every stage into ``out/{plan,run,report}`` and return the report directory.

    ``reference`` also plans and trains the design's reference run (``reference_design``) into
    ``out/{reference-plan,reference-run}`` and shows its loss beside the run's in the report;
    None: only for the built-in designs in ``WITH_REFERENCE``.
    """
    from designkit.design import load_design
    from designkit.planning import make_plan
    from designkit.planning.planner import plan_design, resolve_corpus
    from designkit.planning.summary import format_summary

    out = Path(out)
    design_path = resolve_design(design)
    if reference is None:
        reference = str(design) in BUILTIN_DESIGNS and BUILTIN_DESIGNS[str(design)] in WITH_REFERENCE
    reference_of = reference_design(load_design(design_path)) if reference else None
    if reference and reference_of is None:
        raise InputError(design_path, "experiments", "expected a placebo experiment for --reference (the reference run "
                                                     "keeps only the placebos: the same run with nothing edited)")
    atomic_files.check_output_dir(out)  # a file, or a place that cannot be written: before minutes of work
    artefacts.check_output(out, "demo", force=force, option="--out")
    timings: dict[str, float] = {}

    def stage(name: str) -> None:
        timings[name] = time.perf_counter()
        print(f"\n== {name} ==", flush=True)

    started = time.perf_counter()
    stage("prepare")
    corpus = resolve_corpus(load_design(design_path), show_progress)
    print(f"corpus {corpus.meta['source']}: {corpus.n_tokens:,} tokens, vocab {corpus.vocab_size:,} ({corpus.path})")

    stage("plan")
    plan = make_plan(design_path, out / "plan", force=True, show_progress=show_progress)
    # the marker that lets a later `demo --force` replace this directory, and only this one
    atomic_files.write_json(out / artefacts.TYPES["demo"].marker, {"format": artefacts.DEMO_FORMAT, "design": str(design_path.resolve())})
    print(format_summary(plan.meta, plan.plan_hash))
    if reference_of is not None:
        plan_design(reference_of, design_path, out / "reference-plan", show_progress=show_progress)
        print(f"reference plan (the same run with only the placebos, nothing edited): {out / 'reference-plan'}")

    stage("train")
    from engine.train import train

    train(out / "plan", out / "run", force=True, show_progress=show_progress)
    if reference_of is not None:
        stage("train reference")
        train(out / "reference-plan", out / "reference-run", force=True, show_progress=show_progress)

    stage("analyze")
    from designkit.analysis.report import analyze_run
    from engine.score import score_run

    score_run(out / "run", show_progress=show_progress)
    report = analyze_run(out / "run", out / "report", force=True, baseline_run=out / "reference-run" if reference_of else None)
    print(report.console_summary())
    total = time.perf_counter() - started
    names = list(timings)
    ends = [timings[n] for n in names[1:]] + [time.perf_counter()]
    print("\ntimings: " + ", ".join(f"{n} {end - timings[n]:.0f} s" for n, end in zip(names, ends)) + f"; total {total / 60:.1f} min")
    return out / "report"
