"""The sections of a run configuration: one small dataclass per concern, and the enums
and defaults they use. :mod:`sne_loihi.config` assembles them into ``RunConfig`` (and
re-exports every name here); their values are checked by :mod:`sne_loihi.checks`."""

from __future__ import annotations

import enum
from dataclasses import InitVar, dataclass, field


class Optimizer(str, enum.Enum):
    """Optimisers a training stage may use."""

    ADAM = "adam"
    ADAMW = "adamw"
    SGD = "sgd"


class NeuronLibrary(str, enum.Enum):
    """Which neuron library a student is built with (``student.neuron_library``; the config
    and student specs called it ``backend`` before, a name the Lava target also has).

    ``SLAYER``: lava-dl SLAYER CUBA-LIF, quantised like Loihi; exportable to netx and Lava.
    ``SPIKINGJELLY``: the paper's SpikingJelly LIF (Eqs. 1-3), float, torch only: the
    reference to compare with; it cannot be exported.
    """

    SLAYER = "slayer"
    SPIKINGJELLY = "spikingjelly"


#: The enum's old name (code written against it keeps working).
StudentBackend = NeuronLibrary


class StudentEngine(str, enum.Enum):
    """How SLAYER students are executed (the parameters and the exported network are the same).

    ``FAST``: the project's time-major engine (``sne_loihi.students.fast_cuba``): SLAYER's
    quantised weights and fixed-point CUBA arithmetic, spike-for-spike identical to SLAYER,
    one fused autograd op per layer, plain torch on CPU and CUDA (nothing compiled).
    ``SLAYER``: lava-dl's own blocks (its CPU path is a Python loop over time on int64; on
    CUDA it compiles ``.cu`` kernels at first use, which needs nvcc).
    """

    FAST = "fast"
    SLAYER = "slayer"


class StudentNorm(str, enum.Enum):
    """Normalisation of a SLAYER student's convolutions.

    ``NONE``: none (the synaptic input goes straight to the neuron).
    ``BATCH``: training puts a batch norm on every convolution's synaptic input; at the end of
    training its statistics are recomputed on the training images (as training shows them) and it is folded into
    the convolution (a per-output-channel scale of the weights, requantised to SLAYER's 8-bit
    grid, and a per-channel bias, :mod:`sne_loihi.students.fold`). The stored, evaluated and
    exported students are the folded ones. Needs ``current_decay = 1``: then a constant on the
    current is exactly the per-step voltage bias of a Loihi neuron.
    ``FOLDED``: the stored form of a trained ``BATCH`` student (convolutions with a neuron
    bias); not a training choice.
    """

    NONE = "none"
    BATCH = "batch"
    FOLDED = "folded"


class PartitionStrategy(str, enum.Enum):
    """How the teacher's feature dimensions are split among students (method.md section 4)."""

    FIXED = "fixed"
    AGGLOMERATIVE = "agglomerative"
    KMEANS = "kmeans"
    BALANCED_KMEANS = "balanced-kmeans"
    BALANCED_OPTIMAL = "balanced-optimal"
    FINETUNE = "finetune"


class FeatureScaling(str, enum.Enum):
    """How teacher features are mapped onto the students' firing-rate range [0, 1].

    ``MAX``: divide each feature dimension by a high percentile of its training-set values
    (``feature_percentile``) and clip to [0, 1]. Teacher features are post-ReLU (>= 0), so
    this keeps every dimension inside the range a rate can reach while preserving its
    relative spread. ``NONE``: use raw features (only sensible for teachers already in [0, 1]).
    """

    MAX = "max"
    NONE = "none"


class ImageChannels(str, enum.Enum):
    """How many channels images are brought to (``data.channels``; image folders and ``.npz``).

    ``AUTO``: from the data: grayscale when every image is grayscale, RGBA when every image has
    an alpha channel, else RGB (alpha dropped). ``GRAY``: 1 channel (ITU-R 601 luma, Pillow's
    ``convert("L")``). ``RGB``: 3 channels (gray repeated, alpha dropped). ``RGBA``: 4 channels
    (opaque alpha added where an image has none).
    """

    AUTO = "auto"
    GRAY = "gray"
    RGB = "rgb"
    RGBA = "rgba"


