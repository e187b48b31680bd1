"""Tune LightGBM's parameters with Optuna on the eval split, tracking every trial in MLflow.

    python -m training.tune --trials 30 [--timeout 900] [--out best.json]
    python -m training.train --params best.json

- Search space: `training.params.SEARCH_SPACE` (what each parameter is for, and its range).
- Sampler: TPE with a seed. Trial 0 is the fixed parameters of `training.train`, so the
  study itself shows what tuning gained (its L1/L2 penalties sit at the search's floor, 1e-3,
  where training's are 0: LightGBM's default, which a log scale cannot hold).
- Objective: eval RMSE at the early-stopping iteration, with training's rule (50 rounds
  without improvement, at most 600).
- Pruning: every 10 iterations a trial reports its eval RMSE; Optuna's median pruner stops
  it when that is worse than the median of earlier trials at the same iteration (after 5
  finished trials and 100 iterations, so slow learning rates get a fair start).
- Tracking: MLflow in a local sqlite store (`mlruns/mlflow.db`, git-ignored, no server):
  one run per study, one nested run per trial with its parameters, state, eval RMSE, best
  iteration and eval curve; the study's run keeps `best.json`. `make mlflow-ui` shows it.
- The holdout never reaches the tuner: `tune` takes the train and eval frames only.
- One LightGBM thread per trial by default (`--threads`): on a shared 2-core machine under
  load, 100 rounds of 28k rows took 3 s on one thread and 57 s on two (OpenMP threads wait
  for each other while other processes hold the cores). With `deterministic` the model does
  not depend on the thread count, so training reproduces the tuned trial.

A development tool: it never runs in Lambda, and nothing in a layer imports it.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import optuna
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from chalicelib.contract import TARGET
from training.data import features_of, load_splits
from training.params import SEARCH_SPACE, write_params
from training.train import EARLY_STOPPING_ROUNDS, NUM_BOOST_ROUND, PARAMS, fit_encoders

REPORT_EVERY = 10
PRUNE_AFTER_TRIALS = 5
PRUNE_WARMUP_ITERATIONS = 100
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_EXPERIMENT = "house-prices-tune"


@dataclass(frozen=True)
class TuneResult:
    best_params: dict[str, float | int]
    best_rmse: float
    best_trial: int
    best_iteration: int
    fixed_rmse: float | None  # trial 0, the fixed parameters; None if it was cut short
    completed: int
    pruned: int
    study_run_id: str


class MlflowTracker:
    """Records a study as one MLflow run and each trial as a run nested under it."""

    def __init__(self, client: MlflowClient, experiment: str, artifact_root: Path) -> None:
        self.client = client
        found = client.get_experiment_by_name(experiment)
        self.experiment_id = (
            found.experiment_id
            if found
            else client.create_experiment(experiment, artifact_location=artifact_root.resolve().as_uri())
        )
        self.study_run_id = ""

    @classmethod
    def local(cls, tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT) -> MlflowTracker:
        """A tracker on a sqlite store `sqlite:///DIR/NAME.db`, its artifacts in DIR/artifacts."""
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if path == Path(tracking_uri):
            raise ValueError(f"tracking URI must be sqlite:///PATH (a local store), got {tracking_uri!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(MlflowClient(tracking_uri), experiment, path.parent / "artifacts")

    def start_study(self, tags: dict[str, str]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=f"study {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self.study_run_id = run.info.run_id
        self.client.log_batch(self.study_run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        return self.study_run_id

    def start_trial(self, number: int, params: dict[str, Any]) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial {number}",
            tags={"mlflow.parentRunId": self.study_run_id, "optuna.trial": str(number)},
        )
        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run.info.run_id

    def end_trial(self, run_id: str, state: str, curve: list[float], rmse: float | None, best_iteration: int) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric("eval_rmse_curve", value, now, step) for step, value in _every(curve, REPORT_EVERY)]
        if rmse is not None:
            metrics += [Metric("eval_rmse", rmse, now, 0), Metric("best_iteration", best_iteration, now, 0)]
        self.client.log_batch(run_id, metrics=metrics, tags=[RunTag("optuna.state", state)])
        status = {"complete": "FINISHED", "pruned": "KILLED"}.get(state, "FAILED")
        self.client.set_terminated(run_id, status)

    def end_study(self, result: TuneResult, params_file: Path) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric("best_eval_rmse", result.best_rmse, now, 0)]
        if result.fixed_rmse is not None:
            metrics.append(Metric("fixed_eval_rmse", result.fixed_rmse, now, 0))
        self.client.log_batch(
            self.study_run_id,
            metrics=metrics,
            params=[Param(f"best.{k}", str(v)) for k, v in result.best_params.items()],
            tags=[
                RunTag("best_trial", str(result.best_trial)),
                RunTag("trials_completed", str(result.completed)),
                RunTag("trials_pruned", str(result.pruned)),
            ],
        )
        self.client.log_artifact(self.study_run_id, str(params_file))
        self.client.set_terminated(self.study_run_id, "FINISHED")


def _every(curve: list[float], step: int) -> list[tuple[int, float]]:
    """(iteration, value) every `step` iterations and at the last one."""
    points = [(i, curve[i - 1]) for i in range(step, len(curve) + 1, step)]
    if curve and len(curve) % step:
        points.append((len(curve), curve[-1]))
    return points


def tune(
    train_frame: pd.DataFrame,
    eval_frame: pd.DataFrame,
    tracker: MlflowTracker,
    trials: int,
    timeout: float | None = None,
    seed: int = 42,
    num_boost_round: int = NUM_BOOST_ROUND,
    progress: bool = False,
    pruner: optuna.pruners.BasePruner | None = None,
    num_threads: int = 1,
) -> TuneResult:
    """Search SEARCH_SPACE for the lowest eval RMSE; track every trial. No holdout goes in.

    `pruner` defaults to the median pruner described above.
    """
    encoders = fit_encoders(train_frame)
    train_x, eval_x = features_of(train_frame, encoders), features_of(eval_frame, encoders)
    train_y = train_frame[TARGET].to_numpy(np.float64)
    eval_y = eval_frame[TARGET].to_numpy(np.float64)

    def objective(trial: optuna.Trial) -> float:
        suggested = {
            t.name: (
                trial.suggest_int(t.name, int(t.low), int(t.high), log=t.log)
                if t.integer
                else trial.suggest_float(t.name, t.low, t.high, log=t.log)
            )
            for t in SEARCH_SPACE
        }
        run_id = tracker.start_trial(trial.number, suggested)
        curve: list[float] = []

        def report(env: lightgbm.callback.CallbackEnv) -> None:
            value = env.evaluation_result_list[0][2]
            curve.append(value)
            if len(curve) % REPORT_EVERY == 0:
                trial.report(value, len(curve))
                if trial.should_prune():
                    raise optuna.TrialPruned(f"eval RMSE {value:,.0f} at iteration {len(curve)}")

        # Fresh datasets per trial: LightGBM bins with min_child_samples, which the trial changes.
        train_set = lightgbm.Dataset(train_x, train_y)
        eval_set = lightgbm.Dataset(eval_x, eval_y, reference=train_set)
        try:
            booster = lightgbm.train(
                {**PARAMS, **suggested, "metric": "rmse", "num_threads": num_threads},
                train_set,
                num_boost_round=num_boost_round,
                valid_sets=[eval_set],
                valid_names=["eval"],
                callbacks=[lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False), report],
            )
        except optuna.TrialPruned:
            tracker.end_trial(run_id, "pruned", curve, None, 0)
            raise
        except Exception:
            tracker.end_trial(run_id, "failed", curve, None, 0)
            raise
        rmse = float(booster.best_score["eval"]["rmse"])
        trial.set_user_attr("best_iteration", booster.best_iteration)
        tracker.end_trial(run_id, "complete", curve, rmse, booster.best_iteration)
        return rmse

    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner
        or optuna.pruners.MedianPruner(
            n_startup_trials=PRUNE_AFTER_TRIALS, n_warmup_steps=PRUNE_WARMUP_ITERATIONS, interval_steps=REPORT_EVERY
        ),
    )
    study.enqueue_trial(fixed_trial_params())
    tracker.start_study(
        {"sampler": f"TPE seed {seed}", "train_rows": str(len(train_frame)), "eval_rows": str(len(eval_frame))}
    )
    study.optimize(objective, n_trials=trials, timeout=timeout, show_progress_bar=progress)

    states = [t.state for t in study.trials]
    first = study.trials[0]
    best = study.best_trial
    return TuneResult(
        best_params=dict(best.params),
        best_rmse=float(best.value),
        best_trial=best.number,
        best_iteration=int(best.user_attrs["best_iteration"]),
        fixed_rmse=float(first.value) if first.state == optuna.trial.TrialState.COMPLETE else None,
        completed=states.count(optuna.trial.TrialState.COMPLETE),
        pruned=states.count(optuna.trial.TrialState.PRUNED),
        study_run_id=tracker.study_run_id,
    )


def fixed_trial_params() -> dict[str, float | int]:
    """Training's fixed parameters as a point of the search space (penalties at its floor)."""
    return {t.name: PARAMS.get(t.name, t.low) for t in SEARCH_SPACE}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    parser.add_argument("--seed", type=int, default=42, help="TPE sampler seed")
    parser.add_argument("--out", type=Path, default=Path("best.json"), help="where the best parameters go")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI, help="a local sqlite:///PATH MLflow store")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    parser.add_argument("--data", type=Path, help="HouseTS CSV; default: synthetic data")
    parser.add_argument("--metros", type=Path, help="US metros CSV (city, lat, lng) for --data")
    parser.add_argument("--zipcodes", type=int, default=300, help="synthetic size; 6226 is the real data's")
    parser.add_argument("--num-boost-round", type=int, default=NUM_BOOST_ROUND)
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads per trial (0: all cores)")
    args = parser.parse_args()
    if args.data and not args.metros:
        parser.error("--data needs --metros (the CSV with city, lat, lng)")
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar says it all
    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        tracker = MlflowTracker.local(args.tracking_uri, args.experiment)
    except ValueError as exc:
        parser.error(str(exc))

    splits, source = load_splits(args.data, args.metros, args.zipcodes)
    print(f"tuning on {source}: train and eval only, the holdout stays out")
    result = tune(
        splits.train,
        splits.eval,
        tracker,
        args.trials,
        args.timeout,
        args.seed,
        args.num_boost_round,
        progress=True,
        num_threads=args.threads,
    )
    write_params(result.best_params, args.out)
    tracker.end_study(result, args.out)

    print(f"trials: {result.completed} complete, {result.pruned} pruned")
    if result.fixed_rmse is not None:
        gain = (1 - result.best_rmse / result.fixed_rmse) * 100
        print(f"eval RMSE, trial 0 (fixed parameters): {result.fixed_rmse:,.0f}")
        print(f"eval RMSE, best (trial {result.best_trial}): {result.best_rmse:,.0f} ({gain:+.1f} % lower)")
    else:
        print(f"eval RMSE, best (trial {result.best_trial}): {result.best_rmse:,.0f}")
    print(f"best parameters ({result.best_iteration} trees on eval): {args.out}")
    print(f"MLflow: {args.tracking_uri}, experiment {args.experiment!r}, study run {result.study_run_id}")
    print(f"next: python -m training.train --params {args.out}")


if __name__ == "__main__":
    main()
