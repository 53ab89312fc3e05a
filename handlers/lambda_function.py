"""The Lambda entry point, `handlers.lambda_function.lambda_handler` (handlers.contract.HANDLER).

The model loads at import, during Lambda's init phase, with the settings the function's environment
holds (handlers.contract.RuntimeSettings). Under SnapStart that init runs once per published version;
the hooks registered here warm the model up before the snapshot and reseed after each restore.
A text-generation bundle gets its own handler (handlers.generation_app): what its function runs behind an
HTTP API, and under `sam local`, where no streaming runtime loop is started.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from handlers import snapstart
from handlers.app import load, serve
from handlers.contract import RuntimeSettings
from handlers.manifest import Task, bundle_task

settings = RuntimeSettings.from_env(os.environ)
lambda_handler: Callable[[dict[str, Any], Any], Any]
if bundle_task(settings.model_dir) is Task.TEXT_GENERATION:
    from handlers.generation_app import make_generation_handler

    lambda_handler = make_generation_handler(settings)
else:
    service, load_ms = load(settings)
    hooks = snapstart.register(service, settings.model_dir)
    lambda_handler = serve(service, settings, load_ms)
