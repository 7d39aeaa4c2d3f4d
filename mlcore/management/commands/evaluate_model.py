"""``manage.py evaluate_model --data DIR [--version V] [--local]``: external or local validation of a version."""

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from mlcore.core.dataset import DatasetError, data_folders, parse_class_aliases
from mlcore.management.versions import VersionCommand
from mlcore.models import Evaluation
from mlcore.reporting import metrics_lines, refusal_lines
from mlcore.services import evaluation_create_external, evaluation_create_refusals


class Command(VersionCommand):
    help = "Evaluate a stored model version (the active one by default) on another labelled folder."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--data",
            action="append",
            required=True,
            help="Folder with one sub-folder per class (any of the version's classes); repeat to merge several.",
        )
        parser.add_argument("--classes", help="Map folders to classes: 'COVID=Chest_COVID;NORMAL=Non-COVID'.")
        parser.add_argument(
            "--refusals",
            action="store_true",
            help="The folder holds images the model must refuse (any sub-folder names, e.g. CT/, LATERAL/): "
            "report the share the input gate refuses per sub-folder.",
        )
        parser.add_argument(
            "--local",
            action="store_true",
            help="The folder holds this hospital's own labelled images: scan pages quote this evaluation first.",
        )

    def handle(self, *args, **opts):
        version = self.model_version(opts["version"])
        if opts["refusals"]:
            folders = [opts["data"]] if isinstance(opts["data"], str) else opts["data"]
            if len(folders) > 1:
                raise CommandError("--refusals takes one folder (--data once).")
            self._refusals(version, folders[0])
            return
        try:
            evaluation = evaluation_create_external(
                version=version,
                data_dir=data_folders(opts["data"]),
                kind=Evaluation.Kind.LOCAL if opts["local"] else Evaluation.Kind.EXTERNAL,
                class_aliases=parse_class_aliases(opts["classes"]),
                log=self.stdout.write,
            )
        except (DatasetError, ValidationError, ValueError) as error:
            message = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            raise CommandError(message) from error
        self.stdout.write(
            f"Evaluation {evaluation.pk} of {version.name} on {evaluation.data_dir} ({evaluation.get_kind_display()}):"
        )
        self.stdout.write("\n".join(metrics_lines(evaluation.metrics)))

    def _refusals(self, version, data_dir):
        try:
            evaluation = evaluation_create_refusals(version=version, data_dir=data_dir, log=self.stdout.write)
        except (DatasetError, ValidationError, ValueError) as error:
            message = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            raise CommandError(message) from error
        self.stdout.write(f"Input gate of {version.name} on {evaluation.data_dir} (evaluation {evaluation.pk}):")
        self.stdout.write("\n".join(refusal_lines(evaluation.metrics)))
