"""``manage.py evaluate_model --data DIR [--version V]``: external validation of a stored version."""

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.management.base import BaseCommand, CommandError

from mlcore.core.dataset import DatasetError, parse_class_aliases
from mlcore.reporting import metrics_lines
from mlcore.selectors import model_version_active, model_version_get
from mlcore.services import evaluation_create_external


class Command(BaseCommand):
    help = "Evaluate a stored model version (the active one by default) on another labelled folder."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # --version names a model version here, so it replaces Django's "show the Django version".
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--data", required=True, help="Folder with one sub-folder per class.")
        parser.add_argument("--version", help="Version name or id (default: the active version).")
        parser.add_argument("--classes", help="Map folders to classes: 'COVID=Chest_COVID;NORMAL=Non-COVID'.")

    def handle(self, *args, **opts):
        try:
            version = model_version_get(name_or_id=opts["version"]) if opts["version"] else model_version_active()
        except ObjectDoesNotExist as error:
            raise CommandError(f"No model version named {opts['version']!r}.") from error
        if version is None:
            raise CommandError("No model version is active; pass --version NAME.")
        try:
            evaluation = evaluation_create_external(
                version=version,
                data_dir=opts["data"],
                class_aliases=parse_class_aliases(opts["classes"]),
                log=self.stdout.write,
            )
        except (DatasetError, ValidationError, ValueError) as error:
            message = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            raise CommandError(message) from error
        self.stdout.write(f"Evaluation {evaluation.pk} of {version.name} on {evaluation.data_dir}:")
        self.stdout.write("\n".join(metrics_lines(evaluation.metrics)))
