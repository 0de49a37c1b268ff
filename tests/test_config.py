"""Config resolution, TOML round trips and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from sne_loihi.config import (
    DataConfig,
    Optimizer,
    PartitionStrategy,
    PipelineConfig,
    ReportConfig,
    RunConfig,
    NeuronLibrary,
    dump_toml,
    load_toml,
    preset,
    resolve,
)
from sne_loihi.errors import ConfigError


@pytest.mark.parametrize("dataset", ["digits", "cifar10"])
def test_preset_round_trips_through_dict_and_toml(dataset: str, tmp_path: Path) -> None:
    cfg = preset(dataset)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    dump_toml(cfg, tmp_path / "c.toml")
    assert RunConfig.from_dict(load_toml(tmp_path / "c.toml")) == cfg


def test_precedence_preset_file_flags(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[train]\nepochs = 7\nlr = 0.5\n[ensemble]\npartition = "kmeans"\n')
    cfg = resolve("digits", tmp_path / "c.toml", {"train.epochs": 2, "train.seed": None})
    assert cfg.train.epochs == 2  # flag beats file
    assert cfg.train.lr == 0.5  # file beats preset
    assert cfg.train.seed == preset("digits").train.seed  # None flag ignored
    assert cfg.ensemble.partition is PartitionStrategy.KMEANS
    assert cfg.train.optimizer is Optimizer.ADAM
    assert cfg.student.neuron_library is NeuronLibrary.SLAYER


def test_file_dataset_is_used_when_no_flag(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[data]\nname = "cifar10"\n')
    assert resolve(None, tmp_path / "c.toml").teacher.arch == preset("cifar10").teacher.arch


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[train]\nepochs = 'many'\n", "train.epochs: expected an integer"),
        ("[train]\nepocs = 3\n", "unknown config key"),
        ('[ensemble]\npartition = "magic"\n', "not one of"),
        ("[train\n", "cannot read config file"),
    ],
)
def test_bad_config_files_give_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        resolve("digits", tmp_path / "c.toml")
    assert "\n" not in str(info.value)


def test_missing_config_file_and_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        resolve("digits", tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="no preset"):
        resolve("mnist")


def test_contradicting_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[data]\nname = "cifar10"\n')
    with pytest.raises(ConfigError, match="contradicts"):
        resolve("digits", tmp_path / "c.toml")


@pytest.mark.parametrize("text", ["data = 5\n", "[data]\nname = 5\n"])
def test_a_config_file_with_a_bad_data_section_is_a_config_error(tmp_path, text: str) -> None:
    from sne_loihi.config import resolve

    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="data"):
        resolve(None, path)


@pytest.mark.parametrize(("section", "message"), [
    ({"finetune": {"beta": 0.5}}, "finetune.beta must be a negative number (L_sim is maximised), got 0.5"),
    ({"finetune": {"lr": 0.0}}, "finetune.lr must be a positive number, got 0.0"),
    ({"finetune": {"epochs": 0}}, "finetune.epochs must be a positive integer, got 0"),
    ({"report": {"draw_batch": 0}}, "report.draw_batch must be >= 1, got 0"),
    ({"report": {"noise": [0.1, -1.0]}}, "report.noise must be distinct finite numbers in 0..10, got [0.1, -1.0]"),
    ({"report": {"noise": [0.1, 0.1]}}, "report.noise must be distinct finite numbers in 0..10, got [0.1, 0.1]"),
    ({"report": {"noise": [1e300]}}, "report.noise must be distinct finite numbers in 0..10, got [1e+300]"),
    ({"report": {"repeats": 10 ** 12}}, "report.repeats must be at most 10,000, got 1000000000000"),
    ({"report": {"energy_profile": "nosuch"}}, "unknown energy profile 'nosuch'"),
    ({"pipeline": {"dropout_k": [4]}}, "pipeline.dropout_k: 4 must be in 1..3"),
    ({"data": {"max_test": -1}}, "data.max_test must be >= 0 (0 = all), got -1"),
])
def test_one_validation_path_checks_every_section(section: dict, message: str) -> None:
    """check_config refuses what FinetuneConfig, ReportOptions, run_pipeline and load_dataset
    each refused on their own before, with the same one-line key-naming messages."""
    from sne_loihi.checks import check_config

    cfg = RunConfig.from_dict(section)  # parsing takes any value of the right type
    with pytest.raises(ConfigError) as exc:
        check_config(cfg)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_sections_built_alone_are_checked_by_the_same_rules() -> None:
    from sne_loihi.analysis.options import ReportOptions
    from sne_loihi.data import load_dataset

    with pytest.raises(ConfigError, match=r"^data.max_train must be >= 0 \(0 = all\), got -2$"):
        load_dataset(DataConfig(max_train=-2))
    with pytest.raises(ConfigError, match=r"^report.repeats must be >= 1, got 0$"):
        ReportOptions(repeats=0)
    assert ReportOptions.from_config(RunConfig().report) == ReportOptions()


def test_old_configs_without_the_report_and_pipeline_sections_get_their_defaults(tmp_path: Path) -> None:
    path = tmp_path / "old.toml"
    path.write_text('[data]\nname = "digits"\n[lava]\nsamples = 3\n')
    cfg = resolve(None, path)
    assert cfg.report == ReportConfig() and cfg.pipeline == PipelineConfig()
    assert cfg.lava.samples == 3


def test_files_that_still_say_backend_load_and_new_files_say_neuron_library(tmp_path: Path) -> None:
    """student.backend was renamed neuron_library (the Lava target is the other backend): an
    old config.toml, an old ensemble checkpoint (config and student specs) and an old
    manifest's spec still load; what is written uses the new key."""
    import torch

    from sne_loihi.ensemble.checkpoint import build_ensemble, ensemble_extra, load_ensemble
    from sne_loihi.io import save_checkpoint
    from sne_loihi.partition import Partition
    from sne_loihi.students import StudentSpec

    old_toml = tmp_path / "config.toml"
    old_toml.write_text('[student]\nbackend = "spikingjelly"\narch = "digits_tiny"\n')
    cfg = resolve(None, old_toml)
    assert cfg.student.neuron_library is NeuronLibrary.SPIKINGJELLY
    dump_toml(cfg, tmp_path / "new.toml")
    stored = load_toml(tmp_path / "new.toml")["student"]
    assert stored["neuron_library"] == "spikingjelly" and "backend" not in stored

    partition = Partition.from_dict({"strategy": "fixed", "feature_dim": 4, "groups": [[0, 1], [2, 3]]})
    model = build_ensemble(cfg.student, partition, (1, 8, 8), 10)
    extra = ensemble_extra(model, partition, torch.ones(4), (1, 8, 8), 10, [str(i) for i in range(10)])
    assert all(s["neuron_library"] == "spikingjelly" and "backend" not in s for s in extra["student_specs"])
    old_config = cfg.to_dict()
    old_config["student"]["backend"] = old_config["student"].pop("neuron_library")
    old_specs = [{("backend" if k == "neuron_library" else k): v for k, v in s.items()} for s in extra["student_specs"]]
    save_checkpoint(tmp_path / "ensemble.pt", {**extra, "student_specs": old_specs, "config": old_config,
                                               "model": model.state_dict()})
    loaded = load_ensemble(tmp_path / "ensemble.pt")
    assert loaded.config == cfg
    assert [s.spec for s in loaded.model.students] == [s.spec for s in model.students]
    assert StudentSpec.from_dict(old_specs[0]).neuron_library is NeuronLibrary.SPIKINGJELLY  # a manifest's spec
    with pytest.raises(ConfigError, match="backend"):
        StudentSpec.from_dict({**old_specs[0], "neuron_library": "slayer"})
    with pytest.raises(ConfigError, match="student.backend is the old name of student.neuron_library"):
        RunConfig.from_dict({"student": {"backend": "slayer", "neuron_library": "slayer"}})


