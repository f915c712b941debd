"""``designkit leakage-scan``: a plan's items against every training token, on one host or a cluster.

The planner's scan runs in one process (optionally sampled, ``leakage.max_corpus_tokens``).
This command scans the whole training region of the corpus: in parallel over processes
(``--workers``), or as shard ``i`` of ``N`` (``--shard i/N``, one per SLURM array task) whose
files ``--merge`` combines. A shard takes an equal slice of the window starts; each slice
reads ``n - 1`` tokens past its end, so no n-gram is lost and none is seen twice, and the
merged report equals the one-process report exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from designkit import atomic_files, schema
from designkit.errors import InputError
from designkit.kinds import KINDS
from designkit.planning.leakage import assemble_report, payload_rows, select_items
from designkit.planning.ngram_scan import (
    NgramTable,
    TokenFile,
    check_ranges_tile,
    covered_tokens,
    full_ranges,
    scan_token_file,
    split_ranges,
    window_count,
)
from designkit.planning.planfile import Plan

SHARD_FORMAT = "designkit-leakage-shard/1"
REPORT_FORMAT = "designkit-leakage-report/1"
_SHARD_SPEC = re.compile(r"^(\d+)/(\d+)$")


def parse_shard(spec: str) -> tuple[int, int]:
    """``"i/N"`` as ``(i, N)`` with ``0 <= i < N``."""
    match = _SHARD_SPEC.match(spec.strip())
    if not match or not int(match[1]) < int(match[2]):
        raise InputError(None, "--shard", f"expected I/N with 0 <= I < N (e.g. 0/64), got {spec!r}")
    return int(match[1]), int(match[2])


class PlanScan:
    """What a scan of one plan needs: its n-gram table and the token file of its training region."""

    def __init__(self, plan: Plan, corpus_dir: Path | None = None):
        self.plan = plan
        if corpus_dir is not None:
            plan.use_corpus(corpus_dir)
        # the recorded fingerprint and shape are compared; re-hashing every token would double the read
        corpus = plan.corpus(verify_tokens=False)
        info = plan.meta["corpus"]
        self.train_tokens = int(info["train_tokens"])
        self.fingerprint = str(info["fingerprint"])
        self.token_file = TokenFile(corpus.path / "tokens.bin", str(corpus.meta["dtype"]), self.train_tokens)
        self.ngram = int(plan.meta["leakage"]["ngram"])
        # as the planner: only texts edited into the run; remove/noise items are corpus windows
        payload_tokens, payload_index = plan.payload
        edit = {spec.name: _edit(spec, plan.path / "plan.json") for spec in plan.experiment_specs}
        items = payload_rows(plan.items(), plan.payloads())
        inserted = (items["experiment"].map(edit) == "insert").to_numpy()
        self.items, tokens, self.payload_index = select_items(items, np.asarray(payload_tokens), payload_index, inserted)
        self.table = NgramTable.build(tokens, self.payload_index, self.ngram)
        self.ranges = full_ranges(self.train_tokens, self.ngram)

    def windows(self, shard: tuple[int, int] = (0, 1)) -> int:
        return window_count(split_ranges(self.ranges, shard[1], shard[0]))

    def scan(self, shard: tuple[int, int] = (0, 1), *, workers: int = 1, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """The shard's result: its window ranges and the items found in them."""
        index, count = shard
        ranges = split_ranges(self.ranges, count, index)
        entries = scan_token_file(self.token_file, self.table, ranges, workers=workers, progress=progress)
        return {
            "format": SHARD_FORMAT,
            "plan_hash": self.plan.hash,
            "corpus_fingerprint": self.fingerprint,
            "ngram": self.ngram,
            "scan_tokens": self.train_tokens,
            "shard": index,
            "shards": count,
            "window_ranges": [[int(a), int(b)] for a, b in ranges],
            "items_in_corpus": [int(i) for i in self.table.items_of(entries)],
        }

    def report(self, shards: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The leakage report over all shards of one scan (the same for any number of shards)."""
        in_corpus = np.unique(np.concatenate([np.asarray(s["items_in_corpus"], dtype=np.int64) for s in shards]))
        scanned = covered_tokens([(a, b) for s in shards for a, b in s["window_ranges"]], self.ngram) if len(self.table) else 0
        report = assemble_report(self.items, self.table, self.payload_index, in_corpus, scanned, self.train_tokens)
        return {"format": REPORT_FORMAT, "plan_hash": self.plan.hash, **report}


def read_shards(plan: Plan, files: Sequence[Path], ngram: int) -> list[dict[str, Any]]:
    """Shard files of one scan of ``plan``, checked to cover every window exactly once."""
    shards = []
    for file in files:
        try:
            doc = json.loads(Path(file).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(file, None, "expected a shard file written by designkit leakage-scan --shard") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError(file, None, "expected a JSON shard file written by designkit leakage-scan --shard") from None
        if not isinstance(doc, dict) or doc.get("format") != SHARD_FORMAT:
            raise InputError(file, "format", f"expected {SHARD_FORMAT!r}, got {doc.get('format') if isinstance(doc, dict) else doc!r}")
        if doc.get("plan_hash") != plan.hash:
            raise InputError(file, "plan_hash", f"expected {plan.hash[:12]}… (the plan being merged), got {str(doc.get('plan_hash'))[:12]}… (a shard of another plan)")
        if doc.get("ngram") != ngram:
            raise InputError(file, "ngram", f"expected {ngram}, got {doc.get('ngram')!r}")
        _check_fields(file, doc)
        shards.append((file, doc))
    counts = {doc["shards"] for _, doc in shards}
    if len(counts) != 1:
        raise InputError(shards[0][0], "shards", f"expected shards of one split, got splits into {sorted(counts)}")
    (count,) = counts
    first_file: dict[int, Path] = {}
    for file, doc in shards:
        if doc["shard"] in first_file:
            raise InputError(file, "shard", f"expected each of the {count} shards exactly once; shard {doc['shard']}/{count} is given twice")
        first_file[doc["shard"]] = file
    missing = sorted(set(range(count)) - set(first_file))
    if missing:
        raise InputError(shards[0][0], "shard", f"expected each of the {count} shards exactly once; shard {missing[0]}/{count} is missing")
    return [doc for _, doc in sorted(shards, key=lambda fd: fd[1]["shard"])]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(file: Path, doc: dict[str, Any]) -> None:
    if not (_is_int(doc.get("shards")) and _is_int(doc.get("shard")) and 0 <= doc["shard"] < doc["shards"]):
        raise InputError(file, "shard", f"expected shard I of N shards with 0 <= I < N, got {doc.get('shard')!r} of {doc.get('shards')!r}")
    ranges = doc.get("window_ranges")
    if not isinstance(ranges, list) or not all(isinstance(r, list) and len(r) == 2 and all(_is_int(v) for v in r) for r in ranges):
        raise InputError(file, "window_ranges", "expected a list of [start, stop] window ranges")
    items = doc.get("items_in_corpus")
    if not isinstance(items, list) or not all(_is_int(i) and i >= 0 for i in items):
        raise InputError(file, "items_in_corpus", "expected a list of item indices")


def merge(scan: PlanScan, files: Sequence[Path]) -> dict[str, Any]:
    shards = read_shards(scan.plan, files, scan.ngram)
    parts = [[tuple(r) for r in doc["window_ranges"]] for doc in shards]
    if not check_ranges_tile(parts, scan.ranges):
        raise InputError(files[0], "window_ranges", f"expected the shards to cover the {scan.train_tokens:,} training tokens exactly once")
    return scan.report(shards)


def check_output(out: Path, force: bool, formats: tuple[str, ...]) -> None:
    """Refuse to replace a file unless ``--force`` and it is one of designkit's own leakage files."""
    if not out.exists():
        return
    if not force:
        raise InputError(out, None, "expected a new output file (use --force to replace a leakage report or shard)")
    try:
        doc = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict) or doc.get("format") not in formats:
        raise InputError(out, None, "expected a designkit leakage report or shard to replace; --force never replaces other files")


def write_json(out: Path, doc: dict[str, Any]) -> None:
    atomic_files.write_json(out, doc)


def _edit(spec, plan_json: Path) -> str:
    """The edit of an experiment's kind, as the planner saw it: a kind may choose it from its
    params (``watermark`` inserts texts or noises whole sequences)."""
    kind_class = KINDS.get(spec.kind, file=plan_json, field=f"experiments.{spec.name}.kind")
    params = schema.from_dict(kind_class.Params, dict(spec.params), plan_json, f"experiments.{spec.name}.params")
    return str(kind_class(params).edit)
