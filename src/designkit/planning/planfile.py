"""Writer and reader of the PLAN directory (docs/formats.md).

The reader is the boundary for plans: it verifies every content hash and the placement
invariants once, and everything downstream (engine, analysis) trusts what it returns.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from designkit import atomic_files, plan_types
from designkit.data.tokenizer import TOKENIZER_FILES
from designkit.errors import InputError, quote

FORMAT = "designkit-plan/5"  # 2: placements carry noise_std; reserved.parquet lists reserve windows; 3: plan.json records plan_hash;
# 4: reserved.parquet lists controller slots (interval); 5: payloads.parquet and probe_instances.parquet (items with many
# payloads and probe instances), placements carry payload_index
PLAN_FILE = "plan.json"
PLAN_HASH_KEY = "plan_hash"
EDIT_KINDS = plan_types.EDIT_KINDS


def plain_scalar(value: Any) -> Any:
    """A numpy integer, float or bool (from pandas records) as the Python number; anything else unchanged."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_parquet(frame: pd.DataFrame, path: Path, schema: pa.Schema | None = None) -> None:
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    # no pandas metadata: it would tie the bytes to the pandas version's repr of dtypes
    _write_table(table.replace_schema_metadata(None), path)


def _write_table(table: pa.Table, path: Path, use_dictionary: bool | list[str] = True, write_statistics: bool | list[str] = True) -> None:
    pq.write_table(table, path, compression="zstd", write_statistics=write_statistics, use_dictionary=use_dictionary)


def edit_codes(edit: pd.Series | np.ndarray) -> np.ndarray:
    """int8 codes of an edit column into ``EDIT_KINDS`` (categorical columns are not re-parsed)."""
    column = pd.Series(edit) if not isinstance(edit, pd.Series) else edit
    if isinstance(column.dtype, pd.CategoricalDtype) and list(column.cat.categories) == list(EDIT_KINDS):
        codes = column.cat.codes.to_numpy()
    else:
        codes = pd.Categorical(column, categories=list(EDIT_KINDS)).codes
    if (codes < 0).any():
        raise ValueError(f"edits must be one of {EDIT_KINDS}")
    return codes.astype(np.int8, copy=False)


def placements_table(placements: pd.DataFrame, item_ids: np.ndarray) -> pa.Table:
    """The placements as an Arrow table of PLACEMENTS_SCHEMA, built column by column from the
    frame's arrays (numeric columns are not copied; item_id and edit are dictionary-encoded)."""
    index = placements["item_index"].to_numpy()
    arrays = []
    for column in PLACEMENTS_SCHEMA:
        if column.name == "item_id":
            dictionary = pa.array(np.asarray(item_ids, dtype=object), type=pa.string())
            missing = index < 0  # an edit of no item (e.g. a bare removal): a null item_id
            indices = pa.array(index, type=pa.int32(), mask=missing) if missing.any() else pa.array(index, type=pa.int32())
            arrays.append(pa.DictionaryArray.from_arrays(indices, dictionary))
        elif column.name == "edit":
            codes = edit_codes(placements["edit"])
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int8()), pa.array(list(EDIT_KINDS), type=pa.string())))
        else:
            arrays.append(pa.array(placements[column.name].to_numpy(), type=column.type))
    return pa.Table.from_arrays(arrays, schema=PLACEMENTS_SCHEMA)


ITEMS_SCHEMA = pa.schema(
    [
        ("item_index", pa.int32()),
        ("item_id", pa.string()),
        ("experiment", pa.string()),
        ("kind", pa.string()),
        ("arm", pa.string()),
        ("dose", pa.int32()),
        ("inserted", pa.bool_()),
        ("stratum", pa.string()),
        ("window_start", pa.float64()),
        ("window_end", pa.float64()),
        ("text", pa.string()),
        ("n_payloads", pa.int32()),
        ("n_instances", pa.int32()),
        ("meta", pa.string()),
        # the item's watermark (GW): its seed, drawn for every item of an experiment with noise on
        # some arm (control items too: a fresh watermark, never trained), else -1; and the std it
        # is trained with (0: never trained). The noise itself is re-derived, never stored.
        ("noise_seed", pa.int64()),
        ("noise_std", pa.float32()),
    ]
)

