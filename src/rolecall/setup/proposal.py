"""Turn what :mod:`rolecall.setup.discover` found into roles and a commented rolecall.yaml.

The rules, in the order they are applied:

- planner: the strongest model found (``CATALOG`` ranks them);
- coder: the strongest model of a second vendor when there is one, so planning
  and coding draw on separate rate limits;
- reviewer: the strongest model of a vendor other than the coder's, one not
  used yet when possible, so review is a second opinion;
- clarifier: the cheapest capable model;
- every role falls back to other vendors, then to the default provider (the
  strongest model), then to local models (a loopback server, then the embedded
  model), so a run can finish with no network at all.

With no key, every role runs on the best local model.

Cloud credentials (:mod:`rolecall.setup.clouds`) join the candidates when their
type can run here; otherwise (the type is not registered, its extra is not
installed, or a setting is left to fill in) the entry is written commented out,
with a note saying what it needs.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass

from rolecall._text import visible
from rolecall.config.registry import provider_types
from rolecall.config.schema import BUILTIN_ROLES
from rolecall.setup.clouds import PLACEHOLDER, CloudAccount
from rolecall.setup.discover import Discovery

__all__ = [
    "CATALOG",
    "Candidate",
    "Proposal",
    "ProviderEntry",
    "RoleAssignment",
    "propose",
    "render_yaml",
]

# vendor -> models as (provider id, model, strength 0-100, relative USD per Mtok out).
# Strength orders the models for planning and review; cost picks the clarifier.
CATALOG: dict[str, tuple[tuple[str, str, int, float], ...]] = {
    "anthropic": (
        ("claude", "claude-sonnet-4-5", 100, 15.0),
        ("claude-haiku", "claude-haiku-4-5", 70, 5.0),
    ),
    "openai": (("gpt", "gpt-4.1", 95, 8.0), ("gpt-mini", "gpt-4.1-mini", 65, 1.6)),
    "google": (
        ("gemini", "gemini-2.5-pro", 95, 10.0),
        ("gemini-flash", "gemini-2.5-flash", 70, 2.5),
    ),
    "openrouter": (
        ("openrouter", "openai/gpt-4.1", 90, 8.0),
        ("openrouter-mini", "openai/gpt-4.1-mini", 60, 1.6),
    ),
    "deepseek": (("deepseek", "deepseek-chat", 85, 1.1),),
    "mistral": (
        ("mistral", "mistral-large-latest", 80, 6.0),
        ("mistral-small", "mistral-small-latest", 55, 0.3),
    ),
    "groq": (
        ("groq", "llama-3.3-70b-versatile", 70, 0.79),
        ("groq-small", "llama-3.1-8b-instant", 40, 0.08),
    ),
}
# cloud provider type -> (strength, relative USD per Mtok out) of the model it proposes.
CLOUD_RANK: dict[str, tuple[int, float]] = {
    "azure-openai": (80, 8.0),  # a deployment of the user's choosing
    "vertex": (70, 2.5),  # gemini-2.5-flash
    "bedrock": (60, 4.0),  # claude-3-5-haiku
}
CAPABLE = 50  # the least strength trusted with clarifying questions
FRONTIER = 85  # the least strength trusted with the code when the planner's model could write it
MAX_REMOTE_FALLBACKS = 2


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    vendor: str
    model: str | None  # None: the embedded model's default
    strength: int
    cost: float
    type: str
    env_var: str | None = None
    base_url: str | None = None
    note: str = ""
    fields: tuple[tuple[str, str], ...] = ()  # the entry's keys after type (cloud entries)
    needs: str = ""  # why it is written commented out, and what to do

    @property
    def offered(self) -> bool:
        """Written commented out: the user must act before it can be used."""
        return bool(self.needs)


@dataclass(frozen=True, slots=True)
class ProviderEntry:
    candidate: Candidate
    comment: str


@dataclass(frozen=True, slots=True)
class RoleAssignment:
    role: str
    provider: str
    model: str
    fallback: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "role": self.role,
            "provider": self.provider,
            "model": self.model,
            "fallback": list(self.fallback),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Proposal:
    providers: tuple[ProviderEntry, ...]
    roles: tuple[RoleAssignment, ...]
    default_provider: str
    notes: tuple[str, ...]

    def role(self, name: str) -> RoleAssignment:
        return next(r for r in self.roles if r.role == name)


def candidates(found: Discovery) -> tuple[list[Candidate], list[Candidate]]:
    """(remote, local) candidates; remote strongest first, local best first."""
    remote: list[Candidate] = []
    for key in found.keys:
        for rank, (provider_id, model, strength, cost) in enumerate(CATALOG[key.vendor]):
            remote.append(
                Candidate(
                    provider_id,
                    key.vendor,
                    model,
                    strength,
                    cost,
                    key.type,
                    env_var=key.env_var,
                    base_url=key.base_url,
                    note=f"{key.vendor}'s {'flagship' if rank == 0 else 'fast, cheaper'} model",
                )
            )
    remote.extend(c for c in map(_cloud_candidate, found.clouds) if not c.offered)
    remote.sort(key=lambda c: -c.strength)  # stable: key_vendors() order breaks ties
    local = [
        Candidate(
            server.server,
            server.server,
            server.models[0],
            30,
            0.0,
            "openai-compatible",
            base_url=server.base_url,
            note=f"{server.name} on {server.base_url}"
            + (f"; also serves {', '.join(server.models[1:4])}" if len(server.models) > 1 else ""),
        )
        for server in found.servers
    ]
    embedded = found.embedded
    if embedded is not None and embedded.available:
        local.append(
            Candidate(
                "local",
                "embedded",
                None,
                10,
                0.0,
                "local",
                note=f"embedded {embedded.model}, runs in-process: no key, works offline",
            )
        )
    return remote, local


def _cloud_block(account: CloudAccount) -> str:
    """What keeps the account's entry from running here; "" when nothing does."""
    blocks = []
    install = f"needs rolecall[{account.extra}]: pip install 'rolecall[{account.extra}]'"
    if account.type not in provider_types() or not _installed(account.extra_module):
        blocks.append(f"type {account.type} {install}")
    if account.missing:
        blocks.append(f"set {' and '.join(account.missing)} (written as {PLACEHOLDER})")
    if account.unusable:
        blocks.append(account.unusable)
    return "; ".join(blocks)


