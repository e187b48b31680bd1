"""Publish the built layers as Lambda layer versions and point the stages' functions at them.

    python -m deploy.publish_layers --region R [--arch x86_64] [--layers build/layers]
                                    [--bucket B] [--write-config]

Why a script and not `chalice deploy`: Chalice attaches layers by ARN but never publishes
them. A zip over Lambda's 50 MB direct-upload limit goes through `--bucket` (staged under
`layers/`); ours are about 22, 13 and 3 MB, so they go directly. AWS is reached with boto3's
ordinary configuration (AWS_ENDPOINT_URL included). `--write-config` rewrites the layer
ARNs whose layer name matches in every Lambda stage of .chalice/config.json, nothing else.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deploy.layers import DEFAULT_OUT
from deploy.policy import CONFIG_PATH, lambda_stages, read_config
from deploy.specs import ARCHES, LAYERS, MAX_ZIP_BYTES

RUNTIME = "python3.12"
LAYER_NAME = "house-prices-{layer}-py312-{arch}"


def layer_name(layer: str, arch: str) -> str:
    """The name config.json's ARNs use: one per layer, runtime and architecture."""
    return LAYER_NAME.format(layer=layer, arch=arch)


def layer_zips(layers_dir: Path) -> dict[str, Path]:
    """Layer name -> zip; every layer deploy.layers builds must be there."""
    zips = {spec.name: layers_dir / spec.zip_name for spec in LAYERS}
    missing = [str(path) for path in zips.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"not built: {', '.join(missing)} (run: make layers)")
    return zips


def publish_layer(
    name: str,
    zip_path: Path,
    arch: str,
    lambda_client: Any,
    s3_client: Any = None,
    bucket: str | None = None,
    direct_limit: int = MAX_ZIP_BYTES,
) -> str:
    """Publish one zip as a new version of layer `name`; return the version's ARN."""
    if zip_path.stat().st_size <= direct_limit:
        content: dict[str, Any] = {"ZipFile": zip_path.read_bytes()}
    elif bucket is None or s3_client is None:
        raise ValueError(f"{zip_path} is over {direct_limit / 2**20:.0f} MiB: pass --bucket to upload it via S3")
    else:
        key = f"layers/{name}/{zip_path.name}"
        s3_client.upload_file(str(zip_path), bucket, key)
        content = {"S3Bucket": bucket, "S3Key": key}
    reply = lambda_client.publish_layer_version(
        LayerName=name,
        Description=f"house-prices {zip_path.name} for {RUNTIME} {arch}",
        Content=content,
        CompatibleRuntimes=[RUNTIME],
        CompatibleArchitectures=[arch],
    )
    return reply["LayerVersionArn"]


def arn_layer_name(arn: str) -> str:
    """`arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION` -> NAME."""
    parts = arn.split(":")
    if len(parts) != 8 or parts[5] != "layer":
        raise ValueError(f"not a layer version ARN: {arn!r}")
    return parts[6]


def stage_functions(config: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(stage, function, settings) for every function of every Lambda stage."""
    return [
        (stage, function, settings)
        for stage in lambda_stages(config)
        for function, settings in config["stages"][stage].get("lambda_functions", {}).items()
    ]


def unused_layer_names(config: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """Names no function's layers refer to: publishing them would leave versions nothing uses."""
    used = {arn_layer_name(arn) for _, _, settings in stage_functions(config) for arn in settings.get("layers", [])}
    return sorted(set(names) - used)


def with_layer_arns(config: Mapping[str, Any], arns: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """A copy of config whose Lambda stages use `arns` where the layer names match; and what changed."""
    by_name = {arn_layer_name(arn): arn for arn in arns}
    updated = json.loads(json.dumps(config))
    changes = []
    for stage, function, settings in stage_functions(updated):
        old = settings.get("layers", [])
        settings["layers"] = [by_name.get(arn_layer_name(arn), arn) for arn in old]
        changes += [f"{stage}/{function}: {a} -> {b}" for a, b in zip(old, settings["layers"], strict=True) if a != b]
    return updated, changes


def main(argv: Sequence[str] | None = None) -> None:
    import boto3

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", required=True, help="the region the functions are deployed to")
    parser.add_argument("--arch", choices=sorted(ARCHES), default="x86_64", help="the architecture they were built for")
    parser.add_argument("--layers", type=Path, default=DEFAULT_OUT, help="where `make layers` put the zips")
    parser.add_argument("--bucket", help="staging bucket for zips over 50 MB")
    parser.add_argument("--write-config", action="store_true", help="put the new ARNs into .chalice/config.json")
    parser.add_argument("--config", type=Path, default=CONFIG_PATH)
    args = parser.parse_args(argv)
    try:
        zips = layer_zips(args.layers)
        names = [layer_name(layer, args.arch) for layer in zips]
        config = read_config(args.config) if args.write_config else None
        # Checked before publishing: versions the config cannot take would be orphans.
        if config is not None and unused_layer_names(config, names):
            raise ValueError(f"no function in config uses {', '.join(unused_layer_names(config, names))}")
        lambda_client = boto3.client("lambda", region_name=args.region)
        s3_client = boto3.client("s3", region_name=args.region) if args.bucket else None
        arns = []
        for name, path in zip(names, zips.values(), strict=True):
            arn = publish_layer(name, path, args.arch, lambda_client, s3_client, args.bucket)
            print(arn)
            arns.append(arn)
        if config is not None:
            updated, changes = with_layer_arns(config, arns)
            args.config.write_text(json.dumps(updated, indent=2) + "\n")
            print("\n".join(changes) or "config.json already uses these versions")
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    main()