PAYLOADS_SCHEMA = pa.schema(
    [
        ("payload_index", pa.int32()),
        ("item_index", pa.int32()),
        ("ordinal", pa.int32()),
        ("dose", pa.int32()),
        ("n_tokens", pa.int32()),
    ]
)
"""One row per payload (row number = ``payload_index``): its item, its ordinal among the
item's payloads, its planned repetitions and its token count (without the EOS wrappers)."""

PROBE_FIELD_SCHEMA = pa.schema(
    [
        ("prompt", pa.string()),
        ("target", pa.string()),
        ("alt_prompt", pa.string()),
        ("choices", pa.list_(pa.string())),
        ("gold", pa.int32()),
        ("probe_text", pa.string()),
        ("prompt_tokens", pa.list_(pa.int32())),
        ("target_tokens", pa.list_(pa.int32())),
        ("alt_prompt_tokens", pa.list_(pa.int32())),
        ("probe_tokens", pa.list_(pa.int32())),
        ("alt_probe_tokens", pa.list_(pa.int32())),
        ("choices_tokens", pa.list_(pa.list_(pa.int32()))),
    ]
)
"""The probe fields of one probe instance: what probe specs name."""

INSTANCES_SCHEMA = pa.schema(
    [("item_index", pa.int32()), ("instance", pa.int32()), *PROBE_FIELD_SCHEMA, ("instance_meta", pa.string())]
)
"""One row per probe instance, sorted by (``item_index``, ``instance``)."""

PROBE_ROW_COLUMNS: tuple[str, ...] = (*ITEMS_SCHEMA.names, *INSTANCES_SCHEMA.names[1:])
"""Columns of ``Plan.probe_rows()`` (an item's columns next to each of its instances): the
names probe specs may use as item fields."""

PLACEMENTS_SCHEMA = pa.schema(
    [
        ("global_seq", pa.int64()),
        ("offset", pa.int32()),
        ("n_tokens", pa.int32()),
        ("item_index", pa.int32()),
        ("item_id", pa.dictionary(pa.int32(), pa.string())),
        ("payload_index", pa.int32()),
        ("repetition", pa.int32()),
        ("edit", pa.dictionary(pa.int8(), pa.string())),
        ("reserve_seq", pa.int64()),
        ("noise_seed", pa.int64()),
        ("noise_std", pa.float32()),
    ]
)

RESERVED_SCHEMA = pa.schema(
    [
        ("reserve_seq", pa.int64()),
        ("use", pa.string()),
        ("global_seq", pa.int64()),
        ("offset", pa.int32()),
        ("n_tokens", pa.int32()),
        ("experiment", pa.string()),
        ("interval", pa.int32()),
    ]
)


def write_placements(placements: pd.DataFrame, item_ids: np.ndarray, path: Path) -> None:
    """placements.parquet: dictionary pages only where they pay (10M distinct sequence numbers
    would not fit one), statistics only on numeric columns (min/max of 10M dictionary strings
    cost more than writing the rest)."""
    numeric = [column.name for column in PLACEMENTS_SCHEMA if not pa.types.is_dictionary(column.type)]
    _write_table(placements_table(placements, item_ids), path, use_dictionary=["item_id", "edit"], write_statistics=numeric)


