"""Signals other apps listen to, so mlcore never imports them."""

from django.dispatch import Signal

# Sent after the transaction that activated a version commits; sender=ModelVersion, version=...
model_version_activated = Signal()
