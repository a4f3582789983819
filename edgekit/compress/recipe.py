"""Compression recipes: what ``edgekit compress`` does, as one small validated object.

A :class:`Recipe` validates in its constructor, so a bad value fails before
any fine-tuning starts, and round-trips exactly through TOML and dicts; the
manifest records the recipe actually used (after command-line overrides).
Shipped recipes live in ``calibration/recipes/*.toml`` and are found by name.

To add a setting: add a field with its default and a comment, validate it in
``__post_init__``, and (if it is a flag) add the option to
``edgekit/cli/compress_cmd.py``. The round-trip tests cover every field.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigError

NORMS = ("l1", "l2")


@dataclass(frozen=True)
class Recipe:
    """How to compress a model. Every field has a default; ``Recipe()`` is a plain int8 calibration.

    Example:
        >>> r = Recipe(sparsity=0.8, qat=True)
        >>> Recipe.from_toml(r.to_toml()) == r
        True

    Raises:
        ConfigError: a field has a wrong type or value (the message names it).
    """

    # Pruning (each optional; sparsity and mn exclude each other).
    sparsity: float | None = None  # unstructured magnitude pruning: fraction of weights set to zero, in (0, 1)
    mn: str | None = None  # semi-structured "M:N": at most M non-zero weights in every N consecutive input channels
    structured: float | None = None  # fraction of Conv/Dense channels physically removed, in (0, 1)
    structured_norm: str = "l1"  # how filters are ranked for removal: "l1" or "l2"
    prune_output_layer: bool = False  # sparsity/mn also prune the layer producing the output (default: left dense)
    prune_min_weights: int = 1024  # sparsity/mn leave kernels with fewer weights dense (= prune.MIN_PRUNE_WEIGHTS)
    # Fine-tuning (after each pruning step, and for QAT).
    epochs: int = 2  # epochs per fine-tuning phase; 0 = no fine-tuning (structured pruning only)
    batch_size: int = 32  # per replica: a step under N replicas trains on batch_size x N samples
    learning_rate: float = 5e-4  # Adam, for fine-tuning after pruning
    qat_learning_rate: float = 1e-4  # Adam, for QAT (lower: the weights are already good, only ranges adapt)
    distill: bool = False  # the original model teaches: KL on softened outputs + hard-label loss
    distill_temperature: float = 4.0
    distill_alpha: float = 0.5  # weight of the distillation term; 1 - alpha goes to the hard labels
    # Quantization.
    qat: bool = False  # quantization-aware training (sparsity-preserving when the model is pruned)
    calibration_samples: int = 200  # representative images for int8 calibration, drawn stratified (the only images held in memory)
    max_accuracy_drop: float | None = None  # top-1 points the int8 model may lose against the original float
    # Evaluation and output.
    holdout: float = 0.2  # fraction of the data held out for evaluation (never trained on)
    eval_samples: int | None = None  # score every variant (and the budget loop) on at most this many held-out samples, stratified; None = all
    seed: int = 0
    targets: tuple[str, ...] = ("cpu",)
    description: str = ""

    def __post_init__(self) -> None:
        _fraction("sparsity", self.sparsity, optional=True)
        _fraction("structured", self.structured, optional=True)
        if self.mn is not None:
            object.__setattr__(self, "mn", _format_mn(self.mn))
        if self.sparsity is not None and self.mn is not None:
            raise ConfigError(
                f"recipe sets both sparsity={self.sparsity} and mn={self.mn!r}; expected one of them.",
                hint="Unstructured and M:N pruning produce different masks; pick one (structured can be combined with either).",
            )
        if self.structured_norm not in NORMS:
            raise ConfigError(f"recipe structured_norm={self.structured_norm!r} is not valid; expected one of: {', '.join(NORMS)}.")
        _int("epochs", self.epochs, minimum=0)
        _int("prune_min_weights", self.prune_min_weights, minimum=0)
        _int("batch_size", self.batch_size, minimum=1)
        _int("calibration_samples", self.calibration_samples, minimum=1)
        if self.eval_samples is not None:
            _int("eval_samples", self.eval_samples, minimum=1)
        _int("seed", self.seed, minimum=0)
        _positive("learning_rate", self.learning_rate)
        _positive("qat_learning_rate", self.qat_learning_rate)
        _positive("distill_temperature", self.distill_temperature)
        _number("distill_alpha", self.distill_alpha)
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise ConfigError(f"recipe distill_alpha={self.distill_alpha!r} is not valid; expected a number in [0, 1].")
        _fraction("holdout", self.holdout)
        if self.max_accuracy_drop is not None:
            _number("max_accuracy_drop", self.max_accuracy_drop)
            if self.max_accuracy_drop < 0:
                raise ConfigError(
                    f"recipe max_accuracy_drop={self.max_accuracy_drop!r} is not valid; expected top-1 points >= 0 (e.g. 1.0)."
                )
        for name in ("qat", "distill", "prune_output_layer"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"recipe {name}={getattr(self, name)!r} is not valid; expected true or false.")
        if not isinstance(self.description, str):
            raise ConfigError(f"recipe description={self.description!r} is not valid; expected a string.")
        object.__setattr__(self, "targets", _targets(self.targets))
        needs_training = [n for n, on in (("sparsity", self.sparsity is not None), ("mn", self.mn is not None), ("qat", self.qat)) if on]
        if needs_training and self.epochs == 0:
            raise ConfigError(
                f"recipe sets {', '.join(needs_training)} with epochs=0; they are learned during fine-tuning, so expected epochs >= 1.",
                hint="Set epochs (--epochs) to 1 or more, or drop those settings.",
            )
        if self.distill and self.epochs == 0:
            raise ConfigError("recipe sets distill with epochs=0; distillation happens during fine-tuning, so expected epochs >= 1.")

    # ------------------------------------------------------------ properties

    @property
    def mn_pair(self) -> tuple[int, int] | None:
        """(M, N) when M:N pruning is on: M non-zeros kept in every block of N."""
        if self.mn is None:
            return None
        m, n = self.mn.split(":")
        return int(m), int(n)

    @property
    def prunes(self) -> bool:
        return self.sparsity is not None or self.mn is not None or self.structured is not None

    # ----------------------------------------------------------- conversion

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (None kept, tuples as lists)."""
        d = asdict(self)
        d["targets"] = list(self.targets)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recipe":
        """Build from a mapping; an unknown key is a ConfigError naming it.

        Example:
            >>> Recipe.from_dict({"sparsity": 0.5}).sparsity
            0.5
        """
        if not isinstance(d, dict):
            raise ConfigError(f"a recipe must be a table of settings; received {type(d).__name__}.")
        known = [f.name for f in fields(cls)]
        unknown = [k for k in d if k not in known]
        if unknown:
            raise ConfigError(
                f"unknown recipe key {unknown[0]!r}; expected only: {', '.join(known)}.",
                hint="Check the spelling; see calibration/recipes/default.toml for every key.",
            )
        return cls(**d)

    def to_toml(self) -> str:
        """TOML text; None fields are left out (TOML has no null) and read back as None."""
        lines = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            lines.append(f"{f.name} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str, *, source: str = "recipe") -> "Recipe":
        """Parse TOML text; a syntax error or bad value is a ConfigError naming ``source``."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{source} is not valid TOML ({e}).") from e
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e.message}", hint=e.hint) from None

    def with_overrides(self, **overrides: Any) -> "Recipe":
        """A copy with the given fields replaced (None values are ignored: "flag not given").

        Raises:
            ConfigError: an unknown field or an invalid resulting recipe.
        """
        known = {f.name for f in fields(self)}
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(f"unknown recipe setting {unknown[0]!r}; expected one of: {', '.join(sorted(known))}.")
        return replace(self, **given) if given else self

    def without(self, *names: str) -> "Recipe":
        """A copy with optional settings switched off (set to None), e.g. ``without("sparsity")``."""
        for n in names:
            if n not in ("sparsity", "mn", "structured", "max_accuracy_drop", "eval_samples"):
                raise ConfigError(f"recipe setting {n!r} cannot be switched off; only optional ones can.")
        return replace(self, **{n: None for n in names})


def list_recipes() -> list[str]:
    """Names of the shipped recipes in ``calibration/recipes/``, sorted."""
    from edgekit.resources import recipes_dir

    return sorted(p.stem for p in recipes_dir().glob("*.toml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A recipe from a ``.toml`` file, or a shipped one by name (``default``, ``aggressive-size``, ``latency``).

    Example:
        >>> load_recipe("aggressive-size").sparsity
        0.8

    Raises:
        ConfigError: no such file or shipped name (the shipped names are listed), bad TOML, or a bad value.
    """
    from edgekit.resources import recipes_dir

    p = Path(name_or_path)
    if p.suffix.lower() != ".toml" and not p.exists():
        shipped = recipes_dir() / f"{p.name}.toml"
        if not shipped.is_file():
            raise ConfigError(
                f"unknown recipe {str(name_or_path)!r}; expected a .toml file or a shipped recipe: {', '.join(list_recipes())}."
            )
        p = shipped
    if not p.is_file():
        raise ConfigError(f"recipe file {p} does not exist; expected a .toml file or a shipped recipe: {', '.join(list_recipes())}.")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read recipe {p} ({e}).") from e
    return Recipe.from_toml(text, source=f"recipe {p}")


def recipe_defaults() -> dict[str, Any]:
    """Each field's default value (documentation and tests)."""
    out = {}
    for f in fields(Recipe):
        out[f.name] = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    return out


# ------------------------------------------------------------------ validation


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"recipe {name}={value!r} is not valid; expected a number.")
    return float(value)


