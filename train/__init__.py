"""The training stage (installed as ``sne_loihi.train``): teacher training and fine-tuning,
partition, distillation of the students, dropout variants, checkpoints and ``--resume``.

- :mod:`.stages`: the stage functions behind ``sne teacher``, ``sne partition``, ``sne train``
  and the pipeline (run-folder preparation, teacher features, partition, students, dropout).
- :mod:`.finetune_stage`: teacher disentanglement (``sne teacher finetune``).
- :mod:`.teacher`, :mod:`.students`: the training loops; :mod:`.teacher_recipe`: the teacher's
  airbench tricks (``teacher.*`` keys); :mod:`.common`: seeding, optimisers,
  epoch checkpoints.

Only the top floor (:mod:`sne_loihi.pipeline`, :mod:`sne_loihi.cli`) imports this package;
read-only code uses the core (e.g. :func:`sne_loihi.teachers.checkpoint.load_teacher`).
"""
