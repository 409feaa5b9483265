#!/usr/bin/env bash
# A separate environment holding LiteLLM for side-by-side benchmarks only.
# Never import LiteLLM from src/ or tests. The version is pinned exactly;
# 1.82.7 and 1.82.8 were compromised releases and must never be installed.
set -euo pipefail
cd "$(dirname "$0")"
LITELLM_VERSION=1.81.16
ENV_DIR=.venv-litellm
if [ ! -x "$ENV_DIR/bin/python" ]; then
    python3 -m venv "$ENV_DIR"
    "$ENV_DIR/bin/pip" install -q --upgrade pip
fi
"$ENV_DIR/bin/pip" install -q "litellm[proxy]==${LITELLM_VERSION}" httpx
"$ENV_DIR/bin/pip" install -q -e ..
echo "$PWD/$ENV_DIR/bin/python"
