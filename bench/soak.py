"""Soak the API through its Lambda entry point: `python -m bench.soak [--requests 100000]`.

One process answers every request with `app.app(event, context)`, as one warm Lambda
container would, from a deterministic mix of valid bodies (the lab records, 1 and 100 of
them, raw records) and invalid ones (malformed JSON, wrong types, missing fields, NaN,
too many records, oversized, nested too deeply, a non-JSON content type, an empty body).
Each body's status is known up front, so any other status, and any 5xx above all, fails
the run. A marker string sits in the bodies: no log line and no stray output may carry it,
which proves that bodies never reach the logs. VmRSS is sampled throughout; the run fails
if it grows more than the tolerance after the first quarter (warm-up). Exits 1 on failure.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import logging
import multiprocessing
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.child import BLOCKED_ON_API
from testkit.events import LambdaContext, api_event
from testkit.lab import lab_records

REPO_ROOT = Path(__file__).resolve().parent.parent
MARKER = "SOAK-MARKER-5e1f0c"
SEED = 20_261_125
# The model the soak serves when no --artifacts is given: the test suite's size, cached.
ZIPCODES, ROUNDS = 120, 150
LOGGED_BY_APP = "house_prices"


@dataclass(frozen=True)
class Case:
    """One kind of request: its event, the status it must get, and how often it is sent."""

    name: str
    expected: int
    event: dict[str, Any]
    weight: int
    predictions: int | None = None  # a 200 must carry exactly this many
    logged: bool = True  # reaches the view, which logs one line per request


def cases(lab: Sequence[dict[str, Any]]) -> list[Case]:
    """Every kind of request in the mix; by weight about half are valid."""
    from chalicelib.api import MAX_BODY_BYTES, MAX_RECORDS

    def post(records: Any) -> dict[str, Any]:
        return api_event(json.dumps(records))

    def changed(**fields: Any) -> dict[str, Any]:
        return {**lab[0], **fields}

    hundred = [dict(lab[i % len(lab)], soak_note=MARKER) for i in range(100)]
    raw = {k: v for k, v in lab[1].items() if k not in ("zipcode_freq", "city_encoded", "year", "quarter", "month")}
    raw |= {"date": "2021-08-01", "zipcode": "45202", "city_full": f"{MARKER} City", f"{MARKER}-field": MARKER}
    missing = {k: v for k, v in lab[0].items() if k not in ("median_dom", "lat")}
    nan_text = json.dumps({"records": [changed(median_dom="@")]}).replace('"@"', "NaN")
    infinity_text = json.dumps([changed(park="@")]).replace('"@"', "-Infinity")
    form = "application/x-www-form-urlencoded"
    oversized = json.dumps({"records": [], "pad": MARKER * (MAX_BODY_BYTES // len(MARKER) + 1)})
    valid = [
        Case("lab: 1 record", 200, post({"records": [lab[0]]}), 20, 1),
        Case("lab: 5 records", 200, post({"records": list(lab)}), 4, 5),
        Case("lab: 100 records", 200, post({"records": hundred}), 4, 100),
        Case("lab: bare object, unknown field", 200, post(changed(soak_note=MARKER)), 5, 1),
        Case("lab: bare list of 2", 200, post([lab[2], lab[3]]), 3, 2),
        Case("raw: 1 record, unknown city", 200, post({"records": [raw]}), 8, 1),
        Case("raw: 100 records", 200, post({"records": [raw] * 100}), 2, 100),
        Case("GET /health", 200, api_event(None, method="GET", path="/health"), 2, logged=False),
    ]
    invalid = [
        Case("malformed JSON", 400, api_event('{"records": [{"city_full": "' + MARKER), 5),
        Case("truncated JSON", 400, api_event(json.dumps({"records": [lab[0]]})[:-40]), 3),
        Case("not UTF-8", 400, api_event(base64.b64encode(b"\xff\xfe{}").decode(), base64_encoded=True), 2),
        Case("JSON scalar", 400, api_event("42"), 1),
        Case("records not an array", 400, post({"records": {"city_full": MARKER}}), 2),
        Case("no records", 400, post({"records": []}), 2),
        Case("record not an object", 400, post([lab[0], MARKER]), 2),
        Case("wrong type: string", 400, post(changed(median_dom=MARKER)), 4),
        Case("wrong type: null, bool, object", 400, post([changed(bank=None, bus=True, park={MARKER: 1})]), 2),
        Case("missing fields", 400, post({"records": [lab[0], missing]}), 4),
        Case("NaN literal", 400, api_event(nan_text), 3),
        Case("-Infinity literal", 400, api_event(infinity_text), 1),
        Case("out of bounds", 400, post(changed(sold_above_list=1.5, lat=-91, median_list_price=10**400)), 2),
        Case("quarter disagrees with month", 400, post(changed(quarter=1)), 1),
        Case("negative price", 400, post(changed(price=-1)), 1),
        Case("raw: bad zipcode, date, city", 400, post(dict(raw, zipcode=MARKER, date=MARKER, city_full=7)), 2),
        Case("too many records", 400, post([{"city_full": MARKER}] * (MAX_RECORDS + 1)), 2),
        Case("nested too deeply", 400, api_event("[" * 50_000 + "]" * 50_000), 1),
        Case("oversized body", 413, api_event(oversized), 1),
        Case("empty body (null)", 400, api_event(None), 2),
        Case('empty body ("")', 400, api_event(""), 1),
        Case("content type text/plain", 415, api_event(json.dumps(lab[0]), "text/plain"), 3, logged=False),
        Case("content type form", 415, api_event(f"city_full={MARKER}", form), 1, logged=False),
        Case("GET /predict_price", 405, api_event(None, method="GET"), 1, logged=False),
    ]
    return valid + invalid


def schedule(mix: Sequence[Case], requests: int) -> Iterator[Case]:
    """The same order on every run: each case `weight` times per shuffled cycle."""
    cycle = [case for case in mix for _ in range(case.weight)]
    random.Random(SEED).shuffle(cycle)
    for i in range(requests):
        yield cycle[i % len(cycle)]


def planned(requests: int, lab: Sequence[dict[str, Any]] | None = None) -> dict[str, Counter[Any]]:
    """What a clean run must report: requests per expected status, and log lines per level."""
    statuses: Counter[int] = Counter()
    log_lines: Counter[str] = Counter()
    for case in schedule(cases(lab or lab_records()), requests):
        statuses[case.expected] += 1
        if case.logged:
            log_lines["INFO" if case.expected == 200 else "WARNING"] += 1
    return {"statuses": statuses, "log_lines": log_lines}


class LogTally(logging.Handler):
    """Counts log lines instead of writing them, and keeps any line that carries a body value."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))
        self.lines: Counter[tuple[str, str, str]] = Counter()
        self.leaks = 0
        self.examples: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        self.lines[(record.name, record.levelname, _event_of(line))] += 1
        if MARKER in line:
            self.leaks += 1
            if len(self.examples) < 3:
                self.examples.append(line[:300])


