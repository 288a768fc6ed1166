"""Distributed start-up on top of ``mmengine.dist``: which rank this process is, CPU (gloo)
process groups for launchers that mmengine only starts with CUDA, and a clean shutdown."""
import os
import socket
import subprocess


def launch_rank(launcher: str) -> int:
    """This process's rank, from the launcher's environment (before any process group)."""
    if launcher == 'none':
        return 0
    env = os.environ
    for key in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if env.get(key, '').isdigit():
            return int(env[key])
    return 0


def init_cpu_distributed(launcher: str) -> None:
    """Start the gloo process group ourselves: mmengine's ``init_dist`` calls
    ``torch.cuda.set_device``, which fails without a GPU."""
    import torch
    import torch.distributed as dist
    if launcher == 'none' or torch.cuda.is_available() or dist.is_initialized():
        return
    if launcher == 'slurm':
        env = os.environ
        if 'MASTER_ADDR' not in env:
            nodes = subprocess.getoutput(f'scontrol show hostname {env["SLURM_NODELIST"]}')
            env['MASTER_ADDR'] = nodes.split()[0]
        env.setdefault('MASTER_PORT', '29500')
        env['RANK'], env['WORLD_SIZE'] = env['SLURM_PROCID'], env['SLURM_NTASKS']
        env['LOCAL_RANK'] = env.get('SLURM_LOCALID', '0')
    elif launcher == 'mpi':
        env = os.environ
        env['RANK'] = env.get('OMPI_COMM_WORLD_RANK', '0')
        env['WORLD_SIZE'] = env.get('OMPI_COMM_WORLD_SIZE', '1')
        env['LOCAL_RANK'] = env.get('OMPI_COMM_WORLD_LOCAL_RANK', '0')
        env.setdefault('MASTER_ADDR', '127.0.0.1')
        env.setdefault('MASTER_PORT', '29500')
    dist.init_process_group(backend='gloo')


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, for a single-machine process group's
    ``MASTER_PORT`` (another process may take it before it is used; fine for local runs)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def finish_distributed() -> None:
    """Wait for every process, then close the process group (a no-op without one).

    Call it when a process that trained under a launcher is done: a process that exits while
    gloo's threads still run can abort ("terminate called without an active exception").
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
