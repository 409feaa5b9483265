"""What changed since a run began, said once when it is resumed.

A resumed run takes the config as it is now (a role given to another provider
applies to the tasks left) but keeps the spec and the review rounds it began with,
so its files stay one piece of work. Either way the user is told: a new provider,
an edited spec file or a ``--review-rounds`` that is not used would otherwise pass
in silence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rolecall.workflow.errors import SpecError
from rolecall.workflow.spec import load_spec

if TYPE_CHECKING:
    from rolecall.config.schema import RolecallConfig
    from rolecall.workflow.state import RunState

__all__ = ["WORKFLOW_ROLES", "resume_notes", "role_chains", "spec_file"]

# The roles the built-in workflow's tasks name.
WORKFLOW_ROLES = ("clarifier", "planner", "coder", "reviewer")


def role_chains(config: RolecallConfig) -> dict[str, list[str]]:
    """Each workflow role's providers in call order, as the config assigns them."""
    return {role: config.chain(role) for role in WORKFLOW_ROLES}


def spec_file(spec_path: str | None) -> str | None:
    """The spec file as an absolute path, so a resume from another directory finds it."""
    return str(Path(spec_path).absolute()) if spec_path else None


def resume_notes(
    state: RunState, chains: Mapping[str, Sequence[str]], review_rounds: int | None
) -> list[str]:
    """One line per thing that differs from when run ``state`` began.

    ``chains``: the roles' providers now; ``review_rounds``: the value given for this
    resume, or None when none was given.
    """
    notes = [
        line
        for line in (
            _roles_note(state, chains),
            _spec_note(state),
            _review_rounds_note(state, review_rounds),
        )
        if line
    ]
    return notes


def _roles_note(state: RunState, chains: Mapping[str, Sequence[str]]) -> str | None:
    began = state.options.get("roles")
    if not isinstance(began, dict):  # saved by a version that did not keep them
        return None
    moved = [
        f"{role} now goes to {_chain(now)} (was {_chain(began.get(role))})"
        for role, now in chains.items()
        if list(now) != list(began.get(role) or [])
    ]
    if not moved:
        return None
    return f"run {state.run_id}: the config changed since the run began: " + ", ".join(moved)


def _chain(providers: Any) -> str:
    return " -> ".join(map(str, providers)) if providers else "no provider"


def _spec_note(state: RunState) -> str | None:
    shown = state.spec.path
    path = state.options.get("spec_file") or shown
    if not isinstance(path, str):
        return None
    try:
        if not Path(path).is_file():
            return None  # moved or deleted: nothing on disk is being passed over
        changed = load_spec(path).text != state.spec.text
    except (SpecError, OSError):
        changed = True  # edited into a spec that no longer loads
    if not changed:
        return None
    return (
        f"spec {shown} changed since run {state.run_id} began; the run goes on with the "
        f"spec saved with it: to build the edited spec, start a new run "
        f"(rolecall run {shown} -o another directory, or --force to rewrite {state.output_dir})"
    )


def _review_rounds_note(state: RunState, given: int | None) -> str | None:
    kept = state.options.get("review_rounds")
    if given is None or kept is None or given == kept:
        return None
    return (
        f"--review-rounds {given} is not used: run {state.run_id} keeps the {kept} review "
        "round(s) it began with; start a new run for another number"
    )
