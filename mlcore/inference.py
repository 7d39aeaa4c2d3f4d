"""The active model version as a loaded predictor, one per worker process, reloaded when it changes."""

from __future__ import annotations

import logging
import threading

from django.conf import settings

from mlcore.core.predictor import Predictor
from mlcore.core.preprocessing import PreprocessingSpec
from mlcore.core.tflite import TFLitePredictor
from mlcore.models import ModelVersion
from mlcore.selectors import model_version_active, model_version_reliability
from mlcore.services import local_model_file

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded: dict[str, object] = {"key": None, "predictor": None}
load_count = 0  # how many times this process loaded a model (the tests read it)


def predictor_for(version: ModelVersion) -> Predictor:
    """The predictor of this version, loading it only if this process holds another one."""
    global load_count
    # The row's creation time tells a version from an earlier one that had the same id (a database restored,
    # or a test's rolled back); a gate fitted anew is loaded too.
    key = (version.pk, version.created_at, version.model_file.name, version.gate_file.name)
    with _lock:
        if _loaded["key"] != key:
            with local_model_file(version) as path:
                predictor = Predictor(
                    path,
                    class_names=version.class_names,
                    positive_class=version.positive_class,
                    threshold=version.threshold,
                    preprocessing=PreprocessingSpec.from_stored(version.preprocessing),
                    reliability=model_version_reliability(version=version),
                    reuse=_loaded["predictor"],
                )
            fast = verified_tflite(version)
            if fast is not None:
                predictor.use_fast_path(fast)
            _loaded.update(key=key, predictor=predictor)
            load_count += 1
            logger.info(
                "Loaded model version %s (load %d in this process%s)",
                version.name,
                load_count,
                ", network already held" if predictor.network_reused else "",
            )
        return _loaded["predictor"]


def verified_tflite(version: ModelVersion):
    """The version's verified TFLite export of the configured quantization, if the engine is tflite."""
    if settings.INFERENCE_ENGINE != "tflite":
        return None
    export = version.tflite_exports.filter(quantization=settings.TFLITE_QUANTIZATION, verified=True).first()
    if export is None:
        logger.warning("No verified %s TFLite export of %s: using Keras.", settings.TFLITE_QUANTIZATION, version)
        return None
    with export.model_file.open("rb") as handle:
        return TFLitePredictor(handle.read(), threads=settings.TFLITE_THREADS)


def active_predictor() -> tuple[ModelVersion, Predictor] | tuple[None, None]:
    version = model_version_active()
    if version is None:
        return None, None
    return version, predictor_for(version)
