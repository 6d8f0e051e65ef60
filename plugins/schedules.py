"""Built-in learning-rate schedules (torch.optim.lr_scheduler, imported when one is built)."""

from orchestrator import Float, Int, Schedule, hookimpl


def total_steps(ctx) -> int:
    return max(1, ctx.max_epochs * ctx.steps_per_epoch)


def build_constant(params, optimizer, ctx):
    """The optimizer's learning rate throughout: no scheduler at all (None)."""
    return None


def build_cosine(params, optimizer, ctx):
    """Cosine decay from the learning rate to `min_factor` times it over the whole run."""
    import torch

    base = optimizer.param_groups[0]["lr"]
    return torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=total_steps(ctx), eta_min=base * params["min_factor"]
    )


def build_step(params, optimizer, ctx):
    """Multiply the learning rate by `gamma` every `every_epochs` epochs."""
    import torch

    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=params["every_epochs"], gamma=params["gamma"])


def build_one_cycle(params, optimizer, ctx):
    """Warm up to `max_factor` times the learning rate, then anneal (Smith's one-cycle policy)."""
    import torch

    base = optimizer.param_groups[0]["lr"]
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=base * params["max_factor"], total_steps=total_steps(ctx), pct_start=params["warmup"]
    )


@hookimpl
def register_schedules(register):
    register(Schedule("constant", "A constant learning rate.", build=build_constant, interval="step"))
    register(
        Schedule(
            "cosine",
            "Cosine annealing over all training steps.",
            params={"min_factor": Float(0.0, 0.5, default=0.0, help="final lr / initial lr")},
            build=build_cosine,
            interval="step",
        )
    )
    register(
        Schedule(
            "step",
            "Step decay: lr *= gamma every few epochs.",
            params={
                "every_epochs": Int(1, 100, default=10, help="epochs between decays"),
                "gamma": Float(0.05, 0.9, default=0.3, help="decay factor"),
            },
            build=build_step,
            interval="epoch",
        )
    )
    register(
        Schedule(
            "one_cycle",
            "One-cycle: warm-up to a peak lr, then annealing.",
            params={
                "max_factor": Float(1.0, 25.0, default=10.0, help="peak lr / optimizer lr"),
                "warmup": Float(0.05, 0.5, default=0.3, help="share of steps spent warming up"),
            },
            build=build_one_cycle,
            interval="step",
        )
    )
