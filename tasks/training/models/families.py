"""The registry of candidate model families: every family the nightly trains, tunes,
evaluates, blends and explains is listed in FAMILIES, once (docs/adding-a-model.md).

Its order is the candidates' order everywhere (training, metrics.json, the blend search),
and each section of parameters (`Settings`) takes its place in the models' configuration
and among the nightly flow's parameters from the first family that reads it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, create_model

from tasks.training.models import content, lightfm_hybrid, neighbours, popularity, transitions
from tasks.training.models.family import Family, Settings

FAMILIES: tuple[Family, ...] = (
    popularity.POPULARITY_FAMILY,
    popularity.SEGMENT_POPULARITY_FAMILY,
    content.CONTENT_FAMILY,
    lightfm_hybrid.LIGHTFM_CF_FAMILY,
    lightfm_hybrid.HYBRID_FAMILY,
    neighbours.ITEM_KNN_FAMILY,
    transitions.TRANSITIONS_FAMILY,
    transitions.CATEGORY_TRANSITIONS_FAMILY,
)


def registered() -> tuple[Family, ...]:
    """The registered families, in order (read at each call: tests may register more)."""
    return FAMILIES


def names() -> tuple[str, ...]:
    return tuple(family.name for family in registered())


def find(name: str) -> Family | None:
    """The family called `name`, None when there is none."""
    return next((family for family in registered() if family.name == name), None)


def family(name: str) -> Family:
    found = find(name)
    if found is None:
        raise ValueError(f"unknown candidate {name!r}; known: {', '.join(names())}")
    return found


def all_settings() -> tuple[Settings, ...]:
    """Each section of parameters once, in the order of the first family that reads it."""
    sections: dict[str, Settings] = {}
    for declared in registered():
        if declared.settings is not None:
            sections.setdefault(declared.settings.key, declared.settings)
    return tuple(sections.values())


def settings_model(name: str, base: type[BaseModel] = BaseModel, flow: bool = False):
    """A pydantic model with one field per section of parameters after `base`'s fields:
    named as in ModelConfig, or (flow=True) as the nightly flow's parameters name them."""
    fields = {
        settings.flow_name if flow else settings.key: (
            settings.model,
            Field(
                default_factory=settings.model,
                description=settings.flow_description if flow else None,
            ),
        )
        for settings in all_settings()
    }
    return create_model(name, __base__=base, **fields)
