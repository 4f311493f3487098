"""Running the command line in several processes: ``torchrun --nproc_per_node=N xaifast explain ...``.

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables; :func:`start`
then joins the process group (gloo for CPU work, nccl for CUDA), and :class:`Group` offers the few
collective steps the command line needs: rank 0 plans and broadcasts the work list, every rank
takes its share (``items[rank::world_size]``), and the counts are summed for the summary. Without
those variables (a plain ``xaifast explain``) everything runs in one process, with no
``torch.distributed`` at all.
"""

import os

import torch

__all__ = ["Group", "start", "launched_by_torchrun"]


def launched_by_torchrun():
    """Whether the environment asks for more than one process (``WORLD_SIZE`` > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


class Group:
    """The processes of one run: ``rank`` of ``world_size``; a single process is rank 0 of 1."""

    def __init__(self, rank=0, world_size=1, local_rank=0, backend=None):
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.backend = backend  # None: no process group

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.backend is not None

    def share(self, items):
        """This rank's share of ``items`` (the same list on every rank): every item lands on exactly one rank."""
        return list(items[self.rank::self.world_size])

    def broadcast(self, value):
        """Rank 0's ``value`` (any picklable object), on every rank."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def total(self, counts):
        """Sum a tuple of ints over all ranks; every rank gets the totals."""
        if not self.distributed:
            return tuple(counts)
        import torch.distributed as dist

        device = torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else "cpu"
        tensor = torch.tensor(list(counts), dtype=torch.int64, device=device)
        dist.all_reduce(tensor)
        return tuple(int(v) for v in tensor.tolist())

    def gather(self, value):
        """Every rank's ``value``, in rank order, on rank 0 (``None`` on the others)."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, out, dst=0)
        return out

    def close(self, wait=True):
        """Wait for every rank (unless ``wait`` is false: after an error), then leave the process group."""
        if not self.distributed:
            return
        import torch.distributed as dist

        if wait:
            dist.barrier()
        dist.destroy_process_group()
        self.backend = None


def start(device):
    """Join torchrun's process group when launched by it, else a group of one.

    Args:
        device (str): the ``--device`` the user asked for: ``'cuda'`` becomes ``cuda:<LOCAL_RANK>``
            and selects nccl; anything else runs on gloo.

    Returns:
        tuple: ``(group, device)`` with the device this rank computes on.
    """
    if not launched_by_torchrun():
        return Group(), device
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if str(device).startswith("cuda"):
        # One GPU per process: the local rank picks it (an explicit index is overridden).
        device = f"cuda:{local_rank % max(torch.cuda.device_count(), 1)}"
        torch.cuda.set_device(torch.device(device))
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return Group(rank, world_size, local_rank, backend), device
