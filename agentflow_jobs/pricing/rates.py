"""Rates: what a model's tokens cost per million, one shape for the table and the profile."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Rates"]


class Rates(BaseModel):
    """USD per million tokens; cached input is the part of the prompt read from cache."""

    model_config = ConfigDict(frozen=True)

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float

    def discounted(self, discount: float) -> Rates:
        keep = 1.0 - discount
        return Rates(
            input_per_mtok=self.input_per_mtok * keep,
            output_per_mtok=self.output_per_mtok * keep,
            cached_input_per_mtok=self.cached_input_per_mtok * keep,
        )