def write_plan(
    out: Path,
    plan: dict[str, Any],
    items: pd.DataFrame,
    payloads: pd.DataFrame,
    instances: pd.DataFrame,
    payload_tokens: np.ndarray,
    payload_index: np.ndarray,
    placements: pd.DataFrame,
    reserved: pd.DataFrame,
    tokenizer_dir: Path,
    *,
    replace: bool = False,
) -> str:
    """Write a complete plan directory atomically and return its plan hash."""
    with atomic_files.atomic_directory(out, replace=replace) as tmp:
        _write_parquet(items[ITEMS_SCHEMA.names], tmp / "items.parquet", ITEMS_SCHEMA)
        _write_parquet(payloads[PAYLOADS_SCHEMA.names], tmp / "payloads.parquet", PAYLOADS_SCHEMA)
        _write_parquet(instances[INSTANCES_SCHEMA.names], tmp / "probe_instances.parquet", INSTANCES_SCHEMA)
        np.save(tmp / "payload_tokens.npy", payload_tokens, allow_pickle=False)
        np.save(tmp / "payload_index.npy", payload_index.astype(np.int64), allow_pickle=False)
        write_placements(placements, items["item_id"].to_numpy(), tmp / "placements.parquet")
        _write_parquet(reserved[RESERVED_SCHEMA.names], tmp / "reserved.parquet", RESERVED_SCHEMA)
        (tmp / "tokenizer").mkdir()
        for name in TOKENIZER_FILES:
            if (tokenizer_dir / name).is_file():
                shutil.copyfile(tokenizer_dir / name, tmp / "tokenizer" / name)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        plan = {**plan, "format": FORMAT, "files": {str(p.relative_to(tmp)): sha256_file(p) for p in files}}
        plan_hash = content_hash(plan)
        atomic_files.write_text(tmp / PLAN_FILE, atomic_files.dumps_json({**plan, PLAN_HASH_KEY: plan_hash}))
    return plan_hash


def content_hash(meta: dict[str, Any]) -> str:
    """The plan hash: sha256 of plan.json's canonical JSON without its own ``plan_hash``.

    plan.json lists the sha256 of every other file, so this one digest covers the whole
    plan directory: a setting edited in plan.json, or a file edited and its listed hash
    updated, changes it. Canonical (sorted keys, fixed layout), so it does not depend on
    how plan.json happens to be formatted.
    """
    body = {key: value for key, value in meta.items() if key != PLAN_HASH_KEY}
    return hashlib.sha256(atomic_files.dumps_json(body).encode("utf-8")).hexdigest()


_SECTIONS = {
    "geometry": plan_types.Geometry.from_json,
    "corpus": plan_types.CorpusInfo.from_json,
    "model": plan_types.ModelInfo.from_json,
    "training": plan_types.TrainingSettings.from_json,
}