def _positive(name: str, value: Any) -> None:
    if _number(name, value) <= 0:
        raise ConfigError(f"recipe {name}={value!r} is not valid; expected a number > 0.")


def _fraction(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    x = _number(name, value)
    if not 0.0 < x < 1.0:
        example = {"sparsity": "0.8", "structured": "0.5"}.get(name, "0.2")
        raise ConfigError(
            f"recipe {name}={value!r} is not valid; expected a fraction strictly between 0 and 1 (e.g. {example})."
        )


def _int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"recipe {name}={value!r} is not valid; expected an integer >= {minimum}.")


def _format_mn(value: Any) -> str:
    bad = ConfigError(
        f"recipe mn={value!r} is not valid; expected 'M:N' with 1 <= M < N (M non-zero weights kept in every N), e.g. '2:4'."
    )
    if isinstance(value, (list, tuple)) and len(value) == 2:
        parts = list(value)
    elif isinstance(value, str) and value.count(":") == 1:
        parts = value.split(":")
    else:
        raise bad
    try:
        m, n = (int(str(p).strip()) for p in parts)
    except ValueError:
        raise bad from None
    if not 1 <= m < n:
        raise bad
    return f"{m}:{n}"


def _targets(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [t for t in value.split(",")]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(t, str) and t.strip() for t in value):
        raise ConfigError(f"recipe targets={value!r} is not valid; expected a non-empty list of target names, e.g. ['cpu'].")
    names = tuple(t.strip() for t in value)
    dupes = sorted({t for t in names if names.count(t) > 1})
    if dupes:
        raise ConfigError(f"recipe targets lists {dupes[0]!r} twice; expected each target once.")
    return names


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        import json

        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string (escapes included)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
