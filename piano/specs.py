"""Enums of error specifications, shared by the services' own error tables."""

from __future__ import annotations

from enum import Enum


class SpecEnum(Enum):
    """An enum of error specs (anything with ``code`` and ``http_status``), read through."""

    @property
    def code(self) -> str:
        code: str = self.value.code
        return code

    @property
    def http_status(self) -> int:
        status: int = self.value.http_status
        return status
