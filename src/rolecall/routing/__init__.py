"""Routing: the only place that decides which provider answers a task.

:mod:`.router` holds :class:`Router` (chains per role, strategies, parameter
merge, the startup credential check); :mod:`._chain` walks a chain and races a
stalled call against the next provider; :mod:`._attempt` is the one attempt loop
(admission, concurrency slot, retries, records) that whole answers and streams
share; :mod:`.retry` the global retry policy as pure functions; :mod:`._outcomes`
turns attempts into events and replies. It sits above ``providers`` and
``health`` and below the recording sinks and front ends.
"""
