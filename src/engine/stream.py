"""The injecting data stream: global sequence ``g`` → its tokens, with every plan edit applied.

Sequence ``g`` is, in this order (docs/formats.md, "Token positions"):

1. the base window of base sequence ``b = stream_offset + g`` (``geometry.stream_offset``:
   0 except in continuation sub-plans, which go on where their parent stopped). Epoch
   ``e = b // n_windows`` visits the ``(seq_len + 1)``-token windows of the training region
   ``[0, train_tokens)`` in the order of its own keyed permutation (``engine.permutation``), so ``g`` reads window ``perm_e(b % n_windows)``;
2. every plan edit of ``g``: ``insert`` overwrites ``[offset, offset + n_tokens)`` with
   EOS + payload + EOS (the placement's ``payload_index``: one of its item's payloads), ``remove`` swaps the whole window for reserve window
   ``reserve_seq`` (read from ``[train_tokens, n_tokens)``, which nothing else reads),
   ``noise`` is passed on as a (row, span, seed, std) for the embedding-noise hook
   (``engine.model.embedding_noise``); so is an ``insert`` whose ``noise_std`` is positive
   (noise on the inserted span: a watermark carried by every repetition).

Everything is a function of ``g`` alone, so rank ``r`` of ``W`` reads exactly rows
``[r·b, (r+1)·b)`` (``b = global_batch / W``) of each global batch and the global stream is
the same on 1, 2 or N processes, and after any resume. Edits are found by binary search
over the sorted ``global_seq`` column and applied with flat numpy index arrays: no Python
loop over the plan, the batch or its tokens.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from designkit import plan_types
from designkit.errors import InputError
from designkit.planning.placement import check_placements
from designkit.planning.permutation import BaseOrder, FeistelPermutation

INSERT, REMOVE, NOISE = 0, 1, 2
EDIT_NAMES = plan_types.EDIT_KINDS
WINDOW_BLOCK = 1 << 16  # positions per cached block of the base order (512 KiB)
_CACHED_BLOCKS = 4


@dataclass(frozen=True)
class PlanEdits:
    """The plan's placements as flat arrays sorted by ``global_seq`` (one entry per edit)."""

    global_seq: np.ndarray  # int64
    offset: np.ndarray  # int32
    n_tokens: np.ndarray  # int32
    item_index: np.ndarray  # int32, -1 for none
    payload_index: np.ndarray  # int32: the payload an insert writes (row of payloads.parquet), -1 for none
    edit: np.ndarray  # int8: INSERT, REMOVE, NOISE
    reserve_seq: np.ndarray  # int64, -1 unless remove
    noise_seed: np.ndarray  # int64, -1 unless noise
    noise_std: np.ndarray  # float32, 0 unless the edit carries noise (a noise edit, or a noisy insert)
    item_ids: np.ndarray  # object: item_id of each item_index, for the applied log

    def __len__(self) -> int:
        return len(self.global_seq)

    def span(self, first_seq: int, end_seq: int) -> tuple[int, int]:
        """Edit rows ``[lo, hi)`` of sequences ``[first_seq, end_seq)``."""
        lo, hi = np.searchsorted(self.global_seq, [first_seq, end_seq], side="left")
        return int(lo), int(hi)

    @classmethod
    def empty(cls) -> PlanEdits:
        z = lambda dtype: np.zeros(0, dtype=dtype)  # noqa: E731
        return cls(z(np.int64), z(np.int32), z(np.int32), z(np.int32), z(np.int32), z(np.int8), z(np.int64), z(np.int64), z(np.float32), z(object))

    @classmethod
    def from_plan(cls, plan) -> PlanEdits:
        """Read and check the placements of a ``designkit.planning.planfile.Plan``."""
        frame = plan.placements()
        items = plan.items()
        unknown = sorted(set(frame["edit"].astype(str)) - set(EDIT_NAMES))
        if unknown:
            raise InputError(plan.path / "placements.parquet", "edit", f"expected one of {', '.join(EDIT_NAMES)}, got {unknown[0]!r}")
        edit = frame["edit"].astype(str).map({name: code for code, name in enumerate(EDIT_NAMES)}).to_numpy(np.int8)
        item_index = frame["item_index"].to_numpy(np.int32)
        noise_std = frame["noise_std"].to_numpy(np.float32)
        edits = cls(
            global_seq=frame["global_seq"].to_numpy(np.int64),
            offset=frame["offset"].to_numpy(np.int32),
            n_tokens=frame["n_tokens"].to_numpy(np.int32),
            item_index=item_index,
            payload_index=frame["payload_index"].to_numpy(np.int32),
            edit=edit,
            reserve_seq=frame["reserve_seq"].to_numpy(np.int64),
            noise_seed=frame["noise_seed"].to_numpy(np.int64),
            noise_std=noise_std,
            item_ids=items["item_id"].to_numpy(object),
        )
        # the geometric invariants (sorted, in range, no straddle, no overlap) are the planner's
        problem = check_placements(frame, seq_len=plan.seq_len, n_sequences=plan.n_sequences)
        if problem is not None:
            raise InputError(plan.path / "placements.parquet", None, f"expected valid placements, found that {problem}")
        edits.check(plan.path / "placements.parquet", n_items=len(items), payload_index=plan.payload[1],
                    payload_item=plan.payloads()["item_index"].to_numpy(np.int64))
        return edits

    def check(self, file: Path, *, n_items: int, payload_index: np.ndarray, payload_item: np.ndarray | None = None) -> None:
        """What the stream relies on beyond ``check_placements``: items, payload lengths,
        reserve windows and noise seeds (vectorised; the plan reader checks only hashes)."""
        g = self.global_seq

        def fail(field: str, what: str, where: np.ndarray) -> None:
            row = int(np.flatnonzero(where)[0])
            raise InputError(file, f"row {row}.{field}", f"expected {what}")

        has_item = self.item_index >= 0
        if (self.item_index >= n_items).any():
            fail("item_index", f"an item row in [0, {n_items}) or -1", self.item_index >= n_items)
        ins = self.edit == INSERT
        bad = ins & ((self.n_tokens < 2) | ~has_item)
        if bad.any():
            fail("item_index", "an insertion of an item (with its two EOS wrappers)", bad)
        n_payloads = len(payload_index) - 1
        if payload_item is None:  # one payload per item
            payload_item = np.arange(n_payloads, dtype=np.int64)
        bad = ins & ((self.payload_index < 0) | (self.payload_index >= n_payloads))
        if bad.any():
            fail("payload_index", f"a payload row in [0, {n_payloads}) for an insertion", bad)
        payload = np.clip(self.payload_index, 0, max(n_payloads - 1, 0))
        bad = ins & (payload_item[payload] != self.item_index) if n_payloads else ins
        if bad.any():
            fail("payload_index", "a payload of the edit's own item", bad)
        payload_len = np.diff(payload_index)[payload] if n_payloads else np.zeros(len(g), np.int64)
        bad = ins & (self.n_tokens != payload_len + 2)
        if bad.any():
            fail("n_tokens", "the payload's length + 2 (the EOS wrappers)", bad)
        bad = (self.edit == REMOVE) & (self.reserve_seq < 0)
        if bad.any():
            fail("reserve_seq", "a reserve window index >= 0 for a remove edit", bad)
        bad = (self.edit == NOISE) & (self.noise_seed < 0)
        if bad.any():
            fail("noise_seed", "a seed >= 0 for a noise edit", bad)
        bad = ~np.isfinite(self.noise_std) | (self.noise_std < 0) | ((self.edit == REMOVE) & (self.noise_std != 0))
        if bad.any():
            fail("noise_std", "a finite std >= 0 (0 on a remove edit)", bad)
        bad = (self.noise_std > 0) & (self.noise_seed < 0)
        if bad.any():
            fail("noise_seed", "a seed >= 0 where noise_std is positive", bad)
        # a removed sequence carries no other edit: removal and anything else in one sequence
        rm_seqs = g[self.edit == REMOVE]
        if len(rm_seqs):
            shared = np.isin(g, rm_seqs) & (self.edit != REMOVE)
            if shared.any() or len(np.unique(rm_seqs)) != len(rm_seqs):
                fail("edit", "a removed sequence to carry no other edit", shared if shared.any() else np.r_[False, np.diff(rm_seqs) == 0])


