"""Least-likely canaries from a trained model (``designkit canaries --from-checkpoint``).

Panda et al. (2025, "Privacy auditing of large language models") find canaries that the
model finds unlikely easier to audit. A canary here is built one token at a time: after an
EOS, each next token is drawn uniformly from the ``pool`` tokens the checkpoint assigns the
lowest probability given the canary so far (special tokens and ids the tokenizer cannot
emit excluded); ``pool`` > 1 makes the canaries of one run distinct. The planner never
loads a model: this writes an items file (``{"id", "tokens", "type": "least_likely",
"logprob_per_token"}`` per line) that the torch-free ``canary`` kind reads
(``items.generate.least_likely`` or the experiment's ``items``).

Weights are read with ``engine.weights`` (``torch.load(weights_only=True)``), never with
LitGPT's loader.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from litgpt.model import GPT

from designkit import atomic_files
from designkit.data.tokenizer import TextTokenizer
from designkit.errors import InputError
from designkit.runfile import MODEL_CONFIG_FILE, MODEL_FILE
from engine import weights
from engine.model import checkpoint_model_config


def least_likely_canaries(checkpoint_dir: str | Path, n: int, lengths: list[int], seed: int, pool: int = 16) -> list[dict]:
    """``n`` canaries per length in ``lengths``, as items-file records."""
    directory = Path(checkpoint_dir)
    config = checkpoint_model_config(directory)
    state = weights.read_model_weights(directory / MODEL_FILE, config, directory / MODEL_CONFIG_FILE)
    tokenizer = TextTokenizer(directory)
    if max(lengths) + 1 > config.block_size:
        raise InputError(None, "--length", f"expected at most {config.block_size - 1} tokens (the model's block_size - 1), got {max(lengths)}")
    model = GPT(config)
    model.load_state_dict(state)
    model.eval()
    allowed = torch.zeros(config.padded_vocab_size, dtype=torch.bool)
    allowed[: tokenizer.vocab_size] = True
    allowed[tokenizer.special_ids] = False
    if pool > int(allowed.sum()):
        raise InputError(None, "--pool", f"expected at most {int(allowed.sum())} (the tokens a canary may use), got {pool}")
    generator = torch.Generator().manual_seed(seed)
    records = []
    for length in lengths:
        tokens = torch.full((n, 1), tokenizer.eos_id, dtype=torch.long)
        logprobs = torch.zeros(n)
        with torch.no_grad():
            for _ in range(length):
                logits = model(tokens)[:, -1, :].float()
                logp = torch.log_softmax(logits, dim=-1).masked_fill(~allowed, float("inf"))
                lowest = torch.topk(logp, pool, dim=-1, largest=False).indices  # the pool least likely next tokens
                pick = lowest[torch.arange(n), torch.randint(pool, (n,), generator=generator)]
                logprobs += logp[torch.arange(n), pick]
                tokens = torch.cat([tokens, pick[:, None]], dim=1)
        for i, row in enumerate(tokens[:, 1:].tolist()):
            records.append({"id": f"ll-{length}-{i:06d}", "type": "least_likely", "tokens": row,
                            "logprob_per_token": round(float(logprobs[i]) / length, 6)})
    return records


def write_canaries(checkpoint_dir: str | Path, out: str | Path, n: int, lengths: list[int], seed: int, pool: int) -> int:
    """Write the items file ``out`` (refusing to replace an existing file); the number of canaries."""
    out = Path(out)
    if out.exists():
        raise InputError(out, None, "expected a new file, it exists (designkit never replaces a file it did not make)")
    if not (Path(checkpoint_dir) / MODEL_FILE).is_file():
        raise InputError(checkpoint_dir, None, f"expected a LitGPT checkpoint directory holding {MODEL_FILE}")
    records = least_likely_canaries(checkpoint_dir, n, lengths, seed, pool)
    atomic_files.write_text(out, "".join(json.dumps(r) + "\n" for r in records))
    return len(records)

