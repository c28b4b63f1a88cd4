"""Novel-view generators behind one protocol (:class:`ViewGenerator`)."""

from .base import ViewGenerator, ViewRequest

__all__ = ["ViewGenerator", "ViewRequest"]
