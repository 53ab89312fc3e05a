"""Sample requests of a text-generation bundle, for its events/ folder (`sam local invoke -e`)."""

from __future__ import annotations

import json

from handlers.manifest import Manifest


def sample_requests(manifest: Manifest) -> dict[str, tuple[str, str, str | None]]:
    """name -> (method, path, JSON body): the chat and text completions, streamed and not, and the model list."""
    chat = {"model": manifest.name, "messages": [{"role": "user", "content": "What is a hacker?"}], "max_tokens": 32}
    text = {"model": manifest.name, "prompt": "A hacker is", "max_tokens": 32, "temperature": 0}
    requests: dict[str, tuple[str, str, str | None]] = {
        "chat": ("POST", "/v1/chat/completions", json.dumps(chat)),
        "chat-stream": ("POST", "/v1/chat/completions", json.dumps(chat | {"stream": True})),
        "completion": ("POST", "/v1/completions", json.dumps(text)),
        "models": ("GET", "/v1/models", None),
        "health": ("GET", "/health", None),
    }
    if manifest.generation is not None and not manifest.generation.chat_template:
        del requests["chat"], requests["chat-stream"]
    return requests
