"""The project's own Lava processes and their models, in a package of their own.

For every process instance it compiles, Lava's compiler looks for process models by
executing every module in the process's package directory, once per module of that package
(``ProcGroupDiGraphs._find_proc_models``). With these processes among the 25 modules of
``sne_loihi.sim``, a compile executed (and, without cached bytecode, recompiled) about 650
modules per process instance: 25 of the 49 s of the paper preset's export and Lava check.
Here the scan sees only these three modules.

- :mod:`.ensemble`: gate, synaptic-op counter, readout, cascade decision (the tapped graph).
- :mod:`.hardware`: the hardware-shaped graph's injector and spike-counting neuron models.
- :mod:`.bias_input`: the bias driver of a netx ``Input`` block.
"""
