"""OpenAI-compatible request parsing and response shapes (completions, chat completions, SSE chunks).

No tokenizer ships with the simulator: a prompt given as token ids counts exactly, text
counts as one token per four characters (the usual English estimate). The model
generates ``max_tokens`` tokens (as with ``ignore_eos``), so load generators control
output lengths exactly.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_TOKENS = 128
MAX_BODY_TOKENS = 1_000_000


class BadRequest(ValueError):
    """The request body is not a valid completion request; the message says why (HTTP 400)."""


@dataclass(frozen=True)
class Completion:
    model: str
    prompt_tokens: int
    max_tokens: int
    stream: bool
    chat: bool
    include_usage: bool


def _text_tokens(text: str) -> int:
    return max(1, round(len(text) / 4))


def _prompt_tokens(prompt: Any) -> int:
    if isinstance(prompt, str):
        return _text_tokens(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    if isinstance(prompt, list) and len(prompt) == 1:
        return _prompt_tokens(prompt[0])
    raise BadRequest("prompt must be a string, a list of token ids, or a list with one of those")


def _chat_tokens(messages: Any) -> int:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    total = 0
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise BadRequest("each message needs a string content")
        total += _text_tokens(m["content"]) + 4  # role and separators of the chat template
    return total


def parse(body: Any, *, chat: bool, served_model: str, max_model_len: int) -> Completion:
    """A validated completion request; unknown models and over-long prompts are errors."""
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    model = body.get("model", served_model)
    if model != served_model:
        raise BadRequest(f"model {model!r} does not exist; this server serves {served_model!r}")
    prompt = _chat_tokens(body.get("messages")) if chat else _prompt_tokens(body.get("prompt"))
    key = "max_completion_tokens" if chat and "max_completion_tokens" in body else "max_tokens"
    max_tokens = body.get(key)
    max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadRequest(f"{key} must be a positive integer")
    if prompt + max_tokens > min(max_model_len, MAX_BODY_TOKENS):
        raise BadRequest(f"prompt ({prompt}) + {key} ({max_tokens}) exceeds the model's {max_model_len} tokens")
    options = body.get("stream_options") or {}
    return Completion(model, prompt, max_tokens, bool(body.get("stream")), chat,
                      bool(isinstance(options, dict) and options.get("include_usage")))


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chunk(c: Completion, request_id: str, text: str, finish_reason: str | None) -> str:
    """One SSE event with a streamed delta."""
    if c.chat:
        choice: dict[str, Any] = {"index": 0, "delta": {"content": text} if text else {},
                                  "finish_reason": finish_reason}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish_reason}
        obj = "text_completion"
    payload: dict[str, Any] = {"id": request_id, "object": obj, "created": int(time.time()), "model": c.model,
                               "choices": [choice]}
    return f"data: {json.dumps(payload)}\n\n"


def usage_chunk(c: Completion, request_id: str, completion_tokens: int) -> str:
    payload: dict[str, Any] = {"id": request_id, "object": "chat.completion.chunk" if c.chat else "text_completion",
               "created": int(time.time()), "model": c.model, "choices": [],
               "usage": usage(c.prompt_tokens, completion_tokens)}
    return f"data: {json.dumps(payload)}\n\n"


def full(c: Completion, request_id: str, text: str, finish_reason: str, completion_tokens: int) -> dict[str, Any]:
    """The non-streamed response body."""
    if c.chat:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": finish_reason}
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish_reason}
    return {"id": request_id, "object": "chat.completion" if c.chat else "text_completion",
            "created": int(time.time()), "model": c.model, "choices": [choice],
            "usage": usage(c.prompt_tokens, completion_tokens)}


def models(served_model: str, max_model_len: int) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": served_model, "object": "model", "created": int(time.time()),
                                        "owned_by": "vllm", "root": served_model, "max_model_len": max_model_len}]}
