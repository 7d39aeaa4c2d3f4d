"""``manage.py export_reviewed_scans DEST``: reviewed scans as a folder ``train_model --data`` reads."""

import datetime
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from diagnosis.services.export import ExportError, reviewed_scans, reviewed_scans_export


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError as error:
        raise CommandError(f"--since {text!r} is not a date like 2026-01-31.") from error


class Command(BaseCommand):
    help = (
        "Export the originals of scans reviewed as COVID-19, other pneumonia or normal, with a manifest, "
        "as a training dataset."
    )

    def add_arguments(self, parser):
        parser.add_argument("destination", help="An empty folder (created if missing).")
        parser.add_argument("--since", help="Only scans reviewed on or after this date (YYYY-MM-DD).")
        parser.add_argument("--overwrite", action="store_true", help="Replace an earlier export in the folder.")
        parser.add_argument(
            "--by",
            metavar="EMAIL",
            required=True,
            help="The account that exports: it needs the permission diagnosis.export_dataset, and the audit log "
            "records it as reading the images.",
        )

    def handle(self, *args, **opts):
        exported_by = self._account(opts["by"])
        since = _date(opts["since"]) if opts["since"] else None
        try:
            summary = reviewed_scans_export(
                destination=Path(opts["destination"]),
                exported_by=exported_by,
                scans=reviewed_scans(since=since),
                overwrite=opts["overwrite"],
            )
        except (ExportError, PermissionDenied) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(summary.as_text())
        self.stdout.write("The folder contains patient images: keep it on protected storage.")

    @staticmethod
    def _account(email: str):
        try:
            return get_user_model().objects.get_by_natural_key(email)
        except get_user_model().DoesNotExist as error:
            raise CommandError(f"No account with the e-mail address {email!r}.") from error
