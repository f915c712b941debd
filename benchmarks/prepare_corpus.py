"""Importing an already-tokenized corpus vs tokenizing the same amount of text.

    python benchmarks/prepare_corpus.py [--tokens 1e9] [--workdir DIR] [--keep]

(a) import: ``designkit prepare-corpus tokens.bin --dtype uint16 --tokenizer DIR`` on a
    synthetic uint16 memmap (random ids, one EOS every ~1000 tokens, nanoGPT's layout),
    run as a child process that reports its own peak RSS (``VmHWM``, Linux);
(b) tokenize: ``prepare_corpus`` on text (the built-in stdlib docstrings, about 2 MB) with
    the same tokenizer already trained, timed in this process; its tokens/s is
    extrapolated to the size of (a), since tokenizing scales linearly with the text.

Prints tokens/s of both, the speed-up (target >= 10x) and the import's peak memory. The
synthetic file was just written, so (a) reads it from the page cache: on a cold disk the
import runs at the disk's read speed instead. Needs 4 bytes of disk per token (input and
output, uint16), deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def write_synthetic_tokens(path: Path, n_tokens: int, vocab: int, eos_id: int, seed: int = 0) -> None:
    """``n_tokens`` uint16 ids in [0, vocab) with EOS every ~1000 tokens, written in 64M-token chunks."""
    rng = np.random.default_rng(seed)
    chunk = 1 << 26
    with path.open("wb") as fh:
        for start in range(0, n_tokens, chunk):
            size = min(chunk, n_tokens - start)
            ids = rng.integers(0, vocab, size=size, dtype=np.uint16)
            ids[ids == eos_id] = eos_id + 1 if eos_id + 1 < vocab else eos_id - 1
            ids[rng.integers(0, size, size=max(1, size // 1000))] = eos_id
            ids.tofile(fh)


_CHILD = """
import sys
from designkit.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as fh:  # VmHWM: this process's own peak RSS (ru_maxrss inherits the parent's)
    peak = next(line for line in fh if line.startswith("VmHWM:"))
print("PEAK_RSS_KB", peak.split()[1], file=sys.stderr)
sys.exit(code)
"""


def import_in_child(source: Path, out: Path, tokenizer: Path) -> tuple[float, int]:
    """Run the CLI import as a child process; (wall seconds, its peak RSS in bytes)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-c", _CHILD, "prepare-corpus", str(source), "--out", str(out),
               "--tokenizer", str(tokenizer), "--dtype", "uint16", "--force"]  # fmt: skip
    t0 = time.perf_counter()
    child = subprocess.run(command, env=env, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if child.returncode != 0:
        raise SystemExit(f"import failed with exit code {child.returncode}: {child.stderr[-2000:]}")
    peak_kb = int(child.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    return seconds, peak_kb * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=float, default=1e9, help="tokens in the synthetic memmap (default 1e9: 2 GB)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the synthetic memmap and the imported corpus")
    args = parser.parse_args(argv)
    n_tokens = int(args.tokens)

    from designkit.data.corpus import prepare_corpus
    from designkit.data.stdlib_docs import write_jsonl

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="designkit-prepare-bench-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        text = write_jsonl(workdir / "stdlib.jsonl")
        tok = prepare_corpus(text, workdir / "tokenizer-corpus", train_vocab=4096, show_progress=False)  # trains the BPE once
        t0 = time.perf_counter()
        tokenized = prepare_corpus(text, workdir / "tokenized", tokenizer_dir=tok.path, show_progress=False, force=True)
        text_seconds = time.perf_counter() - t0
        text_rate = tokenized.n_tokens / text_seconds
        text_mb = text.stat().st_size / 1e6
        print(f"(b) tokenizing {text_mb:.1f} MB of text: {tokenized.n_tokens:,} tokens in {text_seconds:.2f} s = {text_rate:,.0f} tokens/s "
              f"(BPE 4096, {os.cpu_count()} cores)", flush=True)  # fmt: skip

        source = workdir / "train.bin"
        t0 = time.perf_counter()
        write_synthetic_tokens(source, n_tokens, tok.vocab_size, tok.eos_id)
        print(f"synthetic uint16 memmap: {n_tokens:,} tokens ({source.stat().st_size / 1e9:.2f} GB) written in {time.perf_counter() - t0:.1f} s", flush=True)
        seconds, peak = import_in_child(source, workdir / "imported", tok.path)
        import_rate = n_tokens / seconds
        print(f"(a) importing it with prepare-corpus: {seconds:.1f} s = {import_rate:,.0f} tokens/s, peak RSS {peak / 2**20:,.0f} MiB "
              f"(the whole process)", flush=True)  # fmt: skip
        print()
        print(f"{'':34s}{'tokens/s':>16s}{'time for ' + f'{n_tokens:.0e}':>18s}")
        print(f"{'(a) import uint16 memmap':34s}{import_rate:16,.0f}{seconds:16.1f} s")
        print(f"{'(b) tokenize text (extrapolated)':34s}{text_rate:16,.0f}{n_tokens / text_rate:16.1f} s")
        print(f"speed-up a/b = {import_rate / text_rate:,.1f}x (target >= 10x); import peak RSS {peak / 2**20:,.0f} MiB "
              f"for a {source.stat().st_size / 2**20:,.0f} MiB input (bounded by one {2 * (1 << 24) / 2**20:.0f} MiB chunk + interpreter)")  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
