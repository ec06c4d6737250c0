"""The twin over HTTP (aiohttp, imported nowhere else): a JSON API whose commands go
through `twin.control`, a live Server-Sent-Events stream with back-pressure, Prometheus
``/metrics``, an OpenAPI document generated from the routes, commands and register
map, and the front panel page shipped as static files in this package."""

from twin.http.app import ROUTES, build_app
from twin.http.config import (
    HttpConfig,
    add_arguments,
    config_from_args,
    exposure_warning,
    parse_listen,
)
from twin.http.openapi import Route, openapi_document
from twin.http.server import HttpServer, HttpTwin, http_part
from twin.http.target import HttpTarget, MeterView

__all__ = [
    "ROUTES",
    "HttpConfig",
    "HttpServer",
    "HttpTarget",
    "HttpTwin",
    "MeterView",
    "Route",
    "add_arguments",
    "build_app",
    "config_from_args",
    "exposure_warning",
    "http_part",
    "openapi_document",
    "parse_listen",
]
