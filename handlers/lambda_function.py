"""The Lambda entry point, `handlers.lambda_function.lambda_handler` (handlers.contract.HANDLER).

The model loads at import, during Lambda's init phase, with the settings the function's environment
holds (handlers.contract.RuntimeSettings). Under SnapStart that init runs once per published version;
the hooks registered here warm the model up before the snapshot and reseed after each restore.
"""

from __future__ import annotations

import os

from handlers import snapstart
from handlers.app import load, serve
from handlers.contract import RuntimeSettings

settings = RuntimeSettings.from_env(os.environ)
service, load_ms = load(settings)
hooks = snapstart.register(service, settings.model_dir)
lambda_handler = serve(service, settings, load_ms)