def _event_of(line: str) -> str:
    """The `event` of one of the app's JSON log lines, or "-" for any other line."""
    try:
        event = json.loads(line).get("event", "-")
    except (ValueError, AttributeError):
        return "-"
    return str(event)


class OutputTally(io.TextIOBase):
    """Stands in for stdout/stderr during the soak: Lambda would ship anything written there."""

    def __init__(self) -> None:
        self.writes = 0
        self.leaks = 0
        self.examples: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.writes += 1
        if MARKER in text:
            self.leaks += 1
            if len(self.examples) < 3:
                self.examples.append(text[:300])
        return len(text)


@contextlib.contextmanager
def tallied_logs(loggers: Sequence[logging.Logger]) -> Iterator[LogTally]:
    """Swap the loggers' handlers for one tally: the app logs as usual, nothing is printed."""
    tally = LogTally()
    saved = [(logger, logger.handlers[:]) for logger in loggers]
    try:
        for logger in loggers:
            logger.handlers[:] = [tally]
        yield tally
    finally:
        for logger, handlers in saved:
            logger.handlers[:] = handlers


def rss_kib() -> int:
    """Resident set size now (VmRSS), not the high-water mark: growth is what a leak shows."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status: the soak needs Linux")


def slope_mib_per_10k(samples: Sequence[tuple[int, int]]) -> float:
    """Least-squares slope of RSS over requests, in MiB per 10,000 requests."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    var = sum((x - mean_x) ** 2 for x, _ in samples)
    cov = sum((x - mean_x) * (y - mean_y) for x, y in samples)
    return cov / var * 10_000 / 1024 if var else 0.0


