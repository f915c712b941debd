"""``designkit demo``: prepare → plan → train → analyze the built-in CPU demo in one go."""

from __future__ import annotations

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


def run_demo(out: str | Path, *, force: bool = False, design: str | Path | None = None, show_progress: bool = True) -> Path:
    """Run every stage into ``out/{plan,run,report}`` and return the report directory."""
    from designkit.design import load_design
    from designkit.planning import make_plan
    from designkit.planning.planner import resolve_corpus
    from designkit.planning.summary import format_summary

    out = Path(out)
    design_path = resolve_design(design)
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

    stage("train")
    from engine.train import train

    train(out / "plan", out / "run", force=True, show_progress=show_progress)

    stage("analyze")
    from designkit.analysis.report import analyze_run
    from engine.score import score_run

    score_run(out / "run", show_progress=show_progress)
    report = analyze_run(out / "run", out / "report", force=True)
    print(report.console_summary())
    total = time.perf_counter() - started
    names = list(timings)
    ends = [timings[n] for n in names[1:]] + [time.perf_counter()]
    print("\ntimings: " + ", ".join(f"{n} {end - timings[n]:.0f} s" for n, end in zip(names, ends)) + f"; total {total / 60:.1f} min")
    return out / "report"
