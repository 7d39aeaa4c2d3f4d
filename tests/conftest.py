"""Fixtures shared by the whole suite."""

import fcntl
import functools
import os

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile

from accounts.models import User
from mlcore.models import ModelVersion
from mlcore.services import model_version_activate

DOCTOR_PASSWORD = "Xray-Triage-2026!"


@pytest.fixture
def make_doctor(db):
    def make(*, email="doctor@hospital.example", active=True, **fields) -> User:
        defaults = {
            "full_name": "Ada Lovelace",
            "licence_number": "GMC-1234567",
            "hospital": "St Mary's Hospital",
        }
        return User.objects.create_user(email=email, password=DOCTOR_PASSWORD, is_active=active, **(defaults | fields))

    return make


@pytest.fixture
def doctor(make_doctor) -> User:
    return make_doctor()


@pytest.fixture
def staff_user(db) -> User:
    return User.objects.create_superuser(
        email="staff@hospital.example", password=DOCTOR_PASSWORD, full_name="Grace Hopper"
    )


@pytest.fixture
def make_staff(db):
    """A staff account (admin sign-in, no superuser) holding exactly the named permissions ("app.codename")."""

    def make(*permissions: str, email="clerk@hospital.example") -> User:
        user = User.objects.create_user(
            email=email, password=DOCTOR_PASSWORD, full_name="Staff Member", is_active=True, is_staff=True
        )
        for name in permissions:
            app_label, codename = name.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return User.objects.get(pk=user.pk)  # a fresh instance: no permission cache from before the grants

    return make


@pytest.fixture
def doctor_client(client, doctor):
    client.force_login(doctor)
    return client


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def browser():
    from tests.browser import start_chromium

    driver = start_chromium()
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


TINY = {"image_size": 75, "scaling": "unit"}


