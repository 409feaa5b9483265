"""Recording: where events go once the router has emitted them.

:mod:`.recorder` batches events off the request path into the JSONL run log
(:mod:`.runlog`, with :mod:`.runwriter` telling live runs from abandoned ones) and
the metrics store (:mod:`.store`, SQLite or PostgreSQL); :mod:`.telemetry` turns
them into OpenTelemetry spans and metrics; :mod:`.sinks` builds the set a front
end uses. Nothing here decides routing.
"""