@dataclass
class StepBatch:
    """This rank's rows of one global batch, edits applied."""

    step: int
    first_seq: int  # global sequence of row 0
    tokens: np.ndarray  # int64 (rows, seq_len + 1)
    edit_lo: int  # the applied edits are PlanEdits rows [edit_lo, edit_hi)
    edit_hi: int
    noise_rows: np.ndarray  # int64 rows of `tokens` that get embedding noise
    noise_seeds: np.ndarray  # int64
    noise_stds: np.ndarray  # float32
    noise_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # first input position of each noisy span
    noise_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # its positions (the hook clips to the seq_len inputs)
    fills: PlanEdits | None = None  # the controller fills in force when the batch was built
    fill_lo: int = 0  # the applied fills are fills rows [fill_lo, fill_hi)
    fill_hi: int = 0
    tensor: object = None  # `tokens` as a (pinned) torch tensor, filled by the prefetcher


class InjectingStream:
    """Sequence ``g`` of the run → tokens, as a pure function of (plan, g)."""

    def __init__(
        self,
        tokens: np.ndarray,
        *,
        train_tokens: int,
        seq_len: int,
        global_batch: int,
        n_sequences: int,
        seed: int,
        eos_id: int,
        edits: PlanEdits | None = None,
        payload_tokens: np.ndarray | None = None,
        payload_index: np.ndarray | None = None,
        rank: int = 0,
        world_size: int = 1,
        stream_offset: int = 0,
    ):
        self.tokens = tokens
        self.stream_offset = int(stream_offset)  # a continuation reads the parent's base windows from here on
        self.train_tokens = int(train_tokens)
        self.seq_len = int(seq_len)
        self.window = self.seq_len + 1
        self.global_batch = int(global_batch)
        self.n_sequences = int(n_sequences)
        self.seed = int(seed)
        self.eos_id = int(eos_id)
        self.edits = edits if edits is not None else PlanEdits.empty()
        payload_tokens = payload_tokens if payload_tokens is not None else np.zeros(0, np.int64)
        self.payload_tokens = payload_tokens.view(np.ndarray) if isinstance(payload_tokens, np.memmap) else payload_tokens
        self.payload_index = payload_index if payload_index is not None else np.zeros(1, np.int64)
        self.n_windows = self.train_tokens // self.window
        self.n_reserve_windows = (len(tokens) - self.train_tokens) // self.window
        if self.n_windows < 1:
            raise ValueError(f"the training region ({self.train_tokens} tokens) holds no window of {self.window} tokens")
        if self.global_batch % world_size:
            raise ValueError(f"global_batch {self.global_batch} is not divisible by {world_size} processes")
        self.rank, self.world_size = int(rank), int(world_size)
        self.local_batch = self.global_batch // self.world_size
        self._columns = np.arange(self.window, dtype=np.int64)
        self._order = BaseOrder(self.n_windows, self.seed)  # the planner maps windows to sequences with the same order
        self._blocks: dict[tuple[int, int], np.ndarray] = {}
        self._flat_tokens = tokens.view(np.ndarray) if isinstance(tokens, np.memmap) else tokens  # plain fancy indexing
        removed = self.edits.reserve_seq[self.edits.edit == REMOVE]
        if len(removed) and removed.max() >= self.n_reserve_windows:
            raise ValueError(f"a remove edit names reserve window {removed.max()}, the reserve region holds {self.n_reserve_windows}")
        # injected (insert) tokens before each edit row: O(1) injected-token counts for any range
        inserted = np.where(self.edits.edit == INSERT, self.edits.n_tokens, 0).astype(np.int64)
        self._inserted_cumsum = np.r_[0, np.cumsum(inserted)]
        self.fills = PlanEdits.empty()
        """Controller fills of reserved slots (insertions decided during training, ``engine.control``);
        replaced, never mutated, so a batch built in the prefetch thread sees one consistent set."""

    @classmethod
    def from_plan(cls, plan, *, rank: int = 0, world_size: int = 1, edits: PlanEdits | None = None) -> InjectingStream:
        corpus = plan.corpus(verify_tokens=False)  # train verifies every token once, on rank 0
        payload_tokens, payload_index = plan.payload
        edits = edits if edits is not None else PlanEdits.from_plan(plan)
        info = plan.corpus_info
        try:
            return cls(
                corpus.tokens,
                train_tokens=info.train_tokens,
                seq_len=plan.seq_len,
                global_batch=plan.global_batch,
                n_sequences=plan.n_sequences,
                seed=plan.training.seed,
                eos_id=info.eos_id,
                edits=edits,
                payload_tokens=payload_tokens,
                payload_index=payload_index,
                rank=rank,
                world_size=world_size,
                stream_offset=plan.geometry.stream_offset,
            )
        except ValueError as exc:
            raise InputError(plan.path / "plan.json", None, f"expected a plan the engine can stream ({exc})") from None

    # base order
    def _permutation(self, epoch: int) -> FeistelPermutation:
        return self._order.permutation(epoch)

    def _window_block(self, epoch: int, block: int) -> np.ndarray:
        """Windows of positions ``[block·B, (block+1)·B)`` of an epoch, B = WINDOW_BLOCK.

        One vectorised Feistel evaluation per block amortises numpy's per-call overhead
        (a 16-sequence batch alone costs ~0.5 ms); a few cached blocks keep memory O(1).
        """
        key = (epoch, block)
        if key not in self._blocks:
            lo = block * WINDOW_BLOCK
            positions = np.arange(lo, min(lo + WINDOW_BLOCK, self.n_windows), dtype=np.int64)
            if len(self._blocks) >= _CACHED_BLOCKS:
                self._blocks.pop(next(iter(self._blocks)))
            self._blocks[key] = self._permutation(epoch)(positions)
        return self._blocks[key]

    def windows(self, seqs: np.ndarray) -> np.ndarray:
        """Training-region window index of each global sequence (before edits)."""
        seqs = np.asarray(seqs, dtype=np.int64)
        epoch, position = np.divmod(seqs, self.n_windows)
        block, within = np.divmod(position, WINDOW_BLOCK)
        if len(seqs) and epoch[0] == epoch[-1] and block[0] == block[-1]:  # the usual case: one block
            return self._window_block(int(epoch[0]), int(block[0]))[within]
        out = np.empty_like(seqs)
        for e, b in {(int(e), int(b)) for e, b in zip(epoch, block)}:
            mask = (epoch == e) & (block == b)
            out[mask] = self._window_block(e, b)[within[mask]]
        return out

    def _gather(self, starts: np.ndarray) -> np.ndarray:
        return self._flat_tokens[starts[:, None] + self._columns].astype(np.int64)

    # sequences with edits applied
    def sequences(self, first_seq: int, end_seq: int) -> tuple[np.ndarray, int, int]:
        """Tokens of sequences ``[first_seq, end_seq)`` with their edits, and the edit rows applied."""
        seqs = np.arange(first_seq, end_seq, dtype=np.int64)
        out = self._gather(self.windows(seqs + self.stream_offset) * self.window)
        lo, hi = self.edits.span(first_seq, end_seq)
        if hi > lo:
            self._apply(out, first_seq, lo, hi)
        return out, lo, hi

    def _apply(self, out: np.ndarray, first_seq: int, lo: int, hi: int, edits: PlanEdits | None = None) -> None:
        e = self.edits if edits is None else edits
        rows = e.global_seq[lo:hi] - first_seq
        kind = e.edit[lo:hi]
        removed = kind == REMOVE
        if removed.any():
            out[rows[removed]] = self._gather(self.train_tokens + e.reserve_seq[lo:hi][removed] * self.window)
        inserted = kind == INSERT
        if inserted.any():
            n = e.n_tokens[lo:hi][inserted].astype(np.int64)
            first = np.repeat(np.cumsum(n) - n, n)
            j = np.arange(int(n.sum()), dtype=np.int64) - first  # position inside each insertion
            last = np.repeat(n - 1, n)
            row = np.repeat(rows[inserted], n)
            col = np.repeat(e.offset[lo:hi][inserted].astype(np.int64), n) + j
            # token j-1 of the edit's payload; positions 0 and n-1 are the EOS wrappers
            src = np.repeat(self.payload_index[e.payload_index[lo:hi][inserted]], n) + j - 1
            is_eos = (j == 0) | (j == last)
            values = np.full(len(j), self.eos_id, dtype=np.int64)
            values[~is_eos] = self.payload_tokens[src[~is_eos]]
            out[row, col] = values

    def batch(self, step: int) -> StepBatch:
        """This rank's rows of global batch ``step``."""
        first = step * self.global_batch + self.rank * self.local_batch
        tokens, lo, hi = self.sequences(first, first + self.local_batch)
        fills = self.fills
        fill_lo, fill_hi = fills.span(first, first + self.local_batch)
        if fill_hi > fill_lo:
            self._apply(tokens, first, fill_lo, fill_hi, fills)
        noisy = np.flatnonzero((self.edits.edit[lo:hi] == NOISE) | (self.edits.noise_std[lo:hi] > 0)) + lo
        return StepBatch(
            fills=fills,
            fill_lo=fill_lo,
            fill_hi=fill_hi,
            step=step,
            first_seq=first,
            tokens=tokens,
            edit_lo=lo,
            edit_hi=hi,
            noise_rows=self.edits.global_seq[noisy] - first,
            noise_seeds=self.edits.noise_seed[noisy],
            noise_stds=self.edits.noise_std[noisy],
            noise_offsets=self.edits.offset[noisy].astype(np.int64),
            noise_lengths=self.edits.n_tokens[noisy].astype(np.int64),
        )

    def injected_tokens(self, first_step: int, end_step: int) -> int:
        """Inserted tokens (EOS wrappers included) in global batches ``[first_step, end_step)``, all ranks."""
        lo, hi = self.edits.span(first_step * self.global_batch, end_step * self.global_batch)
        f_lo, f_hi = self.fills.span(first_step * self.global_batch, end_step * self.global_batch)
        return int(self._inserted_cumsum[hi] - self._inserted_cumsum[lo]) + int(self.fills.n_tokens[f_lo:f_hi].sum())


class Prefetcher:
    """Builds the next batches in a background thread while the current one trains.

    Batches are pure functions of the step, so prefetching changes nothing but timing.
    ``prepare`` turns a StepBatch's numpy tokens into (pinned) tensors in the same thread.
    """

    def __init__(self, stream: InjectingStream, steps: range, prepare: Callable[[StepBatch], StepBatch], depth: int = 2,
                 ready: Callable[[int, threading.Event], bool] | None = None):  # fmt: skip
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._steps = steps
        # a controller's gate: a batch is never built past an interval it has not decided yet
        self._ready = ready
        self._thread = threading.Thread(target=self._work, args=(stream, prepare), name="designkit-prefetch", daemon=True)
        self._thread.start()

    def _work(self, stream: InjectingStream, prepare) -> None:
        try:
            for step in self._steps:
                if self._ready is not None and not self._ready(step, self._stop):
                    return
                item = prepare(stream.batch(step))
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            while not self._stop.is_set():
                try:
                    self._queue.put(exc, timeout=0.1)
                    return
                except queue.Full:
                    continue

    def __iter__(self) -> Iterator[StepBatch]:
        for _ in self._steps:
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