class ArrayLayout(str, enum.Enum):
    """Axis order of the image arrays in an ``.npz`` data set (``data.layout``).

    ``AUTO``: inferred where unambiguous (a channel axis of 1, 3 or 4 on one side only; 3-D
    arrays ``[N, H, W]`` are grayscale). ``NHWC`` / ``NCHW``: as named.
    """

    AUTO = "auto"
    NHWC = "nhwc"
    NCHW = "nchw"


class LrSchedule(str, enum.Enum):
    """How the teacher's learning rate moves (``teacher.schedule``).

    ``COSINE``: cosine from ``lr`` to 0 over the epochs, stepped once per epoch.
    ``WARMUP_LINEAR``: airbench's per-batch schedule: linear from ``0.2 * lr`` to ``lr`` over the
    first ``warmup_fraction`` of all steps, then linear down to ``0.07 * lr``.
    """

    COSINE = "cosine"
    WARMUP_LINEAR = "warmup-linear"


class FlipMode(str, enum.Enum):
    """Horizontal flips of the teacher's training images when ``data.augment`` is on (``teacher.flip``).

    ``RANDOM``: each image flipped with probability 1/2 in every batch, cropped from its
    zero-padded copy (``data.augment_nchw``, today's augmentation).
    ``ALTERNATING``: airbench's: each image is flipped at random once (seeded by ``train.seed``),
    then its flip alternates from epoch to epoch, so every two epochs show both views; cropped
    from its reflect-padded copy.
    """

    RANDOM = "random"
    ALTERNATING = "alternating"


class TestTimeAugment(str, enum.Enum):
    """Views the teacher's final test accuracy averages the logits of (``teacher.tta``).

    ``NONE``: the image. ``FLIP``: the image and its mirror. ``FLIP_TRANSLATE``: airbench's
    level 2: half the flip average of the image, half that of two copies shifted by one pixel
    (reflect-padded, up-left and down-right). The per-epoch accuracy is always the plain one.
    """

    __test__ = False  # not a pytest test class

    NONE = "none"
    FLIP = "flip"
    FLIP_TRANSLATE = "flip-translate"


@dataclass
class DataConfig:
    """Which data set and how it is read.

    Attributes:
        name: Registered data set name (``digits``, ``cifar10``, ``imagefolder``, ``npz``).
        data_dir: Where file-based data sets are: the CIFAR-10 python-batch folder, an image
            tree (a folder, or a ``.tar``/``.tar.gz``/``.tgz``/``.zip`` of one) or an ``.npz`` file.
        augment: Standard augmentation during training (random crop with padding, flip).
        test_fraction: Held-out fraction for data sets without an official split (digits, an
            image tree without ``train/`` and ``test/``).
        max_train: Use at most this many training samples (0 = all); stratified prefix.
        max_test: Use at most this many test samples (0 = all).
        channels: Channels images are brought to (image folders, ``.npz``).
        image_size: Resize every image to ``image_size x image_size`` (0 = keep the size; then
            all images must have one size).
        layout: Axis order of ``.npz`` image arrays.
        cache_dir: Where decoded image trees are cached (``None``: ``$SNE_CACHE_DIR``, else
            ``$XDG_CACHE_HOME/sne-loihi``, else ``~/.cache/sne-loihi``).
        cache: Cache decoded image trees (plain ``.npy`` arrays + a manifest of the source).
        class_names: The data's class names, label order (``None``: not recorded). A run
            records them in its ``config.toml`` when it is made; data whose classes differ (a
            class folder added, removed or renamed) is then refused instead of read with labels
            that mean other classes.
    """

    name: str = "digits"
    data_dir: str | None = None
    augment: bool = False
    test_fraction: float = 0.2
    max_train: int = 0
    max_test: int = 0
    channels: ImageChannels = ImageChannels.AUTO
    image_size: int = 0
    layout: ArrayLayout = ArrayLayout.AUTO
    cache_dir: str | None = None
    cache: bool = True
    class_names: list[str] | None = None