def once_per_run(name: str):
    """For a session fixture that returns bytes (and takes tmp_path_factory): made once per test run rather
    than once per pytest-xdist process. The first process to need them writes them into the run's shared
    temporary folder; the others wait for it and read them."""

    def decorate(fixture):
        @functools.wraps(fixture)
        def shared(**fixtures) -> bytes:
            root = fixtures["tmp_path_factory"].getbasetemp()
            if os.environ.get("PYTEST_XDIST_WORKER"):
                root = root.parent
            path = root / name
            with (root / f"{name}.lock").open("w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not path.is_file():
                    path.write_bytes(fixture(**fixtures))
            return path.read_bytes()

        return shared

    return decorate


@pytest.fixture(scope="session")
@once_per_run("tiny-model.keras")
def tiny_model_bytes(tmp_path_factory) -> bytes:
    """An untrained network is enough to exercise inference: readings are valid, not meaningful. Seeded,
    so that figures computed from it (the input gate's limit) are the same in every run."""
    import keras

    from mlcore.core.model import ModelConfig, build_network

    keras.utils.set_random_seed(20261125)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_network(ModelConfig(image_size=TINY["image_size"])).model.save(path)
    return path.read_bytes()


@pytest.fixture(scope="session")
@once_per_run("tiny-three-class-model.keras")
def tiny_three_class_model_bytes(tmp_path_factory) -> bytes:
    """The tiny network with three outputs: COVID, OTHER_PNEUMONIA and NORMAL."""
    import keras

    from mlcore.core.model import ModelConfig, build_network

    keras.utils.set_random_seed(20261205)
    path = tmp_path_factory.mktemp("model-3") / "model.keras"
    build_network(ModelConfig(image_size=TINY["image_size"], num_classes=3)).model.save(path)
    return path.read_bytes()


TWO_CLASSES = ["COVID", "NORMAL"]
THREE_CLASSES = ["COVID", "OTHER_PNEUMONIA", "NORMAL"]


@pytest.fixture
def make_version(db, tiny_model_bytes, request):
    """A tiny version, two-class (COVID/NORMAL) unless told ``class_names=THREE_CLASSES``, with the legacy
    intensity rule unless given another ``preprocessing``."""

    def make(name="tiny-v1", *, activate=True, class_names=TWO_CLASSES, preprocessing=TINY) -> ModelVersion:
        version = ModelVersion.objects.create(
            name=name,
            status=ModelVersion.Status.SUCCEEDED,
            class_names=list(class_names),
            positive_class="COVID",
            threshold=0.5,
            preprocessing=preprocessing,
        )
        model_bytes = (
            tiny_model_bytes if len(class_names) == 2 else request.getfixturevalue("tiny_three_class_model_bytes")
        )
        version.model_file.save("model.keras", ContentFile(model_bytes))
        if activate:
            model_version_activate(version=version)
        return version

    return make


@pytest.fixture(scope="session")
@once_per_run("tiny-gate.npz")
def tiny_gate_bytes(tiny_model_bytes, tmp_path_factory) -> bytes:
    """The input gate of the tiny network, fitted as training fits it, on generated chest images."""
    return _tiny_gate(tiny_model_bytes, tmp_path_factory, view_check=False)


@pytest.fixture(scope="session")
@once_per_run("tiny-view-gate.npz")
def tiny_view_gate_bytes(tiny_model_bytes, tmp_path_factory) -> bytes:
    """The same gate with a view check, fitted on generated lateral views and CT slices to refuse."""
    return _tiny_gate(tiny_model_bytes, tmp_path_factory, view_check=True)


def _tiny_gate(tiny_model_bytes, tmp_path_factory, *, view_check: bool) -> bytes:
    import keras
    import numpy as np

    from mlcore.core.gate import FeatureGate, gate_features, view_features
    from mlcore.core.gradcam import readout_function, run_readout
    from mlcore.core.preprocessing import PreprocessingSpec, preprocess
    from tests.mlcore.synthetic import ct_slice, lateral_like, synthetic_image

    folder = tmp_path_factory.mktemp("gate")
    (folder / "model.keras").write_bytes(tiny_model_bytes)
    model = keras.saving.load_model(str(folder / "model.keras"), compile=False)
    readout = readout_function(model, positive_index=0, image_size=TINY["image_size"])
    spec = PreprocessingSpec.from_stored(TINY)

    def split(n, seed):
        rng = np.random.default_rng(seed)
        labels = np.array(["COVID" if i % 2 else "NORMAL" for i in range(n)])
        images = np.stack([preprocess(synthetic_image(label, rng), spec) for label in labels])
        return gate_features(run_readout(readout, images)[1], images), labels

    train, labels = split(160, seed=100)
    validation, _ = split(80, seed=101)
    refuse = None
    if view_check:
        rng = np.random.default_rng(102)
        refuse = {
            kind: view_features(np.stack([preprocess(make(rng), spec) for _ in range(12)]))
            for kind, make in (("LATERAL", lateral_like), ("CT", ct_slice))
        }
    gate = FeatureGate.fit(train=train, train_labels=labels, validation=validation, quantile=0.995, refuse=refuse)
    gate.save(folder / "gate.npz")
    return (folder / "gate.npz").read_bytes()


@pytest.fixture
def make_gated_version(make_version, tiny_gate_bytes, request):
    """A version with a stored input gate (with a view check on request), a calibration temperature and an
    indeterminate band."""

    def make(name="gated-v1", *, activate=True, band=(0.45, 0.55), view_check=False) -> ModelVersion:
        version = make_version(name, activate=False)
        version.temperature = 2.0
        version.indeterminate_low, version.indeterminate_high = band
        gate = request.getfixturevalue("tiny_view_gate_bytes") if view_check else tiny_gate_bytes
        version.gate_file.save("gate.npz", ContentFile(gate), save=False)
        version.save()
        if activate:
            model_version_activate(version=version)
        return version

    return make


@pytest.fixture(autouse=True)
def _stored_files_removed():
    """Files a test stores (a model version is ~90 MB) go with its rolled-back rows, so a run of the suite
    does not fill the disk; only the test settings' own folders are ever emptied."""
    yield
    import shutil
    from pathlib import Path

    from django.conf import settings

    for folder in (Path(str(settings.MODEL_STORE_DIR)), Path(str(settings.MEDIA_ROOT))):
        if folder.name in ("test-models", "test-media"):
            shutil.rmtree(folder, ignore_errors=True)
