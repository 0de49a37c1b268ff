"""Every Lava process and process model of the project lives in ``sim/lava_processes/``.

Lava's compiler executes every module of a process's package once per module of that package,
for each process instance it compiles (``ProcGroupDiGraphs._find_proc_models``); a process
defined among the many modules of ``sim/`` made every compile execute hundreds of modules
per instance. This keeps the package small and the processes in it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import sne_loihi.sim as sim
import sne_loihi.sim.lava_processes as lava_processes

#: The modules the package may hold: each one multiplies every process's model search.
MAX_MODULES = 4


def _lava_classes(module: object) -> list[str]:
    """The module's own processes, and its models of processes of this project (a model of one of
    Lava's processes, e.g. the fast ``Conv`` model, is chosen through the run configuration, and
    Lava searches for it in Lava's own folder)."""
    from lava.magma.core.model.model import AbstractProcessModel
    from lava.magma.core.process.process import AbstractProcess

    def ours(cls: type) -> bool:
        if issubclass(cls, AbstractProcess):
            return True
        target = getattr(cls, "implements_process", None)
        return issubclass(cls, AbstractProcessModel) and target is not None and target.__module__.startswith("sne_loihi")

    return [name for name, cls in inspect.getmembers(module, inspect.isclass)
            if cls.__module__ == module.__name__ and ours(cls)]


def test_no_lava_process_or_model_is_defined_outside_the_package() -> None:
    outside = {}
    for info in pkgutil.iter_modules(sim.__path__):
        if info.ispkg:
            continue
        found = _lava_classes(importlib.import_module(f"{sim.__name__}.{info.name}"))
        if found:
            outside[info.name] = found
    assert outside == {}, f"move these into sim/lava_processes/: {outside}"


def test_the_package_is_small_and_holds_the_processes() -> None:
    modules = [info.name for info in pkgutil.iter_modules(lava_processes.__path__)]
    assert 0 < len(modules) <= MAX_MODULES, modules
    defined = {name: _lava_classes(importlib.import_module(f"{lava_processes.__name__}.{name}")) for name in modules}
    assert all(defined.values()), defined  # each module is there for its processes or models