@dataclass
class TeacherConfig:
    """The ANN teacher and how it is trained.

    Attributes:
        arch: Registered teacher name, or ``external`` for a user's own model.
        factory: For ``external``: ``"package.module:function"`` returning the nn.Module.
        feature_layer: For ``external``: name of the module whose output is f_T.
        checkpoint: For ``external``: path to the user's state_dict.
        epochs: Teacher training epochs.
        lr: Learning rate (with ``warmup-linear``: its peak).
        batch_size: The global batch (under torchrun each of P processes takes ``batch_size / P``).
        optimizer: Optimiser of the teacher.
        weight_decay: Weight decay of that optimiser.
        amp: Train in mixed precision (float16 + loss scaling on CUDA, bfloat16 on CPU; off by
            default: float32's results). A CPU without bfloat16 kernels (oneDNN asks for AVX-512)
            trains in float32 and says so: emulated bfloat16 is tens of times slower there.
        momentum: SGD momentum (Nesterov; ``optimizer = "sgd"`` only).
        label_smoothing: Cross-entropy label smoothing (airbench: 0.2).
        schedule: Learning-rate schedule (see :class:`LrSchedule`).
        warmup_fraction: Share of all steps spent warming up (``warmup-linear`` only).
        bias_lr_scale: Learning-rate factor of the BatchNorm biases; their weight decay is
            divided by it, so the decay per step stays ``lr * weight_decay`` (airbench: 64).
        lookahead_every: Every this many steps the weights are pulled towards a slow copy
            and the copy is set to them (airbench's lookahead, decay ``0.95**5 * (t/T)**3``);
            the model ends on the slow copy. 0: off.
        flip: Flip policy of the training augmentation (see :class:`FlipMode`).
        translate: Largest shift in pixels of the training augmentation's crop.
        cutout: Side in pixels of a square zeroed at a random place of every training image,
            after flip and shift (DeVries & Taylor 2017; airbench96 uses 12). 0: off.
        tta: Views averaged for the final test accuracy (see :class:`TestTimeAugment`).
        channels_last: Train and evaluate in channels-last memory layout (faster oneDNN
            convolutions on CPUs; same numbers up to rounding).
    """

    arch: str = "digits_cnn"
    factory: str | None = None
    feature_layer: str | None = None
    checkpoint: str | None = None
    epochs: int = 15
    lr: float = 2e-3
    batch_size: int = 64
    optimizer: Optimizer = Optimizer.ADAM
    weight_decay: float = 1e-4
    amp: bool = False
    momentum: float = 0.9
    label_smoothing: float = 0.0
    schedule: LrSchedule = LrSchedule.COSINE
    warmup_fraction: float = 0.23
    bias_lr_scale: float = 1.0
    lookahead_every: int = 0
    flip: FlipMode = FlipMode.RANDOM
    translate: int = 4
    cutout: int = 0
    tta: TestTimeAugment = TestTimeAugment.NONE
    channels_last: bool = False


@dataclass
class NeuronConfig:
    """SLAYER CUBA-LIF neuron parameters (Loihi semantics, see method.md section 2).

    Attributes:
        threshold: Firing threshold of the voltage (the first layer's is multiplied by
            ``2**input_bits - 1``, as it is fed the graded integers).
        current_decay: Share of the synaptic current lost per step (0: it never decays; 1: the
            current is the step's input alone, no current memory).
        voltage_decay: Share of the voltage lost per step.
        tau_grad: Width of SLAYER's surrogate gradient of the spike function (a Laplace kernel
            ``100 * tau_grad * threshold`` wide; training only: 0.01 fits CIFAR-10 students
            better than 0.03, docs/training.md).
        scale_grad: Area of SLAYER's surrogate gradient (``scale_grad / 10``).
    """

    threshold: float = 1.0
    current_decay: float = 0.25
    voltage_decay: float = 0.03
    tau_grad: float = 0.03
    scale_grad: float = 3.0


@dataclass
class StudentConfig:
    """The spiking students.

    Attributes:
        arch: Registered student architecture name.
        neuron_library: SLAYER (for Loihi) or SpikingJelly (the paper's reference). Stored
            config files, checkpoints and manifests that call it ``backend`` still load
            (:data:`sne_loihi.config.RENAMED_KEYS`); ``StudentConfig(backend=...)`` and
            ``dataclasses.replace(cfg, backend=...)`` still set it.
        width: Channel multiplier applied to the architecture's base widths.
        first_width: The first layer's multiplier where it differs (``None``: ``width``). That
            layer reads graded pixels, so its MACs, not spike ACs, dominate a student's energy.
        time_steps: T, the number of steps the (repeated) input is presented.
        input_bits: Graded input spikes carry pixel values quantised to this many bits
            (integers 0 .. 2**bits - 1, exactly what the Lava graph's gate sends with
            ``input_message_bits = input_bits``).
        neuron: CUBA-LIF parameters.
        engine: How SLAYER students run (same spikes either way; see :class:`StudentEngine`).
        norm: Batch norm while training, folded at the end (see :class:`StudentNorm`).
    """

    arch: str = "digits_small"
    neuron_library: NeuronLibrary = NeuronLibrary.SLAYER
    engine: StudentEngine = StudentEngine.FAST
    width: float = 1.0
    first_width: float | None = None
    time_steps: int = 4
    input_bits: int = 4
    neuron: NeuronConfig = field(default_factory=NeuronConfig)
    norm: StudentNorm = StudentNorm.NONE
    backend: InitVar[NeuronLibrary | str | None] = None  # the old name of neuron_library

    def __post_init__(self, backend: NeuronLibrary | str | None) -> None:
        if backend is not None:
            self.neuron_library = NeuronLibrary(backend)


