"""What the example's view writes and its job cleans up."""

from __future__ import annotations

from django.db import models


class Visit(models.Model):
    """A request to the home page."""

    path = models.CharField(max_length=200)
    at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f'{self.path} at {self.at:%Y-%m-%d %H:%M:%S}'