@dataclass
class Run:
    """What the soak saw."""

    requests: int
    elapsed_s: float = 0.0
    outcomes: Counter[tuple[int, int]] = field(default_factory=Counter)
    by_case: dict[str, Counter[int]] = field(default_factory=dict)
    bad_bodies: list[str] = field(default_factory=list)
    rss: list[tuple[int, int]] = field(default_factory=list)
    log_lines: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    leaks: int = 0  # log lines and output writes that carry the marker
    leak_examples: list[str] = field(default_factory=list)
    output_writes: int = 0


def soak(handler: Any, chalice_log: logging.Logger, mix: Sequence[Case], requests: int, sample_every: int) -> Run:
    """Send the scheduled requests one after another and tally every reply."""
    run = Run(requests, by_case={case.name: Counter() for case in mix})
    context = LambdaContext()
    output = OutputTally()
    loggers = [logging.getLogger(LOGGED_BY_APP), chalice_log, logging.getLogger()]
    with tallied_logs(loggers) as tally, contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        start = time.perf_counter()
        for i, case in enumerate(schedule(mix, requests)):
            if i % sample_every == 0:
                run.rss.append((i, rss_kib()))
            reply = handler(case.event, context)
            status = reply["statusCode"]
            run.outcomes[(case.expected, status)] += 1
            run.by_case[case.name][status] += 1
            if status == 200 and case.predictions is not None and len(run.bad_bodies) < 10:
                count = json.loads(reply["body"]).get("count")
                if count != case.predictions:
                    run.bad_bodies.append(f"{case.name}: count {count}, expected {case.predictions}")
        run.elapsed_s = time.perf_counter() - start
        run.rss.append((requests, rss_kib()))
    run.log_lines, run.output_writes = tally.lines, output.writes
    run.leaks = tally.leaks + output.leaks
    run.leak_examples = tally.examples + output.examples
    return run


def failures(run: Run, plan: dict[str, Counter[Any]], tolerance_mib: float) -> list[str]:
    """Every reason the run fails; none means it passed."""
    found = [f"{n:,} x expected {e}, got {g}" for (e, g), n in sorted(run.outcomes.items()) if e != g]
    found += run.bad_bodies
    levels = request_log_lines(run)
    if levels != plan["log_lines"]:
        found.append(f"request log lines {dict(levels)}, expected {dict(plan['log_lines'])}")
    others = {key: n for key, n in run.log_lines.items() if key[0] != LOGGED_BY_APP or key[2] == "-"}
    if others:
        found.append(f"log lines from elsewhere than the app's JSON log: {others}")
    if run.leaks:
        found.append(f"{run.leaks:,} log lines or writes carry a body value, such as: {run.leak_examples}")
    growth = rss_growth_mib(run)
    if growth > tolerance_mib:
        found.append(f"RSS grew {growth:+.1f} MiB after the first quarter; the tolerance is {tolerance_mib:g} MiB")
    return found


def request_log_lines(run: Run) -> Counter[str]:
    """The app's per-request lines ("predict" events) by level."""
    return Counter(
        {level: n for (name, level, event), n in run.log_lines.items() if name == LOGGED_BY_APP and event == "predict"}
    )


