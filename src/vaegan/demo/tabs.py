"""What every tab declares: the capability it needs of a model, and why a given model cannot serve it.

A tab is a :class:`DemoTab` subclass in its own module, listed in :data:`vaegan.demo.layout.TABS`. It names the
capability it needs (a key of :data:`vaegan.models.base.CAPABILITIES`, or None for sampling, which every family
has), whether it takes class-conditional models, and any further condition in :meth:`DemoTab.why_not`. From that
alone the page offers each tab the models that can serve it, says why for the others, shows one line instead of
the controls when no loaded model can serve the tab, and every endpoint answers a model it cannot serve with the
reason for that model. No tab ever checks a family's name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gradio as gr

from ..models import GenerativeModel
from .context import DemoContext

#: What a model that lacks a capability has no ... of ("gan is a GAN, which has no encoder").
LACKING: dict[str, str] = {
    "latent_space": "latent space",
    "encoder": "encoder",
    "reconstruction": "encoder",  # reconstruction comes with an encoder (and a latent space)
    "log_likelihood": "exact likelihood",
    "likelihood_bounds": "likelihood bounds",
    "completion": "image completion",
}


def lacking(name: str, model: GenerativeModel, capability: str, use: str, instead: str = "") -> str | None:
    """Why ``name``'s model cannot ``use`` for want of ``capability`` (``instead``: what to do), None if it has it."""
    if model.supports(capability):
        return None
    cls, missing = type(model).__name__, LACKING[capability]
    return (f"{name} is {_article(cls)} {cls}, which has no {missing}, so it cannot {use}. Choose a model with "
            f"{_article(missing)} {missing}{instead}.")


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


class DemoTab:
    """A tab of the page. Subclasses set the class attributes, implement :meth:`build`, and may add conditions
    in :meth:`why_not`; the rest (which models a tab offers, what it says about the others) comes from here."""

    #: The tab's label on the page, and its id (``gr.Tab(id=...)``, element ids, ``DemoApp`` attribute).
    title: ClassVar[str] = ""
    tab_id: ClassVar[str] = ""
    #: The capability the tab needs (a key of ``CAPABILITIES``); None: sampling, which every family has.
    needs: ClassVar[str | None] = None
    #: Whether the tab serves class-conditional models (it has a class picker).
    takes_classes: ClassVar[bool] = False
    #: What the tab does with a model, completing "so it cannot ...".
    purpose: ClassVar[str] = ""
    #: The line shown instead of the controls when no loaded model can serve the tab ("" for the default).
    unavailable: ClassVar[str] = ""

    def __init__(self, ctx: DemoContext):
        self.ctx = ctx

    # ------------------------------------------------------------------ which models
    def why_not(self, name: str, model: GenerativeModel) -> str | None:
        """Why ``name``'s ``model`` cannot serve this tab (one sentence with what to do), None when it can."""
        if self.needs is not None:
            reason = lacking(name, model, self.needs, self.purpose)
            if reason is not None:
                return reason
        if not self.takes_classes and model.num_classes:
            return (f"{name} is class-conditional; the {self.title} tab works with unconditional models. Sample it "
                    "in the Sample tab, where you can pick a class.")
        return None

    def served(self, name: Any) -> GenerativeModel:
        """``name``'s model, or a ``gr.Error`` saying why it cannot serve this tab (unknown names included)."""
        model = self.ctx.registry.model(name)
        reason = self.why_not(name, model)
        if reason is not None:
            raise gr.Error(reason)
        return model

    def reasons(self) -> dict[str, str | None]:
        """Every loaded model's reason it cannot serve this tab (None: it can), in the registry's order."""
        return {name: self.why_not(name, entry.model) for name, entry in self.ctx.registry.entries.items()}

    # ------------------------------------------------------------------ page
    def page(self, demo: gr.Blocks) -> None:
        """The tab's content (inside ``gr.Tab``): its controls for the models that can serve it, else one line
        saying that none can; then why each other model is not offered."""
        reasons = self.reasons()
        choices = self.ctx.registry.choices([name for name, reason in reasons.items() if reason is None])
        if choices:
            self.build(choices, demo)
        else:
            gr.Markdown(self.unavailable or f"None of the loaded models can {self.purpose}.",
                        elem_id=f"{self.tab_id}-unavailable")
        others = [reason for reason in reasons.values() if reason is not None]
        if others:
            heading = "Models not offered here" if choices else "The loaded models"
            gr.Markdown(f"{heading}:\n\n" + "\n".join(f"- {reason}" for reason in others),
                        elem_id=f"{self.tab_id}-not-here")

    def build(self, choices: list[tuple[str, str]], demo: gr.Blocks) -> None:
        """The controls and events of the tab (inside ``gr.Blocks``) for ``choices``, the ``(label, name)`` of
        the models that can serve it (at least one)."""
        raise NotImplementedError
