"""Experiment tracking with MLflow (`train --mlflow`, the optional extra ``roadseg[mlflow]``): the
resolved settings as parameters, every epoch's metrics, and at the end the run's best.pt, last
curves.png, metrics.csv and config.yaml as artifacts.

The store is `MLFLOW_TRACKING_URI` when set, else a local SQLite store inside the run folder
(RUN/mlflow.db, artifacts in RUN/mlartifacts: MLflow 3 keeps its plain-file store only in maintenance
mode). The MLflow run's id is kept in RUN/mlflow.json, so `--resume` goes on logging into the same
run. Everything goes through an explicit `MlflowClient`: no process-wide MLflow state is set.

Usage::

    tracker = MlflowTracker(run_dir, settings)      # checks the extra is installed; writes nothing yet
    tracker.epoch(row)                              # after each epoch (creates the run the first time)
    tracker.finish("FINISHED")                      # or "KILLED" / "FAILED"
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..data.imageio import atomic_write
from ..errors import require

EXPERIMENT = "roadseg"
RUN_FILE = "mlflow.json"
ARTIFACTS = ("best.pt", "curves.png", "metrics.csv", "config.yaml")


def local_uri(out: Path) -> str:
    """The default store: SQLite in the run folder."""
    return f"sqlite:///{(out / 'mlflow.db').resolve()}"


class MlflowTracker:
    """Logs one roadseg run into one MLflow run."""

    def __init__(self, out: Path, settings: dict[str, Any]) -> None:
        self.mlflow = require("mlflow", "mlflow", "--mlflow")
        self.out, self.settings = Path(out), settings
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or local_uri(self.out)
        self.client: Any = None
        self.run_id: str | None = None

    def _start(self) -> None:
        from mlflow.tracking import MlflowClient
        saved = self.out / RUN_FILE
        self.client = MlflowClient(tracking_uri=self.uri)
        if saved.exists():  # a resumed run: go on in the same MLflow run
            record = json.loads(saved.read_text())
            if record.get("tracking_uri") == self.uri:
                self.run_id = record["run_id"]
                self.client.update_run(self.run_id, status="RUNNING")
                return
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            location = None if os.environ.get("MLFLOW_TRACKING_URI") else (self.out / "mlartifacts").resolve().as_uri()
            experiment_id = self.client.create_experiment(name, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
        run = self.client.create_run(experiment_id, run_name=self.out.name, tags={"roadseg.run_dir": str(self.out.resolve())})
        self.run_id = run.info.run_id
        from mlflow.entities import Param
        params = [Param(k, str(v)[:500]) for k, v in sorted(self.settings.items())]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters a call
            self.client.log_batch(self.run_id, params=params[start:start + 100])
        record = json.dumps({"tracking_uri": self.uri, "run_id": self.run_id})
        atomic_write(saved, lambda tmp: tmp.write_text(record))

    def epoch(self, row: dict[str, Any]) -> None:
        """Log one epoch's numbers at step = epoch."""
        if self.client is None:
            self._start()
        from mlflow.entities import Metric
        import time
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, int(row["epoch"])) for k, v in row.items()
                   if k != "epoch" and isinstance(v, (int, float))]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, status: str) -> None:
        """Upload the run's files and close the MLflow run with `status` (FINISHED, KILLED, FAILED)."""
        if self.client is None:
            return
        for name in ARTIFACTS:
            if (self.out / name).is_file():
                self.client.log_artifact(self.run_id, str(self.out / name))
        self.client.set_terminated(self.run_id, status=status)