def test_code_that_still_says_backend_sets_the_neuron_library() -> None:
    from dataclasses import replace

    from sne_loihi.config import StudentBackend, StudentConfig

    assert StudentBackend is NeuronLibrary
    student = replace(StudentConfig(), arch="digits_tiny", backend=StudentBackend.SPIKINGJELLY)
    assert student.neuron_library is NeuronLibrary.SPIKINGJELLY
    assert replace(student, width=2.0).neuron_library is NeuronLibrary.SPIKINGJELLY
    assert "backend" not in RunConfig(student=student).to_dict()["student"]


def test_set_refuses_a_whole_table_and_a_preset() -> None:
    from sne_loihi.config import parse_override

    with pytest.raises(ConfigError, match=r"--set teacher: a table would replace the whole section; set its keys one by "
                                          r"one \(--set teacher.epochs=...\)"):
        parse_override("teacher={epochs=1}")
    with pytest.raises(ConfigError, match="choose a preset with --preset NAME"):
        parse_override("preset=cpu-cifar10")


def test_set_data_name_chooses_that_data_sets_preset_like_dataset() -> None:
    from sne_loihi.config import resolve

    assert resolve(None, None, {"data.name": "cifar10"}) == resolve("cifar10")
    with pytest.raises(ConfigError, match="data set digits contradicts --set data.name=cifar10"):
        resolve("digits", None, {"data.name": "cifar10"})


