"""First-run setup: what this machine offers and the config ``rolecall init`` writes.

:mod:`.discover` finds API keys in the environment, OpenAI-compatible servers on
loopback and the embedded model; :mod:`.proposal` assigns roles from what was
found (the reviewer on another vendor than the coder where possible).
"""