@dataclass
class EnsembleConfig:
    """The student ensemble and its distillation loss.

    Attributes:
        num_students: N, the number of students (and of groups of teacher features).
        partition: How teacher features are split among the students.
        alpha: Weight of the distillation term (0 = no distillation).
        feature_scaling: How teacher features meet the rate range [0, 1].
        feature_percentile: Percentile used by ``FeatureScaling.MAX``.
        train_active: Dropout training: activate this many random students per batch
            (0 = all).
    """

    num_students: int = 4
    partition: PartitionStrategy = PartitionStrategy.FIXED
    alpha: float = 5.0
    feature_scaling: FeatureScaling = FeatureScaling.MAX
    feature_percentile: float = 99.0
    train_active: int = 0


@dataclass
class FinetuneConfig:
    """Teacher disentanglement before distillation (method.md section 4), run by
    ``sne pipeline`` when ``ensemble.partition = "finetune"``: the teacher is fine-tuned with
    ``L_CE + beta * L_sim`` over ``ensemble.num_students`` contiguous chunks, then the
    contiguous equal split is used.

    Values are checked with the rest of the config (:func:`sne_loihi.checks.check_config`).

    Attributes:
        beta: Weight of L_sim; must be negative (L_sim is maximised).
        epochs: Fine-tuning epochs (the paper: 10-20).
        lr: Adam learning rate of the fine-tuning.
    """

    beta: float = -0.5
    epochs: int = 10
    lr: float = 1e-4


@dataclass
class TrainConfig:
    """Student-ensemble training settings.

    Attributes:
        epochs: Student training epochs.
        lr: Learning rate of the students and the head.
        batch_size: The global batch (under torchrun each of P processes takes ``batch_size / P``).
        optimizer: Optimiser of the students and the head.
        weight_decay: Weight decay of that optimiser.
        seed: Seed of everything random in a run: data split (data sets without an official
            split), initialisation, batches, augmentation, random-K draws.
        device: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda[:i]``.
        threads: torch intra-op threads on CPU (0 = torch's default).
        fold_epochs: With ``student.norm = "batch"``: epochs of the folded students after the
            fold (weights only; the folded biases stay on their grid), at a tenth of ``lr``.
        frozen_teacher: Compute the KD targets with a frozen TorchScript copy of a built-in
            teacher optimised for CPU inference (:mod:`sne_loihi.teachers.frozen`): the same
            features up to float rounding, a faster step. ``false``: the eager teacher, the
            targets bit for bit as runs before this option computed them.
        translate: Largest shift in pixels of the students' training crop (zero padding;
            with ``data.augment``, which also flips at random). 0: flips only.
    """

    epochs: int = 20
    lr: float = 3e-3
    batch_size: int = 64
    optimizer: Optimizer = Optimizer.ADAM
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    fold_epochs: int = 0
    frozen_teacher: bool = True
    translate: int = 4


class FirstLayer(str, enum.Enum):
    """How an exported student's first weighted layer receives the input (``lava.first_layer``).

    ``SYNAPTIC``: through its synapses: the graded image is sent every time step and the
    first layer's synaptic MACs are paid T times per sample (netx's usual network).
    ``BIAS``: through its neurons' bias: with ``current_decay = 1`` the CUBA current holds no
    memory and the repeated image gives the same current every step, so the host computes
    the integer ``W * x + b`` once per sample and writes it into the first layer's
    ``bias_mant``; the first layer's MACs are charged once per sample (see docs/energy.md).
    An export refuses it, in one line, for a student that does not allow it.
    ``AUTO``: ``BIAS`` for every student that allows it, ``SYNAPTIC`` for the others, with
    the reason recorded in the manifest and the report.
    """

    SYNAPTIC = "synaptic"
    BIAS = "bias"
    AUTO = "auto"


