"""The Lambda entry point, `handlers.lambda_function.lambda_handler` (handlers.contract.HANDLER).

The model loads at import, during Lambda's init phase, with the settings the function's environment
holds (handlers.contract.RuntimeSettings).
"""

from __future__ import annotations

import os

from handlers.app import make_handler
from handlers.contract import RuntimeSettings

lambda_handler = make_handler(RuntimeSettings.from_env(os.environ))
