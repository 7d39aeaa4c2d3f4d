"""``manage.py evaluate_model --data DIR [--version V] [--local]``: external or local validation of a version."""

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from mlcore.core.dataset import DatasetError, parse_class_aliases
from mlcore.management.versions import VersionCommand
from mlcore.models import Evaluation
from mlcore.reporting import metrics_lines
from mlcore.services import evaluation_create_external


class Command(VersionCommand):
    help = "Evaluate a stored model version (the active one by default) on another labelled folder."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--data", required=True, help="Folder with one sub-folder per class.")
        parser.add_argument("--classes", help="Map folders to classes: 'COVID=Chest_COVID;NORMAL=Non-COVID'.")
        parser.add_argument(
            "--local",
            action="store_true",
            help="The folder holds this hospital's own labelled images: scan pages quote this evaluation first.",
        )

    def handle(self, *args, **opts):
        version = self.model_version(opts["version"])
        try:
            evaluation = evaluation_create_external(
                version=version,
                data_dir=opts["data"],
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
