"""Tuning: a real Optuna study on the test data, tracked in a real MLflow store, feeding training."""

import json
import sys

import optuna
import pytest
from mlflow import MlflowClient

from training import train as train_module
from training.params import SEARCH_SPACE, ParamsError, load_params, write_params
from training.train import train
from training.tune import MlflowTracker, fixed_trial_params, tune

ROUNDS = 40


def runs_of(tracking_uri: str, study_run_id: str):
    client = MlflowClient(tracking_uri)
    study = client.get_run(study_run_id)
    trials = client.search_runs(
        [study.info.experiment_id], f"tags.mlflow.parentRunId = '{study_run_id}'", order_by=["attributes.start_time"]
    )
    return client, study, sorted(trials, key=lambda r: int(r.data.tags["optuna.trial"]))


def test_three_trials_are_tracked_and_the_best_parameters_train_the_same_model(splits, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    tracker = MlflowTracker.local(uri)
    result = tune(splits.train, splits.eval, tracker, trials=3, num_boost_round=ROUNDS)
    best_file = tmp_path / "best.json"
    write_params(result.best_params, best_file)
    tracker.end_study(result, best_file)

    client, study, trials = runs_of(uri, result.study_run_id)
    assert len(trials) == 3 and result.completed == 3 and result.pruned == 0
    assert trials[0].data.params == {k: str(v) for k, v in fixed_trial_params().items()}
    for run in trials:
        assert run.info.status == "FINISHED" and run.data.tags["optuna.state"] == "complete"
        assert set(run.data.params) == {t.name for t in SEARCH_SPACE}
        curve = client.get_metric_history(run.info.run_id, "eval_rmse_curve")
        assert [m.step for m in curve][:2] == [10, 20] and min(m.value for m in curve) == run.data.metrics["eval_rmse"]
    assert len({run.data.params["num_leaves"] + run.data.params["learning_rate"] for run in trials}) == 3
    assert result.best_rmse == min(run.data.metrics["eval_rmse"] for run in trials)
    assert result.fixed_rmse == trials[0].data.metrics["eval_rmse"]
    assert study.info.status == "FINISHED"
    assert study.data.metrics["best_eval_rmse"] == result.best_rmse
    assert study.data.tags["best_trial"] == str(result.best_trial)
    assert [a.path for a in client.list_artifacts(result.study_run_id)] == ["best.json"]

    params = load_params(best_file)
    assert params == result.best_params
    trained = train(splits, ROUNDS, log_every=0, params=params)
    assert trained["booster"].best_iteration == result.best_iteration
    # The same model: LightGBM's metric sums in its own order, numpy in another.
    assert trained["metrics"]["eval"]["lightgbm"]["RMSE"] == pytest.approx(result.best_rmse, rel=1e-7)
    assert trained["tuned"] == sorted(params)


class PruneAllButTheFirst(optuna.pruners.BasePruner):
    """Deterministic pruning, so the test checks what happens to a pruned trial, not when the median says so."""

    def prune(self, study, trial) -> bool:
        return trial.number > 0


def test_a_pruned_trial_stops_early_and_is_recorded_as_killed(splits, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = tune(
        splits.train,
        splits.eval,
        MlflowTracker.local(uri),
        trials=3,
        num_boost_round=ROUNDS,
        pruner=PruneAllButTheFirst(),
    )
    assert (result.completed, result.pruned, result.best_trial) == (1, 2, 0)
    client, _, trials = runs_of(uri, result.study_run_id)
    assert [r.info.status for r in trials] == ["FINISHED", "KILLED", "KILLED"]
    for run in trials[1:]:
        assert run.data.tags["optuna.state"] == "pruned" and "eval_rmse" not in run.data.metrics
        assert [m.step for m in client.get_metric_history(run.info.run_id, "eval_rmse_curve")] == [10]


def test_a_bad_parameters_file_names_every_problem(tmp_path):
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"num_leaves": 31.5, "learning_rate": "fast", "max_depth": 4, "lambda_l2": -1}))
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    message = str(caught.value)
    for expected in (
        "num_leaves: must be an integer, got 31.5",
        "learning_rate: must be a finite number, got 'fast'",
        "max_depth: not a tunable parameter",
        "lambda_l2: must be in [0, 1e+12], got -1",
    ):
        assert expected in message
    path.write_text("[1, 2]")
    with pytest.raises(ParamsError, match="must be a JSON object"):
        load_params(path)
    path.write_text("{")
    with pytest.raises(ParamsError, match="is not JSON"):
        load_params(path)


def test_training_refuses_a_bad_parameters_file_before_loading_data(tmp_path, monkeypatch, capsys):
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"num_leaves": True}))
    monkeypatch.setattr(sys, "argv", ["train", "--params", str(path), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exited:
        train_module.main()
    assert exited.value.code == 2
    assert "num_leaves: must be a finite number, got True" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