def test_a_users_config_file_is_layered_over_the_runs_stored_config(tmp_path: Path) -> None:
    """``sne train RUN --config partial.toml`` replaced the run's config.toml with the partial
    file over the defaults (teacher, data limits and class names reset)."""
    from sne_loihi.cli.options import run_config
    from sne_loihi.config import RunConfig, dump_toml, resolve

    run = tmp_path / "run"
    run.mkdir()
    stored = resolve("digits", None, {"data.max_train": 300, "teacher.epochs": 2})
    dump_toml(stored, run / "config.toml")
    (tmp_path / "partial.toml").write_text("[train]\nepochs = 1\n")
    cfg = run_config(None, tmp_path / "partial.toml", run, {})
    assert (cfg.train.epochs, cfg.data.max_train, cfg.teacher.epochs) == (1, 300, 2)
    assert isinstance(cfg, RunConfig)


def test_a_config_file_naming_a_preset_applies_it(tmp_path: Path) -> None:
    from sne_loihi.cli.options import run_config
    from sne_loihi.config import resolve

    (tmp_path / "mine.toml").write_text('preset = "cpu-cifar10"\n[train]\nepochs = 3\n')
    cfg = run_config(None, tmp_path / "mine.toml", None, {})
    want = resolve(None, None, {"train.epochs": 3}, "cpu-cifar10")
    assert (cfg.teacher, cfg.student, cfg.data.name, cfg.train.epochs) == (want.teacher, want.student, "cifar10", 3)


def test_set_with_an_old_key_name_sets_the_new_one() -> None:
    from sne_loihi.config import resolve

    assert resolve(None, None, {"student.backend": "spikingjelly"}).student.neuron_library.value == "spikingjelly"


def test_pipeline_settings_that_would_fail_after_training_are_refused_first() -> None:
    from sne_loihi.checks import check_config
    from sne_loihi.config import resolve

    with pytest.raises(ConfigError, match="pipeline.dropout_k must be distinct integers >= 1"):
        check_config(resolve(None, None, {"pipeline.dropout_k": [1, 1]}))
    from sne_loihi.checks import check_lava_stage

    with pytest.raises(ConfigError, match="the Lava stage runs at most 16 students in one graph, the ensemble has 17"):
        check_lava_stage(resolve(None, None, {"ensemble.num_students": 17}))
    check_lava_stage(resolve(None, None, {"ensemble.num_students": 17, "lava.enabled": False}))


def test_a_lava_cascade_threshold_given_twice_is_refused() -> None:
    from sne_loihi.checks import check_config
    from sne_loihi.config import resolve

    with pytest.raises(ConfigError, match="lava.cascade names the threshold 0.6 twice"):
        check_config(resolve(None, None, {"lava.cascade": [0.6, 0.9, 0.6]}))
