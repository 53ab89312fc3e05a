"""The endpoint's routes, declared once. The dispatcher, the 405 answers, the OpenAPI paths and the
SAM template's API events are all read from `ROUTES`, or for a text-generation bundle from
`GENERATION_ROUTES` (`routes_for` picks by the manifest's task)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.manifest import Task


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """OpenAPI / API Gateway syntax: `/v2/models/{name}/infer`."""
    endpoint: str
    """The name of the method of `handlers.app.Endpoint` that answers it."""
    summary: str

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{(\w+)}", self.path))

    @property
    def documented(self) -> bool:
        return not self.path.startswith("/docs/")


ROUTES: tuple[Route, ...] = (
    Route("POST", "/predict", "predict", "Run the model on JSON arrays (or images or text, as the bundle takes)"),
    Route("GET", "/health", "health", "Liveness, and whether the model loaded"),
    Route("GET", "/v2", "server_metadata", "Server metadata"),
    Route("GET", "/v2/health/live", "live", "Server liveness"),
    Route("GET", "/v2/health/ready", "ready", "Server readiness"),
    Route("GET", "/v2/models/{name}", "model_metadata", "Model metadata"),
    Route("GET", "/v2/models/{name}/ready", "model_ready", "Model readiness"),
    Route("POST", "/v2/models/{name}/infer", "infer", "Open Inference Protocol (KServe V2) inference"),
    Route("GET", "/v2/models/{name}/versions/{version}", "model_metadata", "Model metadata"),
    Route("GET", "/v2/models/{name}/versions/{version}/ready", "model_ready", "Model readiness"),
    Route(
        "POST", "/v2/models/{name}/versions/{version}/infer", "infer", "Open Inference Protocol (KServe V2) inference"
    ),
    Route("GET", "/openapi.json", "openapi", "This document"),
    Route("GET", "/docs", "docs", "Swagger UI"),
    Route("GET", "/docs/{asset}", "docs_asset", "Swagger UI assets"),
)


GENERATION_ROUTES: tuple[Route, ...] = (
    Route(
        "POST", "/v1/chat/completions", "chat_completions", "OpenAI-compatible chat completion (stream: true for SSE)"
    ),
    Route("POST", "/v1/completions", "completions", "OpenAI-compatible text completion (stream: true for SSE)"),
    Route("GET", "/v1/models", "list_models", "The model this endpoint serves, as OpenAI lists models"),
    Route("GET", "/v1/models/{model}", "retrieve_model", "One model, as OpenAI describes it"),
    Route("GET", "/health", "health", "Liveness, and whether the model loaded"),
)
"""A language model's routes: the OpenAI API people already call, and liveness."""


def routes_for(task: Task) -> tuple[Route, ...]:
    """The route table of a bundle whose manifest names `task`."""
    return GENERATION_ROUTES if task is Task.TEXT_GENERATION else ROUTES


@dataclass(frozen=True)
class Match:
    route: Route
    params: dict[str, str]


class RouteTable:
    """Exact paths by dictionary lookup; parameterised ones by one compiled pattern each."""

    def __init__(self, routes: tuple[Route, ...] = ROUTES) -> None:
        self.routes = routes
        self._exact: dict[tuple[str, str], Route] = {}
        self._patterns: list[tuple[re.Pattern[str], Route]] = []
        for route in routes:
            if route.params:
                pattern = re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", route.path)
                self._patterns.append((re.compile(pattern + "/?"), route))
            else:
                self._exact[(route.method, route.path)] = route
                self._exact.setdefault((route.method, route.path + "/"), route)

    def match(self, method: str, path: str) -> Match | None:
        route = self._exact.get((method, path))
        if route is not None:
            return Match(route, {})
        for pattern, candidate in self._patterns:
            if candidate.method == method and (found := pattern.fullmatch(path)):
                return Match(candidate, found.groupdict())
        return None

    def allowed(self, path: str) -> tuple[str, ...]:
        """The methods `path` takes, for a 405; empty when no route has this path (a 404)."""
        methods = {m for (m, p) in self._exact if p == path}
        methods |= {route.method for pattern, route in self._patterns if pattern.fullmatch(path)}
        return tuple(sorted(methods))

    def describe(self) -> str:
        return ", ".join(f"{r.method} {r.path}" for r in self.routes if r.documented)