class Backend(str, enum.Enum):
    """Where the Lava graph runs: ``auto`` (Loihi 2 when Intel's lava-loihi extension is
    installed, else the CPU), ``cpu`` (``Loihi2SimCfg`` fixed point) or ``loihi2``."""

    AUTO = "auto"
    CPU = "cpu"
    LOIHI2 = "loihi2"


#: The energy profile reports, ``sne evaluate`` and ``sne simulate`` use unless told otherwise
#: (:data:`sne_loihi.cost.energy.ENERGY_PROFILES`).
DEFAULT_ENERGY_PROFILE = "cmos45nm"
#: Samples per Lava run of one compiled graph (``lava.capacity``, ``--capacity``, the graph's,
#: the simulator's and the export parity check's default).
DEFAULT_LAVA_CAPACITY = 25
#: Test samples of the Lava stage, the export's parity check and ``sne simulate``.
DEFAULT_LAVA_SAMPLES = 100


@dataclass
class LavaConfig:
    """The pipeline's export and Lava simulation stage.

    Attributes:
        enabled: Export to netx and simulate in Lava at the end of ``sne pipeline``.
        samples: The first test samples that the export's parity check and the simulation
            run (0 disables the stage).
        backend: Where the simulation runs.
        capacity: Samples per Lava run of the one compiled graph.
        active: Active sets to simulate on the same graph, each ``all``, indices
            ``0,2`` or ``k=K`` (K drawn at random with the run's seed).
        cascade: Confidence thresholds of per-sample activation simulated on the same
            graph: the run's cascade head (trained before the export) decides after each
            student, on the host between the stage runs (as on Loihi 2), whether a sample goes on (0: the first student only; > 1:
            every student). Empty: no per-sample runs.
        first_layer: How the export drives every student's first weighted layer: its
            synapses every step (``synaptic``), its neurons' bias once per sample (``bias``;
            needs ``student.neuron.current_decay = 1`` and graded input), or ``auto`` (bias
            where a student allows it, saying why not elsewhere); see :class:`FirstLayer`.
    """

    enabled: bool = True
    samples: int = DEFAULT_LAVA_SAMPLES
    backend: Backend = Backend.AUTO
    capacity: int = DEFAULT_LAVA_CAPACITY
    active: list[str] = field(default_factory=lambda: ["all", "0"])
    cascade: list[float] = field(default_factory=lambda: [0.6, 0.9])
    first_layer: FirstLayer = FirstLayer.SYNAPTIC


@dataclass
class ReportConfig:
    """What a run report holds beyond the cost table (``sne pipeline``, ``sne evaluate``).

    Attributes:
        energy_profile: Name of a registered energy profile or a TOML file.
        activation: Random-K, all-subset and per-sample (cascade) analysis.
        noise: Gaussian noise sigmas for the robustness table (empty: skip).
        repeats: Noise draws per level.
        batch_size: Evaluation batch size.
        draw_batch: Random K (and dropout-trained ensembles at their K) draw a new set of K
            students every ``draw_batch`` test samples, the paper's per-batch evaluation; a
            small value averages over many draws, so one lucky or unlucky draw (e.g. the best
            student for every sample at K = 1) does not decide the comparison.
        neurobench: Add NeuroBench's synaptic-op counts next to ours
            (:mod:`sne_loihi.cost.neurobench_check`; needs the ``interop`` extra).
        neurobench_samples: Test samples for it (0: all).
    """

    energy_profile: str = DEFAULT_ENERGY_PROFILE
    activation: bool = True
    noise: list[float] = field(default_factory=list)
    repeats: int = 10
    batch_size: int = 256
    draw_batch: int = 32
    neurobench: bool = False
    neurobench_samples: int = 0


@dataclass
class PipelineConfig:
    """What ``sne pipeline`` runs beyond teacher -> students -> export + Lava -> report.

    Attributes:
        dropout_k: Also train dropout variants with these K (each in 1..N-1), e.g. ``[1, 2]``.
    """

    dropout_k: list[int] = field(default_factory=list)
