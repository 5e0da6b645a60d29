"""Data-parallel training across the processes of ``accelerate launch`` (or torchrun).

One process is one rank. An optimizer step trains on one global batch, ``batch_size x
grad_accum`` rows in the order a single process uses, whatever the number of processes.
Each rank takes a contiguous share of it (:meth:`DataParallel.micro_batches`), in
micro-batches of at most ``batch_size`` rows, and scales each micro-batch's loss by its
part of the global batch (rows, or target tokens for a token-mean LM loss). The
gradients, summed across ranks (:meth:`DataParallel.sum_gradients`), are then the
one-process gradient of the global batch; every rank clips and steps alike, so the
weights stay the same everywhere. Rank 0 alone writes outputs, checkpoints and logs; the
others wait at barriers and read the same checkpoints on resume.

Without a launcher (``WORLD_SIZE`` unset or 1) nothing here touches torch.distributed,
and a trainer behaves exactly as it does in one process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from augtool.errors import AugtoolError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
#: Elements per all-reduce when gradients are summed (bounds the extra memory).
_BUCKET = 1 << 24


#: Where launchers put the rank and the number of processes: torchrun (and so
#: ``accelerate launch``), then MPI implementations (as accelerate reads them).
_RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def _env_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        try:
            return int(os.environ[name])
        except (KeyError, ValueError):
            continue
    return default


def launch_rank() -> int:
    """This process's rank as the launcher set it (0 without one); reads the environment
    only, so the CLI can ask before torch is imported."""
    return _env_int(_RANK_VARS, 0)


def is_main_process() -> bool:
    """True on rank 0 (and without a launcher): the process that writes and reports."""
    return launch_rank() == 0


def launch_world_size() -> int:
    """How many processes the launcher started (1 without one)."""
    return max(_env_int(_SIZE_VARS, 1), 1)


class DataParallel:
    """This process's place among the ranks and the collectives a trainer needs."""

    def __init__(
        self, rank: int = 0, world_size: int = 1, local_rank: int = 0, backend: str = ""
    ) -> None:
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.backend = backend

    @property
    def active(self) -> bool:
        """True with more than one process."""
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """True on rank 0, the one that writes."""
        return self.rank == 0

    @property
    def _device(self) -> str:
        return f"cuda:{self.local_rank}" if self.backend == "nccl" else "cpu"

    def announce(self, reporter: Any, rows: int, what: str = "rows") -> None:
        """Say (rank 0, several processes only) how each optimizer step is shared."""
        if self.active and self.main:
            reporter.log(
                f"data parallel: {self.world_size} processes ({self.backend}), {rows} {what} "
                "per optimizer step shared between them"
            )

    def device_for(self, spec: str) -> str:
        """The device this rank trains on: ``auto`` and ``cuda`` become ``cuda:<local
        rank>`` under a CUDA launch; anything else (and one process) is left as given."""
        if self.active and self.backend == "nccl" and spec.strip().lower() in ("auto", "cuda"):
            return self._device
        return spec

    def share(self, batch: Sequence[int]) -> list[int]:
        """This rank's contiguous part of a global batch (sizes differ by at most one)."""
        rows = [int(i) for i in batch]
        if not self.active:
            return rows
        base, extra = divmod(len(rows), self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return rows[start : start + base + (1 if self.rank < extra else 0)]

    def micro_batches(self, batch: Sequence[int], size: int) -> list[list[int]]:
        """This rank's share of ``batch`` in micro-batches of at most ``size`` rows (none
        when the share is empty)."""
        rows = self.share(batch)
        return [rows[i : i + size] for i in range(0, len(rows), size)]

    def sum_gradients(self, parameters: Iterable[torch.Tensor]) -> None:
        """Sum every parameter's gradient over the ranks (a no-op in one process).

        A parameter that has no gradient on any rank (unused in the forward pass) keeps
        none, as it would in one process; one that has a gradient somewhere gets zeros
        where it has none (a rank with no rows this step) before the sum.
        """
        if not self.active:
            return
        import torch
        import torch.distributed as dist

        params = [p for p in parameters if p.requires_grad]
        if not params:
            return
        present = torch.tensor(
            [0.0 if p.grad is None else 1.0 for p in params], device=self._device
        )
        dist.all_reduce(present)
        used = [p for p, flag in zip(params, present.tolist(), strict=True) if flag > 0]
        for p in used:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        bucket: list[torch.Tensor] = []
        size = 0
        for p in used:
            bucket.append(p)
            size += p.numel()
            if size >= _BUCKET:
                self._reduce_bucket(bucket)
                bucket, size = [], 0
        if bucket:
            self._reduce_bucket(bucket)

    def _reduce_bucket(self, params: list[torch.Tensor]) -> None:
        import torch
        import torch.distributed as dist

        flat = torch.cat([p.grad.reshape(-1).to(self._device, torch.float32) for p in params])
        dist.all_reduce(flat)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n

    def step_sync(self, value: float, flag: bool = False) -> tuple[float, bool]:
        """``value`` summed over the ranks, and rank 0's ``flag`` (a decision every rank
        must share: a checkpoint is due, time is up), in one collective."""
        if not self.active:
            return value, flag
        import torch
        import torch.distributed as dist

        both = torch.tensor(
            [value, 1.0 if flag and self.main else 0.0], dtype=torch.float64, device=self._device
        )
        dist.all_reduce(both)
        total, decided = both.tolist()
        return total, decided > 0

    def sum_int(self, value: int) -> int:
        """``value`` summed over the ranks (token counts)."""
        if not self.active:
            return value
        import torch
        import torch.distributed as dist

        total = torch.tensor([value], dtype=torch.int64, device=self._device)
        dist.all_reduce(total)
        return int(total.item())

    def from_main(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if not self.active:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order (``[value]`` in one process)."""
        if not self.active:
            return [value]
        import torch.distributed as dist

        found: list[Any] = [None] * self.world_size
        dist.all_gather_object(found, value)
        return found

    def broadcast_parameters(self, parameters: Iterable[torch.Tensor]) -> None:
        """Copy rank 0's values of ``parameters`` to every rank (the same start)."""
        if not self.active:
            return
        import torch
        import torch.distributed as dist

        with torch.no_grad():
            for p in parameters:
                if p.device.type == "cpu" and self.backend == "nccl":
                    moved = p.data.to(self._device)
                    dist.broadcast(moved, src=0)
                    p.data.copy_(moved)
                else:
                    dist.broadcast(p.data, src=0)

    def barrier(self) -> None:
        """Wait until every rank is here."""
        if self.active:
            import torch.distributed as dist

            if self.backend == "nccl":
                dist.barrier(device_ids=[self.local_rank])
            else:
                dist.barrier()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first, the others after it (filling a shared cache or
        file once, then reading it)."""
        if not self.main:
            self.barrier()
        yield
        if self.main:
            self.barrier()

    def seed_offset(self) -> int:
        """Added to a torch seed on ranks other than 0, so that their dropout masks
        differ from rank 0's (0 on rank 0: one process draws as it always did)."""
        return 1_000_000_007 * self.rank


SINGLE = DataParallel()
_CURRENT: DataParallel | None = None


def data_parallel(device: str = "auto") -> DataParallel:
    """The ranks of this launch, the process group initialised on first use (gloo for a
    CPU ``device``, nccl on CUDA, through accelerate's ``PartialState``); one process
    without a launcher. ``device`` is the trainer's ``--device`` (it picks the backend)."""
    global _CURRENT
    if _CURRENT is not None:
        return _CURRENT
    if launch_world_size() <= 1:
        return SINGLE
    import torch
    import torch.distributed as dist
    from accelerate import PartialState

    spec = (device or "auto").strip().lower()
    cpu = spec == "cpu" or (spec == "auto" and not torch.cuda.is_available())
    if spec == "mps":
        raise AugtoolError("--device mps: training on several processes needs cpu or cuda")
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        cpu = True
    state = PartialState(cpu=cpu)
    if not dist.is_initialized() or state.num_processes < 2:
        raise AugtoolError(
            f"WORLD_SIZE is {launch_world_size()} but no process group started; launch "
            "with `accelerate launch --multi_gpu --num_processes N -m augtool ...`"
        )
    _CURRENT = DataParallel(
        rank=state.process_index,
        world_size=state.num_processes,
        local_rank=state.local_process_index,
        backend=dist.get_backend(),
    )
    return _CURRENT
