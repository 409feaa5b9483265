"""The import path the examples show; the recorder lives in :mod:`rolecall.recording.recorder`."""

from rolecall.recording.recorder import Recorder

__all__ = ["Recorder"]
