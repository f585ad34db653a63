"""What a candidate model family declares, once, in its own module: its name, the parameters
it reads, how it fits, how tuning searches its parameters and how a recommendation it made
is explained. The registry (`families.py`) lists the families; training, tuning, the
nightly flow's parameters and the reasons read everything from these declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from tasks.training.models import FactorModel

if TYPE_CHECKING:
    from tasks.publishing.reasons import ReasonContext
    from tasks.training.train import ModelConfig, TrainingData

# A bound shared by the parameters of several families.
RecencyDecay = Annotated[
    float,
    Field(gt=0, le=1, description="weight of a user's k-th most recent product: decay**k"),
]


@dataclass(frozen=True)
class Settings:
    """A section of parameters, one key of the models' configuration (`ModelConfig`, stored
    with every model and in metrics.json) and of the nightly flow's parameters (a group of
    command-line options): what one family, or a few that share it, read."""

    key: str  # in ModelConfig
    model: type[BaseModel]  # the parameters, with their defaults and bounds
    flow_key: str | None = None  # the nightly flow's name for it, when not `key`
    flow_description: str | None = None  # shown in the nightly flow's form

    @property
    def flow_name(self) -> str:
        return self.flow_key or self.key


@dataclass(frozen=True)
class FitOptions:
    """How a fit runs, besides the data and the configuration."""

    seed: int
    num_threads: int = 1
    state_path: Path | None = None  # families that keep a state: write it here
    warm_start: Path | None = None  # ... continue from this state
    continue_epochs: int | None = None  # ... for this many epochs (None: as configured)


Fit = Callable[["TrainingData", "ModelConfig", FitOptions], FactorModel]
# (reasons, the family's fitted component of the blend, user rows, product columns) → one
# reason per pair, None where the family has nothing true to say about it
Explain = Callable[["ReasonContext", FactorModel, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Family:
    """One candidate: fitted, evaluated and blended under `name`."""

    name: str  # metrics.json, blend weights, file names: never renamed
    fit: Fit
    explain: Explain
    # the section of ModelConfig it owns (families may share one); None: none of its own
    settings: Settings | None = None
    # what its trained model records as its parameters; default: its settings, dumped
    recorded_params: Callable[[ModelConfig], dict] | None = None
    # tuned settings: draws from this space (lists or scipy distributions, by parameter)
    space: Mapping[str, Any] | None = None
    # "alone": `neighbour_trials` settings drawn, each fitted and judged by itself;
    # "lightfm": tuned epoch by epoch by tune.py's LightFM search
    search: Literal["alone", "lightfm"] = "alone"
    keeps_state: bool = False  # fit can write a state and continue from one (FitOptions)
    # its reason says why this product (not only that it sells, nor why its category)
    explains_the_product: bool = True
    # its reason says why the product's category: the strongest family that explains the
    # product itself adds its reason
    explains_the_category: bool = False

    def params_of(self, config: ModelConfig) -> dict:
        """Its parameters in `config`, as its trained model records them."""
        if self.recorded_params is not None:
            return self.recorded_params(config)
        if self.settings is None:
            return {}
        return getattr(config, self.settings.key).model_dump()
