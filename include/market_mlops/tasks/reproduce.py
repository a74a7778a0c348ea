"""The retrain as three file-to-file steps for `dvc repro` (dvc.yaml): features, train, evaluate.

Same code as the `model_retrain` DAG (training_frame, train_ensemble, evaluate_with_baselines), without MLflow or
Airflow, so a model can be rebuilt from a data version on any machine that can pull it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

from market_mlops.config import PipelineConfig, get_config


def build_feature_table(symbol: str, timeframe: str, until: str, data_version: str, out: Path,
                        cfg: PipelineConfig | None = None) -> int:
    """Materialize `data_version` (or the latest logged by `until` when it is 'latest') and write X, y, close, ts."""
    from market_mlops.model.ensemble_model import LAST_KNOWN_LABEL
    from market_mlops.tasks.retrain import resolve_data_version, training_frame

    cfg = cfg or get_config()
    until_ts = dt.datetime.fromisoformat(until).replace(tzinfo=dt.UTC) if "T" not in until else dt.datetime.fromisoformat(until)
    data = resolve_data_version(until_ts, None if data_version == "latest" else data_version, cfg)
    X, y, bars = training_frame(Path(data["path"]), symbol, timeframe, cfg, until_ts, cfg.training.history_years)
    table = X.assign(label=y, close=bars["close"].to_numpy(), ts=bars["ts"].to_numpy(),
                     **{LAST_KNOWN_LABEL: bars[LAST_KNOWN_LABEL].to_numpy(dtype=float)})
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out, index=False)
    (out.with_suffix(".json")).write_text(json.dumps({"symbol": symbol, "timeframe": timeframe, "until": until,
                                                      "data_version": data["md5"], "rows": len(table)}, indent=2))
    return len(table)


def _split(table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features, labels and each row's last known label (the persistence baseline's input)."""
    from market_mlops.model.ensemble_model import LAST_KNOWN_LABEL

    X = table.drop(columns=["label", "close", "ts", LAST_KNOWN_LABEL])
    return X, table["label"].to_numpy().astype(int), table[LAST_KNOWN_LABEL].to_numpy(dtype=float)


EVALUATED = "evaluated"  # the models fitted before the holdout, beside the served (refit) ones


def train_from_table(features: Path, timeframe: str, out: Path, cfg: PipelineConfig | None = None) -> dict:
    from market_mlops.model.ensemble_model import save_base_models
    from market_mlops.model.training import train_ensemble

    cfg = cfg or get_config()
    X, y, last_known = _split(pd.read_parquet(features))
    trained = train_ensemble(X, y, cfg.training, cfg.spec(timeframe).horizon, last_known=last_known)
    meta = {"timeframe": timeframe, "horizon": cfg.spec(timeframe).horizon}
    served = {"calibration": trained.calibration.record(),
              **({"baselines": trained.baselines.record()} if trained.baselines else {})}
    checksums = save_base_models(trained.models, trained.weights, trained.feature_names, out, {**meta, **served})
    if trained.refit:  # the served models learned the holdout: `evaluate` scores the fit that did not
        evaluated = {"calibration": trained.evaluated_calibration.record(),
                     **({"baselines": trained.evaluated_baselines.record()} if trained.evaluated_baselines else {})}
        save_base_models(trained.evaluated_models, trained.weights, trained.evaluated_features, out / EVALUATED,
                         {**meta, **evaluated})
    split = {"train_end": int(trained.train_index[-1]), "holdout": [int(trained.holdout_index[0]), int(trained.holdout_index[-1])]}
    (out / "split.json").write_text(json.dumps(split))
    trained.fold_table.to_csv(out / "fold_table.csv", index=False)
    return checksums


def evaluate_model(features: Path, model_dir: Path, timeframe: str, out: Path, cfg: PipelineConfig | None = None) -> dict:
    from market_mlops.model.ensemble_model import (
        LAST_KNOWN_LABEL,
        BaseModels,
        artifact_files,
        verify_checksums,
    )
    from market_mlops.model.evaluation import evaluate_holdout

    cfg = cfg or get_config()
    horizon = cfg.spec(timeframe).horizon
    table = pd.read_parquet(features)
    X, y, last_known = _split(table)
    split = json.loads((model_dir / "split.json").read_text())
    if (model_dir / EVALUATED).is_dir():  # a refit model: its holdout figures are the evaluated fit's
        model_dir = model_dir / EVALUATED
    paths = {k: str(model_dir / f) for k, f in artifact_files(model_dir).items()}
    verify_checksums(paths, json.loads((model_dir / "checksums.json").read_text()))
    models = BaseModels(paths)
    hold = np.arange(split["holdout"][0], split["holdout"][1] + 1)
    frame = X.iloc[hold].assign(**{LAST_KNOWN_LABEL: last_known[hold]})
    metrics = evaluate_holdout(y, models.predict_proba(frame), table["close"].to_numpy(dtype=float), hold,
                               np.arange(split["train_end"] + 1), horizon, cfg.spec(timeframe).bars_per_year,
                               last_known)
    flat = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    out.write_text(json.dumps(flat, indent=2, sort_keys=True))
    return flat
