"""Running and tearing down a Lava runtime: one line for a failed Lava process, and no wait on
processes that will never answer (Lava internals, guarded)."""

from __future__ import annotations

from sne_loihi.errors import SimulationError


def run_steps(process: object, steps: int, names: str) -> None:
    """Run the graph of ``process`` for ``steps`` steps. A Lava process that raises ends the
    run with one line naming its error (Lava only logs it, multi-line, from another process).

    Args:
        process: The process the runtime is run through.
        steps: Lava steps.
        names: What the graph runs (its netx files), for the message.

    Raises:
        SimulationError: A Lava process raised. ``KeyboardInterrupt`` passes through.
    """
    from lava.magma.core.run_conditions import RunSteps

    try:
        process.run(condition=RunSteps(num_steps=steps))
    except Exception as exc:
        cause = actor_error(process.runtime) or exc
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise SimulationError(f"Lava stopped while running {names}: {type(cause).__name__}: {first}") from exc


def actor_error(runtime: object) -> BaseException | None:
    """The first exception a Lava OS process of ``runtime`` reported (Lava only logs them)."""
    infra = getattr(runtime, "_messaging_infrastructure", None)
    for actor in getattr(infra, "actors", ()):
        try:
            error = actor.exception
        except (OSError, ValueError, EOFError):  # its pipe is closed already
            continue
        if error:
            return error[0]
    return None


def abort_runtime(runtime: object) -> None:
    """Tear down a Lava runtime whose run failed: terminate the OS processes still alive,
    release the shared memory and mark the runtime stopped (so neither ``stop`` nor its
    ``__del__`` waits on processes that will never answer). Lava internals, guarded."""
    if runtime is None:
        return
    infra = getattr(runtime, "_messaging_infrastructure", None)
    for actor in getattr(infra, "actors", ()):
        if getattr(actor, "_is_done", False):
            continue
        try:
            if actor.is_alive():
                actor.terminate()
            actor.join()
        except (OSError, ValueError, AssertionError):
            pass
    for name in ("smm", "_watchdog_manager"):
        owner = infra if name == "smm" else runtime
        part = getattr(owner, name, None)
        stop = getattr(part, "shutdown" if name == "smm" else "stop", None)
        if stop is not None:
            try:
                stop()
            except Exception:  # best effort: the processes are gone already
                pass
    runtime._is_running = False
    runtime._is_started = False
