"""
### Model rollback (manual)

Moves the `champion` alias of one registered model back to the version it replaced, or to a named version. The
old champion keeps its artifacts; the move is written to the alias audit trail and announced on Slack. Same as
`market-mlops rollback --symbol S --timeframe TF [--to-version N]`.

**Params**: `symbol`, `timeframe` (defaults: the universe's first; a model page's "roll back" shows the values for
its model), `horizon` (empty = the timeframe's main horizon; the choices are the configured horizons), `to_version`
(empty = the version the current champion replaced), `reason` (recorded in the audit trail and the alert), `force`
(off: a version that never passed the gate nor served is refused).

**When it fails**
- "has no champion" / "replaced no earlier version": name the version to go back to in `to_version`.
- "never passed the gate": that version never served; pick one that did, or tick `force` and give a `reason`.
- The MLflow tracking server is unreachable: check `MLOPS__STORAGE__MLFLOW_TRACKING_URI` and retry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Param, dag, task

from market_mlops.orchestration import (
    configured_horizons,
    configured_start_date,
    configured_symbols,
    configured_timeframes,
    default_args,
    fail_now_when_permanent,
)

if TYPE_CHECKING:  # types only: an annotation Airflow can resolve as a dict would push every key as an XCom
    from market_mlops.contracts import RollbackResult


@dag(
    dag_id="model_rollback",
    schedule=None,
    start_date=configured_start_date(),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=1, retry_minutes=1),
    tags=["registry", "mlflow", "manual"],
    doc_md=__doc__,
    params={
        "symbol": Param(configured_symbols()[0], type="string", enum=configured_symbols(), description="Symbol of the model"),
        "timeframe": Param(configured_timeframes()[0], type="string", enum=configured_timeframes(),
                           description="Timeframe of the model"),
        "horizon": Param(None, type=["null", "integer"], enum=[None, *configured_horizons()],
                         description="Horizon of the model in bars (empty = the timeframe's main horizon; the others' "
                                     "models are <SYMBOL>-<tf>-h<N>-direction)"),
        "to_version": Param(None, type=["null", "string"], pattern="^[0-9]+$",
                            description="Version number to restore (empty = the version the champion replaced). The "
                                        "versions: `market-mlops models`, or MLflow > Models > <SYMBOL>-<tf>-direction"),
        "reason": Param(None, type=["null", "string"], description="Why you roll back: recorded in the audit trail "
                        "(alias_moves) and the alert"),
        "force": Param(False, type="boolean", description="Move to a version that never passed the gate nor served "
                       "(needs a reason; the audit trail records the override). Off: such a rollback is refused "
                       "with the version's holdout against the baselines"),
    },
)
def model_rollback():
    @task
    @fail_now_when_permanent
    def rollback_champion(params=None) -> RollbackResult:
        from market_mlops.tasks.promotion import rollback_model

        return rollback_model(params["symbol"], params["timeframe"], params["to_version"] or None,
                              horizon=params.get("horizon") or None, reason=params.get("reason"),
                              force=bool(params.get("force")))

    rollback_champion()


model_rollback()
