"""A model-on-GPU profile: KV geometry, scheduler limits, step time and cold start.

Profiles are small YAML files shipped in ``simulator/profiles`` (one per model x GPU),
each naming the measured figures it was fitted to. The step-time model is linear in
what a vLLM step does: read the weights once (``base_s``), compute the batched tokens,
read every scheduled sequence's KV, and pay a per-sequence CPU cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

GIB = 1024**3


class ProfileError(ValueError):
    """A profile file is missing, unreadable or has a bad field; the message names it."""


@dataclass(frozen=True)
class StepTime:
    base_s: float
    per_token_s: float
    per_kv_token_s: float
    per_seq_s: float

    def seconds(self, tokens: int, kv_tokens: int, seqs: int) -> float:
        return self.base_s + self.per_token_s * tokens + self.per_kv_token_s * kv_tokens + self.per_seq_s * seqs


@dataclass(frozen=True)
class ColdStart:
    image_pull_s: float
    weight_load_s: float
    warmup_s: float

    @property
    def total_s(self) -> float:
        return self.image_pull_s + self.weight_load_s + self.warmup_s


@dataclass(frozen=True)
class Profile:
    name: str
    model: str
    served_model_name: str
    gpu: str
    gpu_memory_gib: float
    weights_gib: float
    activation_gib: float
    kv_bytes_per_token: int
    gpu_memory_utilization: float
    block_size: int
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    step: StepTime
    cold_start: ColdStart
    gpus: int
    measured: dict[str, Any]

    @property
    def num_gpu_blocks(self) -> int:
        """vLLM's count: (utilization x memory - weights - activations) / bytes per block."""
        free = (self.gpu_memory_utilization * self.gpu_memory_gib - self.weights_gib - self.activation_gib) * GIB
        blocks = math.floor(free / (self.kv_bytes_per_token * self.block_size))
        if blocks < 2:
            raise ProfileError(f"profile {self.name}: no memory left for the KV cache")
        return blocks

    @property
    def kv_cache_size_tokens(self) -> int:
        return self.num_gpu_blocks * self.block_size


_FLOATS = ("gpu_memory_gib", "weights_gib", "activation_gib", "gpu_memory_utilization")
_INTS = ("kv_bytes_per_token", "block_size", "max_model_len", "max_num_seqs", "max_num_batched_tokens", "gpus")


def from_mapping(name: str, data: dict[str, Any]) -> Profile:
    """A profile from a parsed YAML mapping; a missing or non-positive field is an error."""
    try:
        values: dict[str, Any] = {k: float(data[k]) for k in _FLOATS}
        values.update({k: int(data[k]) for k in _INTS})
        step = StepTime(**{k: float(v) for k, v in data["step"].items()})
        cold = ColdStart(**{k: float(v) for k, v in data["cold_start"].items()})
        texts = {k: str(data[k]) for k in ("model", "served_model_name", "gpu")}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProfileError(f"profile {name}: bad or missing field (step, cold_start need their keys): {exc!r}") from exc
    bad = [k for k, v in values.items() if v <= 0]
    if bad or min(step.base_s, cold.total_s) <= 0 or values["gpu_memory_utilization"] > 1:
        raise ProfileError(f"profile {name}: fields must be positive (and utilization <= 1): {bad}")
    return Profile(name=name, model=texts["model"], served_model_name=texts["served_model_name"], gpu=texts["gpu"],
                   gpu_memory_gib=values["gpu_memory_gib"], weights_gib=values["weights_gib"],
                   activation_gib=values["activation_gib"], kv_bytes_per_token=values["kv_bytes_per_token"],
                   gpu_memory_utilization=values["gpu_memory_utilization"], block_size=values["block_size"],
                   max_model_len=values["max_model_len"], max_num_seqs=values["max_num_seqs"],
                   max_num_batched_tokens=values["max_num_batched_tokens"], step=step, cold_start=cold,
                   gpus=values["gpus"], measured=dict(data.get("measured") or {}))


def available() -> list[str]:
    """Names of the shipped profiles."""
    folder = resources.files("simulator").joinpath("profiles")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load(name_or_path: str) -> Profile:
    """A shipped profile by name (``llama-3.1-8b-h100``) or a YAML file by path."""
    path = Path(name_or_path)
    try:
        if path.suffix in (".yaml", ".yml") and path.exists():
            text, name = path.read_text(encoding="utf-8"), path.stem
        else:
            text = resources.files("simulator").joinpath("profiles", f"{name_or_path}.yaml").read_text("utf-8")
            name = name_or_path
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"cannot read profile {name_or_path!r} (shipped: {', '.join(available())}): {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"profile {name_or_path}: top level must be a mapping")
    return from_mapping(name, data)
