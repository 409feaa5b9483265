"""What a task leaves behind: attempts, events, the reply or the failure with its fixes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Literal

from rolecall._secrets import redact, redact_answer
from rolecall.config.schema import RolecallConfig
from rolecall.errors import AllProvidersFailed, ErrorKind, ProviderError, RolecallError
from rolecall.events import AttemptEvent, AttemptStart, EventBus, TaskEvent
from rolecall.providers.base import Provider
from rolecall.routing._hints import explain_all
from rolecall.routing._task import TaskRun
from rolecall.types import Attempt, Completion, Outcome, ReasoningBlock, Reply, Usage

__all__ = ["Outcomes"]


class Outcomes:
    """Records attempts and results of tasks as :class:`Attempt`, events and replies."""

    def __init__(
        self,
        config: RolecallConfig,
        events: EventBus,
        providers: Mapping[str, Provider],
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._events = self.events = events
        self._providers = providers
        self._clock = clock

    def record_start(self, task: TaskRun, pid: str, attempt: int) -> None:
        """A call to ``pid`` begins (for the sinks that asked for starts: ``events.starts``)."""
        self._events.emit_start(
            AttemptStart(
                run_id=task.run_id,
                task_id=task.task_id,
                role=task.role,
                provider=pid,
                model=self.model(pid, task),
                attempt=attempt,
                stage=task.stage,
            )
        )

    def record_ok(
        self, task: TaskRun, pid: str, attempt: int, latency_ms: float, completion: Completion
    ) -> None:
        task.answer = (pid, completion)
        cost = task.answer_cost = self.cost(pid, completion.usage)
        self.record(task, pid, attempt, "ok", None, latency_ms, usage=completion.usage, cost=cost)

    def record(
        self,
        task: TaskRun,
        pid: str,
        attempt: int,
        outcome: Outcome,
        kind: ErrorKind | None,
        latency_ms: float,
        *,
        usage: Usage | None = None,
        cost: float | None = None,
        error: ProviderError | None = None,
    ) -> None:
        task.attempts.append(Attempt(pid, attempt, outcome, kind, latency_ms))
        if not self._events:
            return
        input_tokens = usage.input_tokens if usage else 0
        output_tokens = usage.output_tokens if usage else 0
        self._events.emit(
            AttemptEvent(
                run_id=task.run_id,
                task_id=task.task_id,
                role=task.role,
                provider=pid,
                model=self.model(pid, task),
                attempt=attempt,
                outcome=outcome,
                error_kind=kind,
                latency_ms=latency_ms,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=cost,
                error=redact(error.message) if error is not None else None,
                cached_input_tokens=usage.cached_input_tokens if usage else 0,
            )
        )

    def model(self, pid: str, task: TaskRun | None = None) -> str:
        if task is not None and task.answer is not None and task.answer[0] == pid:
            return task.answer[1].model or self._providers[pid].model
        return self._providers[pid].model

    def cost(self, pid: str, usage: Usage) -> float | None:
        provider_config = self._config.providers.get(pid)
        if provider_config is None:
            return None
        return provider_config.cost_usd(
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
            usage.cache_creation_input_tokens,
        )

    def succeed(self, task: TaskRun) -> Reply:
        assert task.answer is not None
        pid, completion = task.answer
        latency_ms = (self._clock() - task.started) * 1000.0
        cost = task.answer_cost  # record_ok's
        model = completion.model or self._providers[pid].model
        calls = completion.tool_calls
        tool_calls = tuple([replace(c, arguments=redact_answer(c.arguments)) for c in calls])
        reply = Reply(
            text=redact_answer(completion.text),  # a key the model echoes never reaches a caller
            role=task.role,
            provider=pid,
            model=model,
            usage=completion.usage,
            latency_ms=latency_ms,
            attempts=tuple(task.attempts),
            finish_reason=completion.finish_reason,
            cost_usd=cost,
            tool_calls=tool_calls,
            reasoning=redact_answer(completion.reasoning) if completion.reasoning else None,
            reasoning_blocks=_redacted_blocks(completion.reasoning_blocks),
            stop_sequence=completion.stop_sequence,
        )
        if self._events:
            self._events.emit(
                TaskEvent(
                    run_id=task.run_id,
                    task_id=task.task_id,
                    role=task.role,
                    status="ok",
                    provider=pid,
                    model=model,
                    attempts=len(task.attempts),
                    handovers=task.handovers,
                    latency_ms=latency_ms,
                    input_tokens=completion.usage.input_tokens,
                    output_tokens=completion.usage.output_tokens,
                    cost_usd=cost,
                    stage=task.stage,
                    finish_reason=completion.finish_reason,
                    cached_input_tokens=completion.usage.cached_input_tokens,
                    dialect=task.dialect,
                )
            )
        return reply

    def fail(self, task: TaskRun, error: RolecallError | None = None) -> AllProvidersFailed:
        errors = list(task.failed.values())
        head = f"every provider for role '{task.role}' failed:"
        latency_ms = (self._clock() - task.started) * 1000.0
        failure = AllProvidersFailed(
            task.role,
            errors,
            attempts=task.attempts,
            message=explain_all(head, errors, self._config),
            latency_ms=latency_ms,
        )
        self.task_failed(task, error or failure, latency_ms)
        return failure

    def task_failed(
        self, task: TaskRun, error: RolecallError, latency_ms: float | None = None
    ) -> None:
        """Record the task as failed; ``latency_ms`` is the failure's own figure (the
        time until now when not given)."""
        self._task_ended(task, "failed", redact(error.message), latency_ms)

    def cancel(self, task: TaskRun) -> None:
        """Record the end of a task cancelled under the router (its caller went away, or
        the router closed), after its cancelled call: without it the sinks that wait for
        a task's end (telemetry's spans, ``runs show``) would wait for ever."""
        self._task_ended(task, "cancelled", None, None)

    def _task_ended(
        self,
        task: TaskRun,
        status: Literal["failed", "cancelled"],
        error: str | None,
        latency_ms: float | None,
    ) -> None:
        if not self._events:
            return
        if latency_ms is None:
            latency_ms = (self._clock() - task.started) * 1000.0
        last = task.attempts[-1].provider if task.attempts else None
        self._events.emit(
            TaskEvent(
                run_id=task.run_id,
                task_id=task.task_id,
                role=task.role,
                status=status,
                provider=last,
                model=self.model(last) if last else None,
                attempts=len(task.attempts),
                handovers=task.handovers,
                latency_ms=latency_ms,
                error=error,
                stage=task.stage,
                dialect=task.dialect,
            )
        )


def _redacted_blocks(blocks: tuple[ReasoningBlock, ...]) -> tuple[ReasoningBlock, ...]:
    """Signed reasoning with any registered secret masked out of its text, as the reply's
    text is (the signature no longer matches then: a leak is worse than a refused turn)."""
    if not blocks:
        return blocks
    return tuple([replace(block, text=redact_answer(block.text)) for block in blocks])