def _installed(module: str | None) -> bool:
    if module is None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # its parent package is missing
        return False


def _cloud_candidate(account: CloudAccount) -> Candidate:
    strength, cost = CLOUD_RANK.get(account.type, (50, 5.0))
    return Candidate(
        account.provider_id,
        account.provider_id,
        account.model,
        strength,
        cost,
        account.type,
        note=f"{account.cloud}, credentials from {account.found}",
        fields=account.fields,
        needs=_cloud_block(account),
    )


def propose(found: Discovery) -> Proposal:
    remote, local = candidates(found)
    offered = [c for c in map(_cloud_candidate, found.clouds) if c.offered]
    notes = list(found.notes)
    notes += [
        f"{c.note}: {c.needs}, then uncomment providers.{c.id} and name it in a role"
        for c in offered
    ]
    if found.embedded is not None and not found.embedded.available:
        notes.append(f"embedded model not installed: {found.embedded.missing()}")
    if not remote and not local:
        # Nothing reachable: still write a valid file on the embedded model, and say how to
        # install it.
        local = [Candidate("local", "embedded", None, 10, 0.0, "local", note="embedded model")]
        notes.append(
            "no API key, local server or embedded model found: every role uses the "
            "embedded model, which needs the install above"
        )
    if not remote:
        return _local_only(local, notes, offered)

    strongest = [_best(remote, vendor) for vendor in _vendors(remote)]
    planner = strongest[0]
    second = strongest[1] if len(strongest) > 1 else planner
    coder = second if second.strength >= FRONTIER else planner
    others = [c for c in strongest if c.vendor != coder.vendor]
    unused = [c for c in others if c.vendor != planner.vendor]
    reviewer = (unused or others or [coder])[0]
    capable = sorted((c for c in remote if c.strength >= CAPABLE), key=lambda c: c.cost)
    clarifier = capable[0] if capable else planner

    picks = {
        "clarifier": (clarifier, "cheapest capable model: questions need little reasoning"),
        "planner": (planner, "strongest model found"),
        "coder": (
            coder,
            "strong model on a second vendor: planning and coding use separate rate limits"
            if coder.vendor != planner.vendor
            else "strongest model found",
        ),
        "reviewer": (
            reviewer,
            f"different vendor than the coder ({coder.vendor}): a second opinion"
            if reviewer.vendor != coder.vendor
            else "same vendor as the coder: only one vendor found",
        ),
    }
    roles = []
    for role in BUILTIN_ROLES:
        primary, reason = picks[role]
        pool = capable if role == "clarifier" else strongest
        if role == "reviewer":  # keep the second opinion away from the coder's vendor first
            pool = sorted(pool, key=lambda c: c.vendor == coder.vendor)
        chain = [c for c in pool if c.vendor != primary.vendor][:MAX_REMOTE_FALLBACKS]
        if planner not in chain and planner != primary:
            chain.append(planner)
        roles.append(_assignment(role, primary, [*chain, *local], reason))
    vendors = _vendors(remote)
    listed = sorted(remote, key=lambda c: (vendors.index(c.vendor), -c.strength))
    return _proposal(roles, [*listed, *local], planner.id, notes, offered)


def _local_only(local: list[Candidate], notes: list[str], offered: list[Candidate]) -> Proposal:
    primary = local[0]
    reason = (
        f"no API key found: {primary.note}"
        if primary.vendor != "embedded"
        else "no API key or local server found: the embedded model"
    )
    roles = [_assignment(role, primary, local[1:], reason) for role in BUILTIN_ROLES]
    return _proposal(roles, local, primary.id, notes, offered)


