"""churnclv: customer churn and lifetime-value prediction.

Point-in-time RFM and engagement features (DuckDB), LightGBM churn and value
models tracked in MLflow, policy-driven decisions (tiers, stages, segments,
retention actions) and a BentoML service.
"""

from churnclv._errors import ChurnclvError, InputError

__all__ = ["ChurnclvError", "InputError", "__version__"]

__version__ = "0.1.0"
