"""The ``sne`` command line: teacher, partition, train, evaluate, export, nir, simulate, pipeline.

Every command resolves a :class:`~sne_loihi.config.RunConfig` through one front door
(:func:`~sne_loihi.cli.options.run_config`: dataset preset < named preset < TOML file or the
run folder's ``config.toml`` < flags; the flags that set config keys are the one table in
:mod:`~sne_loihi.cli.flags`), works in a run folder, and turns
:class:`~sne_loihi.errors.SneError` into a one-line ``error:`` message with exit code 1
(:func:`~sne_loihi.cli.app.friendly`). Heavy imports (torch models, SLAYER, Lava) happen
inside the commands. One module per stage: :mod:`.train_commands`, :mod:`.evaluate_command`,
:mod:`.export_commands`, :mod:`.simulate_command`, :mod:`.pipeline_command`.
"""

from sne_loihi.cli import (  # noqa: F401  (importing a command module registers its commands)
    evaluate_command, export_commands, pipeline_command, simulate_command, train_commands,
)
from sne_loihi.cli.app import app, main, teacher_app

__all__ = ["app", "main", "teacher_app"]

if __name__ == "__main__":  # pragma: no cover
    main()
