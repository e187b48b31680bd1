"""Rewrites examples/bad_record.400.json with the reply the code gives today: `make examples`.

Why a script: validation messages are worded by chalicelib/validation.py and may change;
tests/test_examples.py compares the committed reply with the live one, and this turns a
deliberate wording change into a one-command update that shows up in review as a diff.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chalicelib import api
from chalicelib.predictor import LazyPredictor, load_predictor

EXAMPLES = Path(__file__).resolve().parent
BAD_RECORD = EXAMPLES / "bad_record.json"
BAD_REPLY = EXAMPLES / "bad_record.400.json"


def bad_record_reply(artifacts: Path) -> api.Reply:
    """What `POST /predict_price` answers for examples/bad_record.json."""
    model = LazyPredictor(lambda: load_predictor(str(artifacts)))
    return api.predict_reply(BAD_RECORD.read_bytes(), model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="a trained artifact root")
    args = parser.parse_args()
    reply = bad_record_reply(args.artifacts)
    if reply.status != 400:
        raise SystemExit(f"{BAD_RECORD.name} got {reply.status}, not 400: {reply.body}")
    BAD_REPLY.write_text(json.dumps(reply.body, indent=2) + "\n")
    print(f"wrote {BAD_REPLY.relative_to(EXAMPLES.parent)}")


if __name__ == "__main__":
    main()
