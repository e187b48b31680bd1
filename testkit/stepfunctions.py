"""A local runner for the fan-out state machine: test scaffolding, not a Step Functions emulator.

It executes the definition deploy/state_machine.py generates, as far as that definition uses
the States Language: Task (`lambda:invoke`, Parameters, ResultSelector, ResultPath, OutputPath,
Catch; Retry is not replayed), a Distributed Map whose ItemReader is a JSON array in S3 (items
run in `threads` threads, the per-item processor is run the same way), Choice on StringEquals,
Succeed and Fail. A Lambda task calls `invoke(payload)` in this process, which is where tests
hand in the real `fanout_task` code. Executions are named, and a name is refused twice, as
Step Functions refuses it: `start` returns False then.

The product runs on Step Functions; this exists so tests and `make run` can run the same definition.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

Invoke = Callable[[dict[str, Any]], Any]


class StatesError(Exception):
    """A failed state: `error` and `cause` as Step Functions reports them."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


@dataclass
class Execution:
    name: str
    status: str = "RUNNING"
    output: Any = None
    error: StatesError | None = None


def _path(data: Any, path: str, context: dict[str, Any]) -> Any:
    """A reference path: `$`, `$.a.b` or `$$.a.b` (all the definition uses)."""
    root, rest = (context, path[2:]) if path.startswith("$$") else (data, path[1:])
    for name in filter(None, rest.split(".")):
        root = root[name]
    return root


def _fill(template: Any, data: Any, context: dict[str, Any]) -> Any:
    """Parameters / ItemSelector / ResultSelector: keys ending `.$` take the value at their path."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = _path(data, value, context)
            else:
                out[key] = _fill(value, data, context)
        return out
    return template


def _place(data: Any, result: Any, path: str | None) -> Any:
    """ResultPath: None discards the result, `$` replaces the input, `$.a` sets a field of a copy."""
    if path is None:
        return data
    if path == "$":
        return result
    names = path[2:].split(".")
    out = json.loads(json.dumps(data))
    target = out
    for name in names[:-1]:
        target = target.setdefault(name, {})
    target[names[-1]] = result
    return out


class LocalRunner:
    """Runs executions of one definition synchronously in `start`; `executions` records them by name."""

    def __init__(self, definition: dict[str, Any], invoke: Invoke, s3_client: Any, threads: int = 4) -> None:
        self.definition, self.invoke, self.s3, self.threads = definition, invoke, s3_client, threads
        self.executions: dict[str, Execution] = {}
        self._lock = threading.Lock()

    def start(self, name: str, run: dict[str, Any]) -> bool:
        with self._lock:
            if name in self.executions:
                return False
            execution = self.executions[name] = Execution(name)
        try:
            execution.output = self._machine(self.definition, run, {"Execution": {"Name": name, "Input": run}})
            execution.status = "SUCCEEDED"
        except StatesError as exc:
            execution.status, execution.error = "FAILED", exc
        return True

    def _machine(self, machine: dict[str, Any], data: Any, context: dict[str, Any]) -> Any:
        name = machine["StartAt"]
        while True:
            state = machine["States"][name]
            kind = state["Type"]
            if kind == "Succeed":
                return data
            if kind == "Fail":
                raise StatesError(state.get("Error", "States.Fail"), state.get("Cause", ""))
            if kind == "Choice":
                name = next(
                    (c["Next"] for c in state["Choices"] if _path(data, c["Variable"], context) == c["StringEquals"]),
                    state["Default"],
                )
                continue
            try:
                result = self._task(state, data, context) if kind == "Task" else self._map(state, data, context)
            except StatesError as exc:
                handler = next((c for c in state.get("Catch", []) if _catches(c, exc)), None)
                if handler is None:
                    raise
                data = _place(data, {"Error": exc.error, "Cause": exc.cause}, handler.get("ResultPath", "$"))
                name = handler["Next"]
                continue
            data = _place(data, result, state.get("ResultPath", "$"))
            if "OutputPath" in state and state["OutputPath"] is None:
                data = {}
            if state.get("End"):
                return data
            name = state["Next"]

    def _task(self, state: dict[str, Any], data: Any, context: dict[str, Any]) -> Any:
        if state["Resource"] != "arn:aws:states:::lambda:invoke":
            raise StatesError("States.Runtime", f"the local runner has no resource {state['Resource']}")
        parameters = _fill(state["Parameters"], data, context)
        try:
            payload = self.invoke(json.loads(json.dumps(parameters["Payload"])))
        except Exception as exc:  # what Lambda reports for an unhandled error in the function
            cause = json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)})
            raise StatesError(type(exc).__name__, cause) from exc
        result = {"Payload": json.loads(json.dumps(payload)), "StatusCode": 200}
        return _fill(state["ResultSelector"], result, context) if "ResultSelector" in state else result

    def _map(self, state: dict[str, Any], data: Any, context: dict[str, Any]) -> Any:
        reader = state["ItemReader"]
        where = _fill(reader["Parameters"], data, context)
        items = json.loads(self.s3.get_object(Bucket=where["Bucket"], Key=where["Key"])["Body"].read())
        processor = state["ItemProcessor"]
        threads = min(self.threads, state.get("MaxConcurrency") or self.threads)

        def one(index: int) -> Any:
            item_context = {**context, "Map": {"Item": {"Index": index, "Value": items[index]}}}
            item = _fill(state["ItemSelector"], data, item_context)
            return self._machine(processor, item, item_context)

        with ThreadPoolExecutor(threads, "local-map") as pool:
            futures = [pool.submit(one, i) for i in range(len(items))]
            failures = [f.exception() for f in futures if f.exception() is not None]
        if failures:  # ToleratedFailurePercentage 0: one failed item fails the Map
            first = failures[0]
            if isinstance(first, StatesError):
                raise StatesError("States.ExceedToleratedFailureThreshold", f"{first.error}: {first.cause}")
            raise first
        return [f.result() for f in futures]


def _catches(catcher: dict[str, Any], error: StatesError) -> bool:
    return "States.ALL" in catcher["ErrorEquals"] or error.error in catcher["ErrorEquals"]
