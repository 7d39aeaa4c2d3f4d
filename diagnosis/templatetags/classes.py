"""A class name as a doctor reads it, in any template (mlcore.core.classes owns the names)."""

from django import template

from mlcore.core.classes import display_name

register = template.Library()


@register.filter
def class_display(class_name: str) -> str:
    return display_name(class_name) if class_name else ""
