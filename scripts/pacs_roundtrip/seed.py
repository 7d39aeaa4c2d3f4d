"""An active InceptionV3 version with random weights for the round-trip measurement (a reading costs the same
whatever the weights learned). Run by run.py with its settings in the environment."""

import os
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import django

django.setup()

from django.core.files.base import ContentFile  # noqa: E402

from mlcore.core.model import ModelConfig, build_network  # noqa: E402
from mlcore.models import ModelVersion  # noqa: E402
from mlcore.services import model_version_activate  # noqa: E402


def seed(*, image_size: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "model.keras"
        build_network(ModelConfig(image_size=image_size)).model.save(path)
        version = ModelVersion.objects.create(
            name="roundtrip-random-weights",
            status=ModelVersion.Status.SUCCEEDED,
            class_names=["COVID", "NORMAL"],
            positive_class="COVID",
            threshold=0.5,
            preprocessing={"image_size": image_size, "scaling": "unit"},
        )
        version.model_file.save("model.keras", ContentFile(path.read_bytes()))
    model_version_activate(version=version)


if __name__ == "__main__":
    seed(image_size=int(os.environ["ROUNDTRIP_IMAGE_SIZE"]))
