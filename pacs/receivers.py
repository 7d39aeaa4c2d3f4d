"""Signal receivers: they only call services."""

from pacs.services.results import result_send_queue


def queue_results_for_pacs(sender, scan_id: int, **kwargs) -> None:
    """A scan has its final reading: its SR and heatmap go back to the PACS, when one is configured."""
    result_send_queue(scan_id=scan_id)
