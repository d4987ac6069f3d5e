"""One rank of the two-node gloo check (tests/test_slurm_two_nodes.py): started by torchrun on each
node, it joins the process group that torchrun's rendezvous set up, all-reduces its rank + 1 and
prints one line (``rank R/W node N sum S master A``) for the test to read."""

import os

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
total = torch.tensor([float(rank + 1)])
dist.all_reduce(total)
print(f"rank {rank}/{world} node {os.environ.get('SLURMD_NODENAME')} sum {total.item():g} "
      f"master {os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}", flush=True)
dist.destroy_process_group()
