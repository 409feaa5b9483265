"""Fake provider servers: OpenAI, Anthropic, Gemini and Azure OpenAI on 127.0.0.1, with faults.

They speak each vendor's real wire format (bodies, headers, server-sent event
streams, error shapes), so the adapters, the router, the gateway and the
workflow can be tested offline, and users can rehearse failures with
``rolecall sim``::

    from rolecall.sim import SimServer, Fault

    with SimServer("anthropic") as server:
        server.script(Fault("overloaded"), Fault("rate_limit", retry_after=2))
        ...  # point a client at server.base_url with api key "test-key"
        assert server.calls == 3

Control over HTTP (for another process): ``POST /_sim/script`` with a JSON list
of faults (kind names or objects with Fault's fields), ``POST /_sim/faults``
(sticky faults), ``POST /_sim/clear``, ``POST /_sim/reset``, ``GET /_sim/stats``.
"""

from __future__ import annotations

from rolecall.sim.faults import FAULT_KINDS, Fault, parse_fault
from rolecall.sim.server import Protocol, RecordedRequest, Responder, SimServer, request_latency

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "Protocol",
    "RecordedRequest",
    "Responder",
    "SimServer",
    "parse_fault",
    "request_latency",
]
