"""Former home of vaegan's model cards (now :mod:`vaegan.cards`), kept so ``from vaegan.hub import ...`` works."""

from .cards import (  # noqa: F401 - re-exported
    SAMPLES_FILENAME,
    dataset_tag,
    model_card,
    pipeline_card,
    save_card_samples,
    write_model_card,
    write_pipeline_card,
)

__all__ = ["SAMPLES_FILENAME", "dataset_tag", "model_card", "pipeline_card", "save_card_samples", "write_model_card",
           "write_pipeline_card"]
