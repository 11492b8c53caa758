"""One model per file; each registers itself with ``src.common.recommender.register``."""
from src.common.recommender import get_model_class, model_names  # noqa: F401
