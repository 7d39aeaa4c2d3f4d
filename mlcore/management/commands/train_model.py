"""``manage.py train_model --data DIR``: train, evaluate and store a new model version."""

import shlex
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from mlcore.core.calibration import BAND_MAX_ERROR
from mlcore.core.classes import DEFAULT_POSITIVE_CLASS
from mlcore.core.dataset import DUPLICATE_DISTANCE, DatasetError, PatientRule, data_folders, parse_class_aliases
from mlcore.core.gate import DEFAULT_QUANTILE
from mlcore.core.model import ModelConfig, WeightsError
from mlcore.core.pipeline import RunOptions
from mlcore.core.preprocessing import PreprocessingSpec
from mlcore.core.training import AugmentationConfig, TrainingConfig
from mlcore.reporting import metrics_lines, shortcut_audit_of, shortcut_lines
from mlcore.services import model_version_queue, model_version_train


class Command(BaseCommand):
    help = "Train InceptionV3 on a folder of labelled chest X-rays and store an evaluated model version."

    def add_arguments(self, parser):
        data = parser.add_argument_group("data")
        data.add_argument(
            "--data",
            action="append",
            required=True,
            help="Folder with one sub-folder per class (COVID, OTHER_PNEUMONIA, NORMAL: at least two in all); "
            "repeat to merge several folders.",
        )
        data.add_argument(
            "--classes", help="More folder names for classes: 'COVID=Positives;OTHER_PNEUMONIA=Pneumonie'."
        )
        data.add_argument("--positive-class", default=DEFAULT_POSITIVE_CLASS)
        data.add_argument(
            "--allow-unknown-patients",
            action="store_true",
            help="Train on images without a patient id in manifest.csv: a DICOM's PatientID stands in, "
            "every other such image is its own patient (and the run counts them).",
        )
        data.add_argument(
            "--duplicate-distance",
            type=int,
            default=DUPLICATE_DISTANCE,
            help="Images whose 64-bit perceptual hashes differ in at most this many bits join one patient's "
            "split; -1 turns the check off.",
        )
        data.add_argument(
            "--image-size", type=int, default=128, help="Square input size (>= 75); 128 trains in < 30 min on 2 cores."
        )
        data.add_argument(
            "--clahe",
            action="store_true",
            help="Equalise contrast locally (CLAHE) after the intensity window; stored with the version.",
        )
        data.add_argument("--validation-fraction", type=float, default=0.15)
        data.add_argument("--test-fraction", type=float, default=0.15)
        model = parser.add_argument_group("model")
        model.add_argument("--weights", default="none", help="imagenet | none | PATH to a weights file.")
        model.add_argument(
            "--head",
            choices=["auto", "gap", "flatten"],
            default="auto",
            help="auto: global average pooling from scratch, Flatten (the original's) when pre-trained.",
        )
        model.add_argument("--dropout", type=float, default=0.5)
        model.add_argument(
            "--bn-momentum",
            type=float,
            default=0.9,
            help="BatchNorm momentum (Keras' 0.99 does not settle on small data); 0 keeps Keras' value.",
        )
        training = parser.add_argument_group("training")
        training.add_argument("--epochs", type=int, default=12)
        training.add_argument("--batch-size", type=int, default=32)
        training.add_argument("--learning-rate", type=float, default=1e-3)
        training.add_argument("--optimizer", choices=["adam", "adamw"], default="adam")
        training.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW's decoupled weight decay.")
        training.add_argument(
            "--schedule",
            choices=["constant", "cosine"],
            default="constant",
            help="cosine: linear warm-up over --warmup-epochs, then cosine decay to zero.",
        )
        training.add_argument("--warmup-epochs", type=int, default=0)
        training.add_argument("--label-smoothing", type=float, default=0.0)
        training.add_argument(
            "--balance",
            choices=["class", "source", "none"],
            default="class",
            help="Sample weights: classes equal, each source/class cell equal (capped), or none.",
        )
        training.add_argument("--fine-tune-blocks", type=int, default=0, help="Top Inception blocks to fine-tune.")
        training.add_argument("--fine-tune-epochs", type=int, default=10)
        training.add_argument("--fine-tune-learning-rate", type=float, default=1e-5)
        training.add_argument("--patience", type=int, default=5, help="Early-stopping patience in epochs.")
        training.add_argument("--monitor", choices=["val_auc", "val_loss"], default="val_auc")
        training.add_argument("--seed", type=int, default=42)
        training.add_argument(
            "--split-seed",
            type=int,
            help="Draw the patient split with this seed instead of --seed: runs that share it share their split "
            "and differ only in initial weights, shuffling and augmentation.",
        )
        training.add_argument(
            "--members",
            type=int,
            default=3,
            help="Networks trained on the same split (seeds --seed, --seed+100, ...) whose mean probabilities are "
            "the reading; 1 trains a single network.",
        )
        training.add_argument(
            "--no-feature-cache",
            action="store_true",
            help="Run the frozen base every epoch in the head phase (slow; for comparison).",
        )
        augmentation = parser.add_argument_group("augmentation (training split only)")
        augmentation.add_argument("--no-hflip", action="store_true")
        augmentation.add_argument("--vflip", action="store_true", help="Also flip upside down (off by default).")
        augmentation.add_argument("--rotation", type=float, default=15.0, help="Degrees; 0 turns it off.")
        augmentation.add_argument("--zoom", type=float, default=0.0)
        augmentation.add_argument("--shift", type=float, default=0.0, help="Translate by up to this share.")
        augmentation.add_argument("--contrast", type=float, default=0.0)
        augmentation.add_argument("--gamma", type=float, default=0.0, help="Gamma in [1/(1+g), 1+g].")
        augmentation.add_argument("--blur", type=float, default=0.0, help="Gaussian blur up to this sigma (px).")
        augmentation.add_argument("--noise", type=float, default=0.0, help="Gaussian noise standard deviation.")
        trust = parser.add_argument_group("reliability (fitted on the validation split)")
        trust.add_argument(
            "--gate-quantile",
            type=float,
            default=DEFAULT_QUANTILE,
            help="Share of validation images the input gate must accept; the rest sets its limit.",
        )
        trust.add_argument(
            "--band-max-error",
            type=float,
            default=BAND_MAX_ERROR,
            help="Validation error rate that makes readings near the threshold indeterminate.",
        )
        trust.add_argument(
            "--refuse-examples",
            help="A folder of images the gate must refuse, one sub-folder per kind (e.g. CT/, LATERAL/): fits the "
            "view check (frontal vs these kinds) that catches lateral views without a DICOM header.",
        )
        store = parser.add_argument_group("version")
        store.add_argument("--name", help="Version name (default v<N>-<timestamp>).")
        store.add_argument("--activate", action="store_true", help="Make the new version active if it succeeds.")
        store.add_argument(
            "--queue",
            action="store_true",
            help="Do not train here: hand the run to a training worker (celery worker -Q training).",
        )

    def handle(self, *args, **opts):
        pretrained = opts["weights"] != "none"
        try:
            options = RunOptions(
                model=ModelConfig(
                    image_size=opts["image_size"],
                    weights=opts["weights"],
                    head=opts["head"] if opts["head"] != "auto" else ("flatten" if pretrained else "gap"),
                    dropout=opts["dropout"],
                    batchnorm_momentum=opts["bn_momentum"] or None,
                ),
                training=TrainingConfig(
                    epochs=opts["epochs"],
                    fine_tune_epochs=opts["fine_tune_epochs"],
                    batch_size=opts["batch_size"],
                    learning_rate=opts["learning_rate"],
                    fine_tune_learning_rate=opts["fine_tune_learning_rate"],
                    fine_tune_blocks=opts["fine_tune_blocks"],
                    patience=opts["patience"],
                    monitor=opts["monitor"],
                    optimizer=opts["optimizer"],
                    weight_decay=opts["weight_decay"],
                    schedule=opts["schedule"],
                    warmup_epochs=opts["warmup_epochs"],
                    label_smoothing=opts["label_smoothing"],
                    balance=opts["balance"],
                    cache_features=not opts["no_feature_cache"],
                    seed=opts["seed"],
                    augmentation=AugmentationConfig(
                        horizontal_flip=not opts["no_hflip"],
                        vertical_flip=opts["vflip"],
                        rotation_degrees=opts["rotation"],
                        zoom=opts["zoom"],
                        shift=opts["shift"],
                        contrast=opts["contrast"],
                        gamma=opts["gamma"],
                        blur_sigma=opts["blur"],
                        noise=opts["noise"],
                    ),
                ),
                preprocessing=PreprocessingSpec.current(
                    image_size=opts["image_size"],
                    scaling="inception" if pretrained else "unit",
                    equalization="clahe" if opts["clahe"] else "none",
                ),
                validation_fraction=opts["validation_fraction"],
                test_fraction=opts["test_fraction"],
                positive_class=opts["positive_class"],
                class_aliases=parse_class_aliases(opts["classes"]),
                patients=PatientRule(
                    allow_unknown=opts["allow_unknown_patients"],
                    duplicate_distance=opts["duplicate_distance"] if opts["duplicate_distance"] >= 0 else None,
                ),
                gate_quantile=opts["gate_quantile"],
                band_max_error=opts["band_max_error"],
                refuse_examples=opts["refuse_examples"],
                split_seed=opts["split_seed"],
                members=opts["members"],
            )
            if opts["queue"]:
                self._queue(opts, options)
                return
            version = model_version_train(
                data_dir=data_folders(opts["data"]),
                options=options,
                name=opts["name"],
                command=self._command_line(opts),
                activate=opts["activate"],
                log=self.stdout.write,
                verbose=1 if opts["verbosity"] >= 1 else 0,
            )
        except (DatasetError, WeightsError, ValidationError, ValueError) as error:
            raise CommandError(_message(error)) from error
        except KeyboardInterrupt as error:
            raise CommandError("Interrupted before training produced a checkpoint.") from error

        self.stdout.write(self._summary(version))
        if version.status != version.Status.SUCCEEDED:
            raise CommandError(f"Version {version.name} is {version.status}: {version.error}")

    def _queue(self, opts, options: RunOptions) -> None:
        """A queued version row; a training worker takes it with the same options, as typed values."""
        from mlcore.tasks import TRAINING_QUEUE

        version = model_version_queue(
            data_dir=opts["data"],
            options=options,
            name=opts["name"],
            command=self._command_line(opts),
            activate=opts["activate"],
        )
        self.stdout.write(
            f"Queued version {version.name} on the {TRAINING_QUEUE!r} queue.\n"
            "Follow it in the admin (Model versions) once a training worker picks it up."
        )

    def _command_line(self, opts) -> str:
        if getattr(self, "_called_from_command_line", False):
            return shlex.join(["manage.py", *sys.argv[1:]])
        chosen = {k: v for k, v in opts.items() if k not in ("stdout", "stderr", "skip_checks")}
        return f"call_command('train_model', **{chosen!r})"

    def _summary(self, version) -> str:
        from mlcore.selectors import model_version_active

        metrics = version.metrics
        active = model_version_active()
        lines = [
            f"Version {version.name}: {version.status} in {version.wall_time_seconds:.0f} s of training "
            f"({version.images_per_second:.1f} images/s); "
            f"{'active' if active and active.pk == version.pk else 'not active'}.",
        ]
        if metrics:
            lines.append("Test split:")
            lines.extend(metrics_lines(metrics))
        audit = shortcut_audit_of(version)
        if audit:
            lines.append("Shortcut audit (the same split, thumbnails only):")
            lines.extend(shortcut_lines(audit))
        return "\n".join(lines)


def _message(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    return str(error)
