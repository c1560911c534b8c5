"""The KServe v2 spec's example exchange, shared by the v2 adapter tests."""

from __future__ import annotations

from typing import Any

from exporter.analysis.protocols.base import (
    AdapterConfig,
    ParsedExchange,
)
from tests.unit.exporter.analysis.protocols.helpers import exchange, parse_strict

CONFIG = AdapterConfig()

# The request of the KServe v2 spec's example, with input1's shape corrected
# to match its data (the spec has shape [3] for one value).
SPEC_REQUEST = {
    "id": "42",
    "inputs": [
        {"name": "input0", "shape": [2, 2], "datatype": "UINT32", "data": [1, 2, 3, 4]},
        {"name": "input1", "shape": [2], "datatype": "BOOL", "data": [True, False]},
    ],
    "outputs": [{"name": "output0"}],
}
SPEC_RESPONSE = {
    "model_name": "mymodel",
    "model_version": "1",
    "id": "42",
    "outputs": [
        {"name": "output0", "shape": [2, 2], "datatype": "FP32", "data": [0.9, 0.1, 0.2, 0.8]}
    ],
}


def v2(request: object, response: object = b"", **kwargs: Any) -> ParsedExchange:
    return parse_strict(
        "v2", exchange(request, response, path="/v2/models/mymodel/infer", **kwargs), CONFIG
    )
