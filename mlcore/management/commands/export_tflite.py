"""``manage.py export_tflite --data DIR``: a checked TensorFlow Lite copy of a model version."""

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from mlcore.core.dataset import DatasetError, parse_class_aliases
from mlcore.core.tflite import QUANTIZATIONS
from mlcore.management.versions import VersionCommand
from mlcore.services import tflite_export_create


class Command(VersionCommand):
    help = (
        "Export a model version (the active one by default) to TFLite and measure its agreement with the "
        "Keras model on a labelled folder; only a verified export is used by workers "
        "(COVIDXRAY_INFERENCE_ENGINE=tflite)."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--data", required=True, help="Labelled folder to check agreement on.")
        parser.add_argument("--quantization", choices=QUANTIZATIONS, action="append", help="Repeatable.")
        parser.add_argument("--max-auc-difference", type=float, default=0.01)
        parser.add_argument("--min-label-agreement", type=float, default=0.98)
        parser.add_argument("--classes", help="Map folders to classes: 'COVID=Chest_COVID;NORMAL=Non-COVID'.")

    def handle(self, *args, **opts):
        version = self.model_version(opts["version"])
        for quantization in opts["quantization"] or ["float32", "float16", "int8"]:
            try:
                export = tflite_export_create(
                    version=version,
                    data_dir=opts["data"],
                    quantization=quantization,
                    max_auc_difference=opts["max_auc_difference"],
                    min_label_agreement=opts["min_label_agreement"],
                    class_aliases=parse_class_aliases(opts["classes"]),
                    log=self.stdout.write,
                )
            except (DatasetError, ValidationError, ValueError) as error:
                message = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
                raise CommandError(message) from error
            measured = export.agreement
            auc = (
                f", AUC {measured['auc_reference']:.4f} -> {measured['auc_candidate']:.4f}"
                if "auc_reference" in measured
                else ""
            )
            self.stdout.write(
                f"{version.name} {quantization}: {'verified' if export.verified else 'NOT verified'}; "
                f"label agreement {measured['label_agreement']:.4f}, max |dp| {measured['max_abs_difference']:.4f}"
                f"{auc} on {measured['images']} images"
            )
