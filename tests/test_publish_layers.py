"""Publishing layers to Lambda (moto's server) and recording their ARNs in config.json.

Why: a wrong runtime or architecture on a layer version, or a config still pointing at
an old version, only shows on AWS, as an import error at the first invocation.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import boto3
import pytest

from deploy import policy, publish_layers
from deploy.publish_layers import layer_name, publish_layer, unused_layer_names, with_layer_arns

ACCOUNT = "123456789012"  # moto's


def arn(name: str, version: int, region: str = "us-east-1") -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}:{version}"


@pytest.fixture
def layers_dir(tmp_path: Path) -> Path:
    """Stand-ins for build/layers: tiny but real zips under the names deploy.layers writes."""
    out = tmp_path / "layers"
    out.mkdir()
    for layer in ("model", "pandas", "native"):
        with zipfile.ZipFile(out / f"{layer}-layer.zip", "w") as zf:
            zf.writestr(f"python/{layer}_stub.py", "VALUE = 1\n")
    return out


@pytest.fixture
def aws(s3_server, monkeypatch: pytest.MonkeyPatch) -> str:
    """boto3 everywhere goes to the moto server, as AWS_ENDPOINT_URL makes it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    return s3_server.url


def test_publishes_directly_with_runtime_and_architecture(aws: str, layers_dir: Path) -> None:
    client = boto3.client("lambda", region_name="us-east-1")
    name = layer_name("model", "x86_64")
    first = publish_layer(name, layers_dir / "model-layer.zip", "x86_64", client)
    second = publish_layer(name, layers_dir / "model-layer.zip", "x86_64", client)
    assert second == arn(name, int(first.rsplit(":", 1)[1]) + 1)
    version = client.get_layer_version(LayerName=name, VersionNumber=int(second.rsplit(":", 1)[1]))
    assert version["CompatibleRuntimes"] == ["python3.12"]
    assert version["CompatibleArchitectures"] == ["x86_64"]
    assert version["Content"]["CodeSize"] == (layers_dir / "model-layer.zip").stat().st_size


def test_a_zip_over_the_direct_limit_goes_through_s3(aws: str, layers_dir: Path, s3, bucket: str) -> None:
    client = boto3.client("lambda", region_name="us-east-1")
    zip_path = layers_dir / "pandas-layer.zip"
    name = layer_name("pandas", "arm64")
    with pytest.raises(ValueError, match="pass --bucket"):
        publish_layer(name, zip_path, "arm64", client, direct_limit=10)
    published = publish_layer(name, zip_path, "arm64", client, s3, bucket, direct_limit=10)
    assert s3.get_object(Bucket=bucket, Key=f"layers/{name}/pandas-layer.zip")["Body"].read() == zip_path.read_bytes()
    version = client.get_layer_version(LayerName=name, VersionNumber=int(published.rsplit(":", 1)[1]))
    assert version["CompatibleArchitectures"] == ["arm64"]
    assert version["Content"]["CodeSize"] == zip_path.stat().st_size


def test_cli_publishes_both_and_writes_the_arns_into_lambda_stages(
    aws: str, layers_dir: Path, tmp_path: Path, capsys
) -> None:
    config_path = tmp_path / "config.json"
    before = policy.read_config()
    config_path.write_text(json.dumps(before, indent=2) + "\n")
    publish_layers.main(
        ["--region", "us-west-2", "--layers", str(layers_dir), "--write-config", "--config", str(config_path)]
    )
    printed = capsys.readouterr().out.splitlines()
    model, pandas, native = (arn(layer_name(name, "x86_64"), 1, "us-west-2") for name in ("model", "pandas", "native"))
    assert printed[:3] == [model, pandas, native]
    after = json.loads(config_path.read_text())
    for stage in ("dev", "prod"):
        functions = after["stages"][stage]["lambda_functions"]
        assert functions["api_handler"]["layers"] == [native]
        assert functions["score_uploaded_csv"]["layers"] == [model, pandas]
    for stage in ("dev", "prod"):  # nothing but the layer ARNs changed
        for function, settings in after["stages"][stage]["lambda_functions"].items():
            settings["layers"] = before["stages"][stage]["lambda_functions"][function]["layers"]
    assert after == before


def test_cli_refuses_before_publishing_what_config_cannot_use(aws: str, layers_dir: Path, tmp_path: Path) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(policy.read_config()))
    with pytest.raises(SystemExit) as exc:
        publish_layers.main(
            [
                *("--region", "eu-west-1", "--arch", "arm64", "--layers", str(layers_dir)),
                *("--write-config", "--config", str(config_path)),
            ]
        )
    assert exc.value.code == 2
    assert boto3.client("lambda", region_name="eu-west-1").list_layers()["Layers"] == []


def test_cli_names_missing_zips(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        publish_layers.main(["--region", "us-east-1", "--layers", str(tmp_path)])
    assert "model-layer.zip" in capsys.readouterr().err


def test_only_matching_layer_names_are_replaced() -> None:
    config = policy.read_config()
    new = arn(layer_name("model", "x86_64"), 7)
    updated, changes = with_layer_arns(config, [new])
    assert len(changes) == 4  # the batch and fan-out functions of dev and prod (the API has the native layer)
    pandas = config["stages"]["prod"]["lambda_functions"]["score_uploaded_csv"]["layers"][1]
    assert updated["stages"]["prod"]["lambda_functions"]["score_uploaded_csv"]["layers"] == [new, pandas]
    assert unused_layer_names(config, [layer_name("model", "x86_64")]) == []
    assert unused_layer_names(config, [layer_name("model", "arm64")]) == [layer_name("model", "arm64")]
    with pytest.raises(ValueError, match="not a layer version ARN"):
        with_layer_arns(config, ["arn:aws:lambda:us-east-1:1:function:f"])