def _proposal(
    roles: list[RoleAssignment],
    pool: list[Candidate],
    default: str,
    notes: list[str],
    offered: list[Candidate],
) -> Proposal:
    used = {default}
    for assignment in roles:
        used.add(assignment.provider)
        used.update(assignment.fallback)
    entries: list[ProviderEntry] = []
    for candidate in pool:
        if candidate.id in used and all(e.candidate.id != candidate.id for e in entries):
            entries.append(ProviderEntry(candidate, candidate.note))
    entries += [ProviderEntry(c, c.needs) for c in offered]
    return Proposal(tuple(entries), tuple(roles), default, tuple(notes))


def _assignment(
    role: str, primary: Candidate, chain: list[Candidate], reason: str
) -> RoleAssignment:
    fallback: list[str] = []
    for candidate in chain:
        if candidate.id != primary.id and candidate.id not in fallback:
            fallback.append(candidate.id)
    return RoleAssignment(role, primary.id, _model_name(primary), tuple(fallback), reason)


def _vendors(remote: list[Candidate]) -> list[str]:
    seen: list[str] = []
    for candidate in remote:
        if candidate.vendor not in seen:
            seen.append(candidate.vendor)
    return seen


def _best(remote: list[Candidate], vendor: str) -> Candidate:
    return next(c for c in remote if c.vendor == vendor)


def _model_name(candidate: Candidate) -> str:
    if candidate.model is not None:
        return candidate.model
    from rolecall.providers._local_files import BUNDLED_MODEL_NAME

    return BUNDLED_MODEL_NAME


_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]*(?<!:)$")
_YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def _scalar(value: str) -> str:
    """``value`` bare when YAML reads it back as that string, else double-quoted.

    A ``${`` is written ``$${``: the loader would read it as a variable reference, so
    a local server listing a model named ``${OPENAI_API_KEY}`` would be sent the key.
    """
    plain = (
        _PLAIN.match(value)
        and ": " not in value
        and any(ch.isalpha() for ch in value)
        and value.lower() not in _YAML_WORDS
    )
    return value if plain else json.dumps(value.replace("${", "$${"))


def _comment(text: str) -> str:
    """``text`` on one comment line that YAML reads and a terminal shows as written.

    Model names come from local servers: a line break would end the comment, and a
    control character or a lone surrogate makes the whole file unreadable YAML.
    """
    one_line = visible(" ".join(text.split()))
    return one_line.encode("utf-8", "backslashreplace").decode("utf-8")


def render_yaml(proposal: Proposal, found: Discovery) -> str:
    """The commented config text; keys appear only as ``${VAR}``."""
    lines = [
        "# rolecall.yaml, written by `rolecall init` from what this machine can reach:",
        *(f"#   {_comment(line)}" for line in _detected(found)),
        "# API keys stay in the environment: this file names their variables only.",
        "# After adding a key: `rolecall init --force`. Check: `rolecall config validate`.",
        "schema_version: 1",
        "",
        "providers:",
    ]
    for entry in proposal.providers:
        c = entry.candidate
        entry_lines = [f"{c.id}:  # {_comment(entry.comment)}", *_entry_keys(c)]
        # An entry the user must act on first is written commented out: the file stays valid.
        lines += [f"  # {line}" if c.offered else f"  {line}" for line in entry_lines]
    lines += ["", "roles:"]
    for a in proposal.roles:
        lines.append(f"  {a.role}:  # {_comment(a.reason)}")
        lines.append(f"    provider: {a.provider}")
        if a.fallback:
            lines.append(f"    fallback: [{', '.join(a.fallback)}]")
    lines += [
        "",
        f"default_provider: {proposal.default_provider}  # roles not listed above",
        "",
    ]
    return "\n".join(lines)


def _entry_keys(c: Candidate) -> list[str]:
    lines = [f"  type: {c.type}"]
    if c.fields:
        # ${VAR} references are written bare, like api_key below: YAML reads them as text.
        lines += [
            f"  {key}: {value if value.startswith('${') else _scalar(value)}"
            for key, value in c.fields
        ]
        return lines
    if c.model is not None:
        lines.append(f"  model: {_scalar(c.model)}")
    if c.base_url:
        lines.append(f"  base_url: {_scalar(c.base_url)}")
    if c.env_var:
        lines.append(f"  api_key: ${{{c.env_var}}}")
    elif c.type == "local":
        lines.append("  timeout: 10m  # one generation; small CPUs are slow")
    else:
        lines.append("  timeout: 5m  # a model on this machine may run on the CPU")
    return lines


def _detected(found: Discovery) -> list[str]:
    lines = [f"key {k.env_var} ({k.vendor})" for k in found.keys]
    lines += [f"{a.cloud} credentials: {a.found}" for a in found.clouds]
    lines += [f"{s.name} at {s.base_url} ({', '.join(s.models[:4])})" for s in found.servers]
    if found.embedded is not None and found.embedded.available:
        lines.append(f"embedded model {found.embedded.model}")
    return lines or ["nothing: no API key, no local server, no embedded model"]
