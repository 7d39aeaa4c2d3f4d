"""What the commands that act on a stored model version share: ``--version`` and its lookup."""

from django.core.exceptions import ObjectDoesNotExist
from django.core.management.base import BaseCommand, CommandError

from mlcore.models import ModelVersion
from mlcore.selectors import model_version_active, model_version_get


class VersionCommand(BaseCommand):
    """``--version NAME|ID`` names a model version (the active one by default), not Django's version."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--version", help="Model version name or id (default: the active version).")

    def model_version(self, name_or_id: str | None) -> ModelVersion:
        try:
            version = model_version_get(name_or_id=name_or_id) if name_or_id else model_version_active()
        except ObjectDoesNotExist as error:
            raise CommandError(f"No model version named {name_or_id!r}.") from error
        if version is None:
            raise CommandError("No model version is active; pass --version NAME.")
        return version