def check_structure(meta: Any, plan_file: Path) -> None:
    """The shape of ``plan.json``: every section there and readable, a run of at least one step.

    Content hashes say whether a plan was edited; this says whether it is a plan at all,
    so a list, a missing section or a negative step count is one line, not a traceback.
    """
    if not isinstance(meta, dict):
        raise InputError(plan_file, None, f"expected a JSON object (a designkit plan), got a {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise InputError(plan_file, "format", f"expected {FORMAT!r}, got {quote(meta.get('format'))}")
    for section, parse in {**_SECTIONS, "experiments": None, "files": None}.items():
        if section not in meta:
            raise InputError(plan_file, section, "expected this section of a plan, found none")
        value = meta[section]
        if section == "experiments":
            if not isinstance(value, list) or not value:
                raise InputError(plan_file, section, "expected a non-empty list of experiments")
            for i, entry in enumerate(value):
                _parse(plan_types.ExperimentSpec.from_json, entry, plan_file, f"experiments[{i}]")
        elif section == "files":
            if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                raise InputError(plan_file, section, "expected a mapping of file names to sha256 digests")
        else:
            _parse(parse, value, plan_file, section)
    geometry = plan_types.Geometry.from_json(meta["geometry"])
    for key in ("seq_len", "global_batch", "steps"):
        if getattr(geometry, key) < 1:
            raise InputError(plan_file, f"geometry.{key}", f"expected a positive integer, got {getattr(geometry, key)}")
    if geometry.n_sequences != geometry.steps * geometry.global_batch:
        raise InputError(plan_file, "geometry.n_sequences", f"expected steps × global_batch = {geometry.steps * geometry.global_batch}, got {geometry.n_sequences}")


def verify_content_hash(meta: dict[str, Any], plan_file: Path) -> str:
    """The plan hash recorded in plan.json, after checking it is the hash of plan.json's content."""
    recorded = meta.get(PLAN_HASH_KEY)
    if not isinstance(recorded, str) or len(recorded) != 64:
        raise InputError(plan_file, PLAN_HASH_KEY, "expected the sha256 of plan.json's content, as designkit plan records it, found none")
    actual = content_hash(meta)
    if actual != recorded:
        raise InputError(plan_file, PLAN_HASH_KEY, f"expected {recorded[:12]}… as recorded, got {actual[:12]}… (plan.json was edited)")
    return recorded


def _parse(parse, value: Any, plan_file: Path, at: str) -> None:
    if not isinstance(value, dict):
        raise InputError(plan_file, at, f"expected a JSON object, got {type(value).__name__}")
    try:
        parse(value)
    except KeyError as exc:
        raise InputError(plan_file, f"{at}.{exc.args[0]}", "expected this key, found none") from None
    except (TypeError, ValueError, AttributeError, IndexError) as exc:
        raise InputError(plan_file, at, f"expected a readable {at} section ({str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__})") from None


@dataclass
class Plan:
    """Read side of a PLAN dir. ``Plan.open`` verifies hashes before anything is used."""

    path: Path
    meta: dict[str, Any]
    hash: str
    corpus_path: Path | None = None
    """Where the corpus is read from when not where it was planned (``designkit train --corpus``)."""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: str | Path, *, verify: bool = True) -> Plan:
        path = Path(path)
        plan_file = path / PLAN_FILE
        if not plan_file.is_file():
            raise InputError(path, PLAN_FILE, "expected a plan directory (made by designkit plan)")
        raw = plan_file.read_bytes()
        try:
            meta = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise InputError(plan_file, None, "expected UTF-8 JSON") from None
        except json.JSONDecodeError as exc:
            raise InputError(plan_file, f"line {exc.lineno}", f"expected JSON ({exc.msg})") from None
        check_structure(meta, plan_file)
        plan = cls(path=path, meta=meta, hash=verify_content_hash(meta, plan_file))
        if verify:
            plan.verify()
        return plan

    def verify(self) -> None:
        """Raise InputError unless every listed file exists with its recorded hash, and no file was added."""
        listed = self.meta.get("files", {})
        present = {str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.is_file() and p.name != PLAN_FILE}
        extra = sorted(present - set(listed))
        if extra:
            raise InputError(self.path / extra[0], None, "expected no files beyond those plan.json lists (the plan was edited)")
        for name, digest in sorted(listed.items()):
            file = self.path / name
            if not file.is_file():
                raise InputError(file, None, "expected this plan file to exist (the plan is incomplete)")
            if sha256_file(file) != digest:
                raise InputError(file, None, f"expected sha256 {digest[:12]}… as recorded in plan.json (the file was edited)")

    # geometry
    @property
    def seq_len(self) -> int:
        return int(self.meta["geometry"]["seq_len"])

    @property
    def global_batch(self) -> int:
        return int(self.meta["geometry"]["global_batch"])

    @property
    def steps(self) -> int:
        return int(self.meta["geometry"]["steps"])

    @property
    def n_sequences(self) -> int:
        return int(self.meta["geometry"]["n_sequences"])

    @property
    def experiments(self) -> list[dict[str, Any]]:
        return self.meta["experiments"]

    # the typed records of plan.json (designkit.plan_types)
    @cached_property
    def geometry(self) -> plan_types.Geometry:
        return plan_types.Geometry.from_json(self.meta["geometry"])

    @cached_property
    def corpus_info(self) -> plan_types.CorpusInfo:
        return plan_types.CorpusInfo.from_json(self.meta["corpus"])

    @cached_property
    def model_info(self) -> plan_types.ModelInfo:
        return plan_types.ModelInfo.from_json(self.meta["model"])

    @cached_property
    def training(self) -> plan_types.TrainingSettings:
        return plan_types.TrainingSettings.from_json(self.meta["training"])

    @cached_property
    def experiment_specs(self) -> tuple[plan_types.ExperimentSpec, ...]:
        return tuple(plan_types.ExperimentSpec.from_json(e) for e in self.meta["experiments"])

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / "tokenizer"

    def items(self) -> pd.DataFrame:
        if "items" not in self._cache:
            self._cache["items"] = pd.read_parquet(self.path / "items.parquet")
        return self._cache["items"]

    def payloads(self) -> pd.DataFrame:
        """``payloads.parquet``: one row per payload, row number = ``payload_index``."""
        if "payloads" not in self._cache:
            self._cache["payloads"] = pd.read_parquet(self.path / "payloads.parquet")
        return self._cache["payloads"]

    def probe_instances(self) -> pd.DataFrame:
        """``probe_instances.parquet``: one row per (item, probe instance)."""
        if "instances" not in self._cache:
            instances = pd.read_parquet(self.path / "probe_instances.parquet")
            instances["gold"] = instances["gold"].astype("Int32")  # nullable: only multiple-choice instances have one
            self._cache["instances"] = instances
        return self._cache["instances"]

    def probe_rows(self) -> pd.DataFrame:
        """What probes read: every probe instance with its item's columns (``PROBE_ROW_COLUMNS``),
        in item order, then instance order."""
        instances = self.probe_instances()
        items = self.items()
        rows = items.iloc[instances["item_index"].to_numpy()].reset_index(drop=True)
        for column in INSTANCES_SCHEMA.names[1:]:
            rows[column] = instances[column].to_numpy() if column != "gold" else instances[column].array
        return rows

    def placements(self) -> pd.DataFrame:
        if "placements" not in self._cache:
            self._cache["placements"] = pd.read_parquet(self.path / "placements.parquet")
        return self._cache["placements"]

    def reserved(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "reserved.parquet")

    @cached_property
    def payload(self) -> tuple[np.ndarray, np.ndarray]:
        tokens = np.load(self.path / "payload_tokens.npy", mmap_mode="r", allow_pickle=False)
        index = np.load(self.path / "payload_index.npy", allow_pickle=False)
        return tokens, index

    @cached_property
    def item_payloads(self) -> tuple[np.ndarray, np.ndarray]:
        """Per item, its first payload's row and its number of payloads (an item's payloads are
        consecutive rows): payload ``k`` of item ``i`` is row ``first[i] + k``."""
        payloads = self.payloads()
        counts = np.bincount(payloads["item_index"].to_numpy(np.int64), minlength=len(self.items()))
        return np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64), counts.astype(np.int64)

    def payload_of(self, payload_index: int) -> np.ndarray:
        """The tokens of payload ``payload_index`` (a row of ``payloads.parquet``), without EOS wrappers."""
        tokens, index = self.payload
        return np.asarray(tokens[index[payload_index] : index[payload_index + 1]])

    def use_corpus(self, path: str | Path) -> None:
        """Read the corpus from ``path`` instead of where it was planned: a plan made on a laptop
        trains on a cluster. ``corpus()`` accepts it only if its fingerprint matches."""
        self.corpus_path = Path(path).resolve()
        self._cache.pop("corpus", None)

    def corpus(self, *, verify_tokens: bool = True):
        """The corpus this plan was made for, at ``corpus_path`` or the planned path; InputError unless
        its fingerprint is the plan's.

        ``verify_tokens`` recomputes the fingerprint from every token (cached while the files'
        sizes and mtimes hold), so a copy that differs by one token is refused; without it,
        ``corpus.json``'s recorded fingerprint and shape are compared (a cheap check for the
        processes of a run whose rank 0 verified the tokens).
        """
        from designkit.data.corpus import TokenCorpus

        if "corpus" in self._cache:
            return self._cache["corpus"]
        info = self.meta["corpus"]
        path = self.corpus_path or Path(info["path"])
        corpus = TokenCorpus.open(path)
        expected = info["fingerprint"]
        if corpus.fingerprint != expected:
            raise InputError(path / "corpus.json", "fingerprint", f"expected {expected[:12]}… as recorded in the plan, got {corpus.fingerprint[:12]}… (another corpus)")
        for key in ("n_tokens", "dtype", "eos_id", "vocab_size"):
            if corpus.meta.get(key) != info[key]:
                raise InputError(path / "corpus.json", key, f"expected {quote(info[key])} as recorded in the plan, got {quote(corpus.meta.get(key))}")
        if verify_tokens:
            actual = corpus.content_fingerprint()
            if actual != expected:
                raise InputError(
                    path / "tokens.bin", "fingerprint",
                    f"expected sha256 {expected[:12]}… over tokens.bin and tokenizer.json as recorded in the plan, got {actual[:12]}… "
                    "(the corpus's tokens differ from those the plan was made for)",
                )
            self._cache["corpus"] = corpus
        return corpus
