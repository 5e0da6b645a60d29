"""Methods the benchmark harness can run, looked up by name.

A method may add augmented rows to the K-shot training set (:meth:`BenchMethod.augment`)
and/or change how the task model trains (:meth:`BenchMethod.train_overrides`). New
methods register with ``BENCH_METHODS.register("name", MyMethod)``; the harness needs no
change. Options come from the config's ``methods.<name>`` mapping and are checked before
any cell runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from augtool.core.registry import Registry, import_path
from augtool.data.records import Record
from augtool.errors import AugtoolError, OptionError

if TYPE_CHECKING:
    from augtool.bench.config import BenchConfig
    from augtool.core.progress import Reporter

# Options a method config has that the harness sets itself.
_HARNESS_FIELDS = {"text_field", "label_field", "seed", "keep_original", "prompt_file"}


@dataclass
class AugmentContext:
    """What an augmentation step knows about its cell, and what it leaves for training.

    ``artifacts`` is a folder kept with the cached rows; a method whose task model must
    continue from a model it trained (invmix's refined theta*, Eq. 12) saves that task
    model there and sets ``init_from`` to it. The harness then trains the cell's task
    model with ``init_from`` (``augtool train --init-from``).
    """

    seed: int
    k: int | str
    per_original: int
    reporter: Reporter
    artifacts: Path | None = None
    init_from: Path | None = None


class BenchMethod:
    """Base: no augmentation, no change to training (the ``base`` row)."""

    name: ClassVar[str] = "base"
    #: Whether :meth:`augment` adds rows (so the harness caches them).
    adds_rows: ClassVar[bool] = False
    #: The method's config dataclass; options are validated against its fields.
    config_cls: ClassVar[type | None] = None

    def check(self, options: dict[str, Any], bench: BenchConfig) -> None:
        """Raise :class:`OptionError` for bad options (called before anything runs)."""
        if self.config_cls is None:
            if options:
                raise OptionError(next(iter(options)), f"{self.name} takes no options")
            return
        self.build(
            options,
            bench.per_original,
            k=max((k for k in bench.k if isinstance(k, int)), default=1),
            sample_size=1,
        )

    def defaults(self, per_original: int, k: int | str, sample_size: int) -> dict[str, Any]:
        """Option defaults derived from the harness settings (``per_original``...)."""
        return {}

    def build(
        self,
        options: dict[str, Any],
        per_original: int,
        k: int | str,
        sample_size: int,
        **harness: Any,
    ) -> Any:
        """The method's config from defaults, the user's options and the harness's own
        settings (``seed``)."""
        assert self.config_cls is not None
        allowed = {f.name for f in dataclasses.fields(self.config_cls)} - _HARNESS_FIELDS
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise OptionError(
                unknown[0], f"unknown option for {self.name} (known: {', '.join(sorted(allowed))})"
            )
        values = {**self.defaults(per_original, k, sample_size), **options, **harness}
        try:
            return self.config_cls(**values)
        except TypeError as exc:
            raise OptionError(self.name, str(exc)) from exc

    def augment(
        self, sample: list[Record], options: dict[str, Any], context: AugmentContext
    ) -> list[Record]:
        """New training rows made from ``sample`` (none by default)."""
        return []

    def train_overrides(self, options: dict[str, Any]) -> dict[str, Any]:
        """Changes to the task model's training config (none by default)."""
        return {}

    def continues_training(self, options: dict[str, Any]) -> bool:
        """Whether :meth:`augment` leaves a task model (``context.init_from``) that the
        cell's training continues from; a cached augmentation without it is redone."""
        return False


class MixupMethod(BenchMethod):
    """Embedding Mixup at training time: no new rows, ``--mixup --alpha``."""

    name = "mixup"

    def check(self, options: dict[str, Any], bench: BenchConfig) -> None:
        unknown = sorted(set(options) - {"alpha"})
        if unknown:
            raise OptionError(unknown[0], "unknown option for mixup (known: alpha)")
        alpha = options.get("alpha", 0.4)
        if not isinstance(alpha, (int, float)) or alpha <= 0:
            raise OptionError("alpha", "must be a positive number")

    def train_overrides(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"mixup": True, "alpha": float(options.get("alpha", 0.4))}


class EDAMethod(BenchMethod):
    """EDA with ``n_aug = per_original`` by default."""

    adds_rows = True

    name = "eda"

    @property
    def config_cls(self) -> type:  # type: ignore[override]
        from augtool.methods.eda import EDAConfig

        return EDAConfig

    def defaults(self, per_original: int, k: int | str, sample_size: int) -> dict[str, Any]:
        return {"n_aug": per_original}

    def augment(
        self, sample: list[Record], options: dict[str, Any], context: AugmentContext
    ) -> list[Record]:
        from augtool.core.wordnet import WordNetSynonyms
        from augtool.methods.eda import augment_record, needs_synonyms, vocabulary

        config = self.build(
            options, context.per_original, context.k, len(sample), seed=context.seed
        )
        lookup = _no_synonyms
        synonyms = None
        if needs_synonyms(config):
            synonyms = WordNetSynonyms()
            synonyms.prefetch(vocabulary(sample))
            lookup = synonyms.synonyms
        rows = [row for record in sample for row in augment_record(record, config, lookup)]
        if synonyms is not None:
            synonyms.close()
        return rows


class BTMethod(BenchMethod):
    """Back-translation (identical outputs dropped unless ``keep_identical``)."""

    adds_rows = True

    name = "bt"

    @property
    def config_cls(self) -> type:  # type: ignore[override]
        from augtool.methods.backtranslation import BTConfig

        return BTConfig

    def augment(
        self, sample: list[Record], options: dict[str, Any], context: AugmentContext
    ) -> list[Record]:
        from augtool.methods.backtranslation import bt_rows, build_engine

        config = self.build(
            options, context.per_original, context.k, len(sample), seed=context.seed
        )
        engine = build_engine(config, warn=context.reporter.log)
        try:
            rows = bt_rows(sample, config, engine)
        finally:
            engine.close()
        return [row for row, identical in rows if config.keep_identical or not identical]


class _LLMMethod(BenchMethod):
    """Shared by the LLM prompting baselines: build tasks, run them (cached replies)."""

    adds_rows = True

    def _tasks(self, sample: list[Record], config: Any) -> list[Any]:
        raise NotImplementedError

    def augment(
        self, sample: list[Record], options: dict[str, Any], context: AugmentContext
    ) -> list[Record]:
        from augtool.core.generation import load_llm
        from augtool.core.generation.params import Failure

        config = self.build(
            options, context.per_original, context.k, len(sample), seed=context.seed
        )
        llm = load_llm(config.llm, **config.backend_options())
        try:
            llm.check()
            tasks = self._tasks(sample, config)
            replies = llm.generate(
                [t.prompt for t in tasks], config.params(), [t.seed for t in tasks]
            )
        finally:
            llm.close()
        rows, lost = [], []
        for task, reply in zip(tasks, replies, strict=True):
            if isinstance(reply, Failure):
                context.reporter.log(f"request {task.key} failed: {reply.error}")
                lost.append(f"{task.key}: {reply.error}")
                continue
            try:
                rows.append(task.build(reply))
            except Exception as exc:  # noqa: BLE001 - an unusable reply loses one row
                context.reporter.log(f"reply for {task.key} unusable: {exc}")
                lost.append(f"{task.key}: {exc}")
        if lost:
            # A cell trained on fewer rows than asked for is not this method's result: fail
            # it (its replies are cached, so the retry on the next run asks only again for
            # the lost rows) instead of recording it as ok.
            raise AugtoolError(
                f"{self.name}: {len(lost)} of {len(tasks)} requests gave no row (first: "
                f"{lost[0]}); the cell is retried on the next run"
            )
        return rows


class LLMRewriteMethod(_LLMMethod):
    name = "llm-rew"

    @property
    def config_cls(self) -> type:  # type: ignore[override]
        from augtool.methods.llm_baselines import RewriteConfig

        return RewriteConfig

    def defaults(self, per_original: int, k: int | str, sample_size: int) -> dict[str, Any]:
        return {"n": per_original}

    def _tasks(self, sample: list[Record], config: Any) -> list[Any]:
        from augtool.methods.llm_baselines import rewrite_tasks

        return rewrite_tasks(sample, config)


class LLMGenerateMethod(_LLMMethod):
    name = "llm-gen"

    @property
    def config_cls(self) -> type:  # type: ignore[override]
        from augtool.methods.llm_baselines import GenerateConfig

        return GenerateConfig

    def defaults(self, per_original: int, k: int | str, sample_size: int) -> dict[str, Any]:
        per_label = per_original * (k if isinstance(k, int) else max(1, sample_size))
        return {"per_label": per_label}

    def _tasks(self, sample: list[Record], config: Any) -> list[Any]:
        from augtool.methods.llm_baselines import generate_tasks

        return generate_tasks(sample, config, None)


class LLMMixMethod(_LLMMethod):
    name = "llm-mix"

    @property
    def config_cls(self) -> type:  # type: ignore[override]
        from augtool.methods.llm_baselines import MixConfig

        return MixConfig

    def defaults(self, per_original: int, k: int | str, sample_size: int) -> dict[str, Any]:
        return {"pairs": per_original * max(1, sample_size)}

    def _tasks(self, sample: list[Record], config: Any) -> list[Any]:
        from augtool.methods.llm_baselines import mix_tasks

        return mix_tasks(sample, config)


def _no_synonyms(word: str) -> tuple[str, ...]:
    return ()


BENCH_METHODS: Registry[type[BenchMethod]] = Registry("bench method")
for _method in (
    BenchMethod,
    MixupMethod,
    EDAMethod,
    BTMethod,
    LLMRewriteMethod,
    LLMGenerateMethod,
    LLMMixMethod,
):
    BENCH_METHODS.register(_method.name, _method)


class _SeedMethod(BenchMethod):
    """A seed method run by a ``methods.<name>.bench`` module: its options dataclass and
    an ``augment(sample, options, per_original, reporter)`` function, both imported on use
    so that listing methods stays light."""

    adds_rows = True
    #: ``"module:attribute"`` of the options dataclass and of the augment function.
    options_path: ClassVar[str]
    augment_path: ClassVar[str]

    @property
    def config_cls(self) -> type:  # type: ignore[override]
        return import_path(self.options_path)

    def augment(
        self, sample: list[Record], options: dict[str, Any], context: AugmentContext
    ) -> list[Record]:
        config = self.build(
            options, context.per_original, context.k, len(sample), seed=context.seed
        )
        run = import_path(self.augment_path)
        return run(sample, config, context.per_original, context.reporter)


class InvmixMethod(_SeedMethod):
    """inversedMixup: refine a stage-1 adaptor on the sample, mix and invert; the cell's
    task model then continues from the refined theta* on sample + mixed rows (Eq. 12)."""

    name = "invmix"
    options_path = "augtool.methods.invmix.bench:InvmixBenchOptions"
    augment_path = "augtool.methods.invmix.bench:augment_with_invmix"

    def augment(
        self, sample: list[Record], options: dict[str, Any], context: AugmentContext
    ) -> list[Record]:
        config = self.build(
            options, context.per_original, context.k, len(sample), seed=context.seed
        )
        keep = None
        if config.init_from_refined and context.artifacts is not None:
            keep = context.artifacts / "theta"
        run = import_path(self.augment_path)
        rows = run(sample, config, context.per_original, context.reporter, task_model_to=keep)
        if keep is not None:
            context.init_from = keep
        return rows

    def continues_training(self, options: dict[str, Any]) -> bool:
        return bool(options.get("init_from_refined", True))


class TopexMethod(_SeedMethod):
    """TopEx: explore the sample out of fold, augment the chosen cluster of mistakes."""

    name = "topex"
    options_path = "augtool.methods.topex.bench:TopexBenchOptions"
    augment_path = "augtool.methods.topex.bench:augment_with_topex"


for _method in (InvmixMethod, TopexMethod):
    BENCH_METHODS.register(_method.name, _method)


def method_kind(name: str) -> str:
    """The registered method behind a config entry: ``topex@eda-3`` runs ``topex`` (the
    part after ``@`` names a variant, so one method can appear with several options)."""
    return name.split("@", 1)[0]


def check_methods(config: BenchConfig, path: str | Path) -> None:
    """Check every method a loaded bench config names, and its options, before any cell
    runs (one line naming the config file and the method)."""
    from augtool.bench.config import config_error

    for name, options in config.methods.items():
        if method_kind(name) not in BENCH_METHODS:
            raise config_error(
                path,
                f"methods: unknown method {method_kind(name)!r} (known: "
                f"{', '.join(BENCH_METHODS.names())}; NAME@VARIANT runs NAME with its options)",
            )
        try:
            BENCH_METHODS.get(method_kind(name))().check(options, config)
        except OptionError as exc:
            raise config_error(path, f"methods.{name}: {exc}") from exc