def rss_growth_mib(run: Run) -> float:
    """RSS at the end minus RSS at the 25% mark (the end of warm-up)."""
    quarter = next(kib for i, kib in run.rss if i >= run.requests // 4)
    return (run.rss[-1][1] - quarter) / 1024


def report(run: Run, mix: Sequence[Case], tolerance_mib: float, problems: list[str]) -> str:
    """The table a person reads; tests/test_soak.py reads the outcome rows too."""
    mib = [kib / 1024 for _, kib in run.rss]
    quarter = next(kib for i, kib in run.rss if i >= run.requests // 4) / 1024
    second_half = [(i, kib) for i, kib in run.rss if i >= run.requests // 2]
    rate = run.requests / run.elapsed_s if run.elapsed_s else 0.0
    expected = {case.name: case.expected for case in mix}
    lines = [
        f"soak: {run.requests:,} requests through app.app(event, context) in one process",
        "",
        f"{'case':<34} {'expected':>8} {'requests':>9}  got",
    ]
    for name, got in run.by_case.items():
        shown = ", ".join(f"{status} x {n:,}" for status, n in sorted(got.items())) or "-"
        lines.append(f"{name:<34} {expected[name]:>8} {sum(got.values()):>9,}  {shown}")
    lines += ["", f"{'expected':>8} {'got':>5} {'requests':>9}"]
    lines += [f"{e:>8} {g:>5} {n:>9,}" for (e, g), n in sorted(run.outcomes.items())]
    requests_logged = request_log_lines(run)
    events = Counter({f"{event} {level}": n for (_, level, event), n in run.log_lines.items()})
    lines += [
        "",
        f"requests          {run.requests:,}",
        f"elapsed           {run.elapsed_s:.1f} s",
        f"requests/s        {rate:,.0f}",
        f"request log lines {requests_logged.total():,} (one per request that reached the view)",
        f"all log lines     {', '.join(f'{k} x {v:,}' for k, v in sorted(events.items()))}",
        f"with body values  {run.leaks:,} (marker {MARKER!r} in logs or output)",
        f"stray output      {run.output_writes} writes to stdout/stderr",
        f"RSS start         {mib[0]:.1f} MiB (before the first request)",
        f"RSS at 25%        {quarter:.1f} MiB",
        f"RSS end           {mib[-1]:.1f} MiB",
        f"RSS max           {max(mib):.1f} MiB",
        f"RSS growth        {rss_growth_mib(run):+.2f} MiB from 25% to the end (tolerance {tolerance_mib:g} MiB)",
        f"RSS slope         {slope_mib_per_10k(second_half):+.3f} MiB per 10,000 requests over the second half",
        f"RSS samples       {len(run.rss)}",
        "",
    ]
    lines += [f"FAIL: {problem}" for problem in problems] or ["PASS"]
    return "\n".join(lines)


def _train(cache: Path) -> None:
    from bench.workload import trained_model

    trained_model(cache, ZIPCODES, ROUNDS)


def default_artifacts(cache: Path) -> Path:
    """The cached small model, trained in another process so pandas never enters this one."""
    folder = cache / f"model-z{ZIPCODES}-r{ROUNDS}"
    if not (folder / "features.npz").is_file():
        print(f"training a model ({ZIPCODES} zipcodes, {ROUNDS} rounds) into {folder}", file=sys.stderr)
        process = multiprocessing.get_context("spawn").Process(target=_train, args=(cache,))
        process.start()
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"training failed with exit code {process.exitcode}")
    return folder / "artifacts"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000, help="requests to send (default 100,000)")
    parser.add_argument("--artifacts", type=Path, help="a local artifact root (default: a cached small model)")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "bench" / "results" / "cache")
    parser.add_argument("--sample-every", type=int, help="requests between RSS samples (default requests/200)")
    parser.add_argument("--rss-tolerance-mib", type=float, default=5.0, help="growth allowed after 25%% (5 MiB)")
    args = parser.parse_args(argv)
    if args.requests < 4:
        parser.error("--requests must be at least 4")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    artifacts = args.artifacts or default_artifacts(args.cache.resolve())
    os.environ["ARTIFACTS_URI"] = str(artifacts.resolve())
    os.environ.pop("MODEL_VERSION", None)
    for name in BLOCKED_ON_API:  # as on the API function, whose layer has neither
        sys.modules[name] = None  # type: ignore[assignment]
    import app

    lab = lab_records()
    mix = cases(lab)
    sample_every = args.sample_every or max(1, args.requests // 200)
    run = soak(app.app, app.app.log, mix, args.requests, sample_every)
    problems = failures(run, planned(args.requests, lab), args.rss_tolerance_mib)
    print(report(run, mix, args.rss_tolerance_mib, problems), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
