"""Signals other apps listen to, so diagnosis never imports them."""

from django.dispatch import Signal

# Sent after the transaction that gave a scan its final reading commits: status done with its heatmap
# stored, or status not assessable. sender=Scan, scan_id=<pk>.
scan_read = Signal()
