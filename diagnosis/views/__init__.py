"""Thin views: selectors read (scoped to the user), services write, one module per page family."""
