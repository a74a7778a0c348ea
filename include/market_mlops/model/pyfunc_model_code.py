"""The pyfunc ensemble as MLflow "models from code": MLflow runs this file to build the model at load time.

Logging a code file instead of a cloudpickled object keeps the model readable and loadable across Python and
cloudpickle versions; the weights and base models are the run's artifacts, checked by sha256 in `load_context`.
"""

from mlflow.models import set_model

from market_mlops.model.ensemble_model import EnsembleModel

set_model(EnsembleModel())
