"""The demo model server: a credit-risk classifier trained at start-up, served over KServe v2.

    python -m examples.model_server --port 8080 [--host 127.0.0.1] [--write-training-data DIR]
                                    [--candidate]

Trains `examples.credit_model` on the generated table's training split (about a second,
deterministic), reports its accuracy on the held-out split, then serves
`examples.oip_app` with uvicorn (the same server the sidecar runs on): model "credit",
version "1", inputs age, income, debt_ratio, credit_history_years, late_payments,
employment. The port opens only once the model is trained, so readiness needs no flag.
`--candidate` serves a different model instead, version CANDIDATE_VERSION: the same
features under a much stronger penalty (CANDIDATE_REGULARIZATION), the candidate that
`DEMO_SHADOW=1 make demo` runs as a shadow of the first.

`--write-training-data DIR` first writes DIR/credit_train.csv (the training rows: the
features, `prediction` and `proba_default` = the model's own P(default) on them, `label` =
the true class) and DIR/credit_schema.yaml, from which the baseline is built from exactly
what the model learned from (with reference rows, for estimating performance):

    mlmon-stats baseline --schema DIR/credit_schema.yaml --data DIR/credit_train.csv \\
        --out DIR/credit_baseline.json --prediction-column prediction --label-column label

Faults on request, so that the panels of rare events can be seen to fill (the end-to-end
test sends them; no other client does): a request header `x-mlmon-demo-fault: non-finite`
makes the model answer NaN probabilities for that request's rows (the sidecar counts
non-finite predictions); `x-mlmon-demo-fault: broken-http` gets an answer that is not valid
HTTP (the sidecar answers 502 and counts an upstream protocol error). Any other value is
a 400.

Needs scikit-learn (the dev extra); the traffic generator does not.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from contextvars import ContextVar
from pathlib import Path

import numpy as np
import numpy.typing as npt

from examples.credit_data import (
    CATEGORICAL,
    CLASSES,
    INTEGER,
    LABEL_COLUMN,
    MODEL_NAME,
    MODEL_VERSION,
    NUMERIC,
    PREDICTION_COLUMN,
    load,
    write_training_csv,
)
from examples.credit_model import CreditModel
from examples.oip_app import Columns, Message, ModelSpec, OipApp, Predict, Receive, Send

SCHEMA_FILE = Path(__file__).with_name("credit_schema.yaml")
TRAINING_CSV = "credit_train.csv"
PROG = "model_server"
FAULT_HEADER = "x-mlmon-demo-fault"
NON_FINITE = "non-finite"
BROKEN_HTTP = "broken-http"
FAULTS = (NON_FINITE, BROKEN_HTTP)
CANDIDATE_VERSION = "2"
# Far below the primary's C=1: probabilities pulled towards the base rate, so a share of
# the borderline rows gets the other class.
CANDIDATE_REGULARIZATION = 0.002
# Set while a request asking for NaN predictions is being answered.
_NAN_ANSWER: ContextVar[bool] = ContextVar("nan_answer", default=False)
# Not an HTTP token (RFC 9110 5.6.2): uvicorn sends header names as given, and every
# HTTP parser, the sidecar's included, refuses a response with it.
_INVALID_HEADER_NAME = b"x-not-a-token\xff"


def model_spec(model: CreditModel, version: str = MODEL_VERSION) -> ModelSpec:
    inputs = [(name, "INT64" if name in INTEGER else "FP64") for name in NUMERIC]
    return ModelSpec(
        name=MODEL_NAME,
        version=version,
        inputs=(*inputs, (CATEGORICAL, "BYTES")),
        classes=(CLASSES[0], CLASSES[1]),
        predict=_nan_when_asked(model.predict_columns),
    )


def _nan_when_asked(predict: Predict) -> Predict:
    def answer(columns: Columns) -> npt.NDArray[np.float64]:
        probabilities = predict(columns)
        if _NAN_ANSWER.get():
            return np.full_like(probabilities, np.nan)
        return probabilities

    return answer


class FaultInjection:
    """ASGI wrapper: a request with FAULT_HEADER fails as it asks (module docstring)."""

    def __init__(self, app: OipApp) -> None:
        self.app = app

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        fault = _fault(scope)
        if fault is None:
            await self.app(scope, receive, send)
        elif fault == NON_FINITE:
            token = _NAN_ANSWER.set(True)
            try:
                await self.app(scope, receive, send)
            finally:
                _NAN_ANSWER.reset(token)
        elif fault == BROKEN_HTTP:
            headers = [(_INVALID_HEADER_NAME, b"1"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
        else:
            error = f"{FAULT_HEADER}: expected one of {', '.join(FAULTS)}"
            body = json.dumps({"error": error}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": body})


def _fault(scope: Message) -> str | None:
    if scope["type"] != "http":
        return None
    for name, value in scope.get("headers") or ():
        if name == FAULT_HEADER.encode():
            return str(value.decode("latin-1").strip().lower())
    return None


def write_training_data(model: CreditModel, directory: Path) -> tuple[Path, Path]:
    """The training CSV (features, prediction, label) and the schema, in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    train = load().train
    p_default = model.predict_proba(train.numeric, train.employment.tolist())[:, 1]
    data = directory / TRAINING_CSV
    write_training_csv(train, p_default, data)
    schema = directory / SCHEMA_FILE.name
    shutil.copyfile(SCHEMA_FILE, schema)
    return data, schema


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m examples.{PROG}", description="demo credit model, KServe v2 REST"
    )
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--write-training-data",
        type=Path,
        metavar="DIR",
        help=f"also write DIR/{TRAINING_CSV} and DIR/{SCHEMA_FILE.name} for the baseline",
    )
    parser.add_argument(
        "--candidate",
        action="store_true",
        help=f"serve the candidate model, version {CANDIDATE_VERSION} (module docstring)",
    )
    args = parser.parse_args(argv)
    data = load()
    if args.candidate:
        version, model = CANDIDATE_VERSION, CreditModel(data.train, CANDIDATE_REGULARIZATION)
    else:
        version, model = MODEL_VERSION, CreditModel(data.train)
    evaluation = model.evaluate(data.held_out)
    _say(
        f"{MODEL_NAME} v{version}: logistic regression trained on {len(data.train)} rows "
        f"in {evaluation.train_seconds:.2f} s; held-out ({evaluation.rows} rows, "
        f"{evaluation.default_rate:.0%} default): accuracy {evaluation.accuracy:.3f}, "
        f"ROC AUC {evaluation.roc_auc:.3f}"
    )
    if args.write_training_data is not None:
        try:
            csv_path, schema_path = write_training_data(model, args.write_training_data)
        except OSError as exc:
            print(f"{PROG}: error: cannot write training data: {exc}", file=sys.stderr)
            return 2
        _say(
            f"wrote {csv_path} and {schema_path}; baseline: mlmon-stats baseline "
            f"--schema {schema_path} --data {csv_path} --out BASELINE.json "
            f"--prediction-column {PREDICTION_COLUMN} --label-column {LABEL_COLUMN}"
        )
    _say(f"serving http://{args.host}:{args.port}/v2/models/{MODEL_NAME}/infer")
    _serve(FaultInjection(OipApp(model_spec(model, version))), args.host, args.port)
    return 0


def _serve(app: FaultInjection, host: str, port: int) -> None:
    import uvicorn

    # uvicorn handles SIGINT/SIGTERM itself: it stops accepting, finishes in-flight requests.
    uvicorn.run(
        app,
        host=host,
        port=port,
        lifespan="off",
        access_log=False,
        server_header=False,
        log_level="warning",
    )


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
