"""Engine: Fabric training loop on litgpt.model.GPT and batched scoring of probes (torch, lightning, litgpt)."""
