"""Where each TensorFlow checkpoint variable goes in a Network: the one name table.

Why a table: four eras of training code wrote four naming schemes (FORMATS.md §6),
and a variable that lands in the wrong slot gives a network that loads and plays
badly without any error. Every pattern is listed here, once, as data; the reader
(tf_checkpoint.py) only applies it. A variable no rule accounts for is reported,
never dropped.

Targets are Network paths as `Network.tensors()` names them (`input.weights`,
`residual.3.conv2.gammas`, `residual.3.se.w1`, `policy1.means`, `ip_pol_w`...).
Two placeholders are resolved by `resolve()`:
- `{block}`: a residual block number, from a 1-based (`b1`) or 0-based (`b0`) group;
- `#k`: the k-th batch-norm scope of the TF1 eras (`bn0`, `bn1`...), numbered in
  construction order: input, then conv1/conv2 of each residual block, then the heads.
Kinds say how values are laid out in TensorFlow:
- CONV: HWIO kernel → Lc0 OIHW (transpose [3,2,0,1]);
- DENSE: [in, out] → Lc0 [out, in];
- VECTOR: C values in any shape with one non-unit axis (ghost batch norm stores (1,1,C,1,1));
- STDDEV: batch renorm's moving_stddev → variance = stddev² − ε;
- BN: a batch-norm variable whose name suffix (BN_SUFFIXES) picks field and kind;
- IGNORED: not a network weight (the reader lists what it ignored).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

CONV, DENSE, VECTOR, STDDEV, BN, IGNORED = "conv", "dense", "vector", "stddev", "bn", "ignored"

# Batch-norm variable suffix → (ConvBlock field, kind), or None for variables with no inference role.
# Renorm's own moving_variance is not its source of truth: moving_stddev is (lczero-training's export
# drops the variance when renorm is on), so STDDEV wins over VECTOR for `variances` (see `resolve`).
BN_SUFFIXES = {
    "gamma": ("gammas", VECTOR),
    "beta": ("betas", VECTOR),
    "moving_mean": ("means", VECTOR),
    "moving_variance": ("variances", VECTOR),
    "moving_stddev": ("variances", STDDEV),
    "renorm_mean": None,
    "renorm_stddev": None,
    "renorm_mean_weight": None,
    "renorm_stddev_weight": None,
}
BN_SUFFIX = "(?P<bn>" + "|".join(BN_SUFFIXES) + ")"


@dataclass(frozen=True)
class Rule:
    pattern: str  # full match over a normalized name (see `normalize`)
    target: str  # template, see the module docstring; "" for IGNORED
    kind: str


@dataclass(frozen=True)
class Scheme:
    name: str
    marker: str  # a name matching this identifies the scheme
    rules: tuple[Rule, ...]
    # TF1 eras: the batch-norm scopes after the residual tower, in construction order.
    # "policy_head" is policy1 when the policy is convolutional, else policy.
    heads: tuple[str, ...] = ()
    conv_policy_marker: str | None = None  # a name matching this means a convolution policy
    _compiled: list = field(default_factory=list, compare=False, repr=False)

    def match(self, name: str):
        if not self._compiled:
            self._compiled.extend((re.compile(r.pattern), r) for r in self.rules)
        for regex, rule in self._compiled:
            m = regex.fullmatch(name)
            if m:
                return rule, m
        return None


def _conv_block_rules(prefix: str, target: str, conv: str = "conv2d") -> tuple[Rule, ...]:
    """A Keras conv_block of lczero-training: `<prefix>/conv2d/kernel` and `<prefix>/bn/<bn var>`."""
    return (
        Rule(rf"{prefix}/{conv}/kernel", f"{target}.weights", CONV),
        Rule(rf"{prefix}/{conv}/bias", f"{target}.biases", VECTOR),
        Rule(rf"{prefix}/bn/{BN_SUFFIX}", f"{target}.{{bn}}", BN),
    )


def _dense_rules(layer: str, weight: str, bias: str, kernel_name: str = "kernel") -> tuple[Rule, ...]:
    """A dense layer: Keras names its matrix `kernel`, lczero-training's TF1 graphs `weight`."""
    return (Rule(rf"{layer}/{kernel_name}", weight, DENSE), Rule(rf"{layer}/bias", bias, VECTOR))


# lczero-training, TF2/Keras with layer names (2020-02 → 2023; tfprocess.py at fae46e6). Names are the
# variables' Keras full names, read from the checkpoint's object graph.
KERAS_NAMED = Scheme(
    name="lczero-training TF2 (named Keras layers)",
    marker=r"(input|residual_\d+|policy1?|value|moves_left)/.*",
    rules=(
        *_conv_block_rules("input", "input"),
        *_conv_block_rules(r"residual_(?P<b1>\d+)/(?P<conv>[12])", "residual.{block}.conv{conv}"),
        *_dense_rules(r"residual_(?P<b1>\d+)/se/se/dense(?P<n>[12])", "residual.{block}.se.w{n}",
                      "residual.{block}.se.b{n}"),
        # Convolution policy: a conv block, then a plain 3×3 conv to 80 planes with a bias.
        *_conv_block_rules("policy1", "policy1"),
        Rule(r"policy/kernel", "policy.weights", CONV),
        Rule(r"policy/bias", "policy.biases", VECTOR),
        # Classical policy: a 1×1 conv block, then a dense layer to 1858.
        *_conv_block_rules("policy", "policy"),
        *_dense_rules("policy/dense", "ip_pol_w", "ip_pol_b"),
        *_conv_block_rules("value", "value"),
        *_dense_rules("value/dense1", "ip1_val_w", "ip1_val_b"),
        *_dense_rules("value/dense2", "ip2_val_w", "ip2_val_b"),
        *_conv_block_rules("moves_left", "moves_left"),
        *_dense_rules("moves_left/dense1", "ip1_mov_w", "ip1_mov_b"),
        *_dense_rules("moves_left/dense2", "ip2_mov_w", "ip2_mov_b"),
    ),
)

# lczero-training, TF1 tf.train.Saver (2018 → 2019-12). Batch-norm scopes bn0, bn1...; residual scopes
# were opened as "bnK/" so tf.layers names carry a double slash (collapsed by `normalize`); the SE
# variables live in the scope of the block's second convolution.
LCZERO_TF1 = Scheme(
    name="lczero-training TF1 (tf.train.Saver)",
    marker=r"bn\d+/conv_weight",
    rules=(
        Rule(r"bn(?P<ord>\d+)/conv_weight", "#{ord}.weights", CONV),
        Rule(rf"bn(?P<ord>\d+)/batch_normalization/{BN_SUFFIX}", "#{ord}.{bn}", BN),
        Rule(r"bn(?P<ord>\d+)/fixed_gamma", "#{ord}.gammas", VECTOR),  # constant ones where scale=False
        Rule(r"bn(?P<ord>\d+)/se_fc(?P<n>[12])_w", "#{ord}.se.w{n}", DENSE),
        Rule(r"bn(?P<ord>\d+)/se_fc(?P<n>[12])_b", "#{ord}.se.b{n}", VECTOR),
        Rule(r"W_pol_conv2", "policy.weights", CONV),
        Rule(r"b_pol_conv2", "policy.biases", VECTOR),
        *_dense_rules("fc1", "ip_pol_w", "ip_pol_b", "weight"),
        *_dense_rules("fc2", "ip1_val_w", "ip1_val_b", "weight"),
        *_dense_rules("fc3", "ip2_val_w", "ip2_val_b", "weight"),
        Rule(r"policy_map", "", IGNORED),  # the constant 80·64 → 1858 gather matrix, not a weight
    ),
    heads=("policy_head", "value"),
    conv_policy_marker=r"W_pol_conv2",
)

# Leela Zero's own TF1 training (training/tf/tfprocess.py): BN center=True, scale=False, ε = 1e-5.
LEELA_ZERO_TF1 = Scheme(
    name="Leela Zero TF1 (tf.train.Saver)",
    marker=r"first_conv|res_\d+_conv_[12]",
    rules=(
        Rule(r"first_conv", "input.weights", CONV),
        Rule(r"res_(?P<b0>\d+)_conv_(?P<conv>[12])", "residual.{block}.conv{conv}.weights", CONV),
        Rule(r"policy_head", "policy.weights", CONV),
        Rule(r"value_head", "value.weights", CONV),
        Rule(rf"bn(?P<ord>\d+)/batch_normalization/{BN_SUFFIX}", "#{ord}.{bn}", BN),
        Rule(r"w_fc_1", "ip_pol_w", DENSE),
        Rule(r"b_fc_1", "ip_pol_b", VECTOR),
        Rule(r"w_fc_2", "ip1_val_w", DENSE),
        Rule(r"b_fc_2", "ip1_val_b", VECTOR),
        Rule(r"w_fc_3", "ip2_val_w", DENSE),
        Rule(r"b_fc_3", "ip2_val_b", VECTOR),
    ),
    heads=("policy", "value"),
)

# lczero-training, TF2 before layers were named (2019-12 → 2020-02; maia-chess): Keras auto-names,
# numbered in construction order, mapped by order and shape (`keras_auto_targets`).
KERAS_AUTO_MARKER = r"(conv2d|batch_normalization|dense)(_\d+)?/.*"
KERAS_AUTO_NAME = re.compile(r"(?P<layer>conv2d|batch_normalization|dense)(?:_(?P<n>\d+))?/(?P<var>\w+)")

TF1_SCHEMES = (LEELA_ZERO_TF1, LCZERO_TF1)

# TF1 bookkeeping that is not part of the network. SWA copies ("swa/<name>") are handled by the reader.
TF1_IGNORED = re.compile(
    r"global_step|swa_count|swa_skip|beta1_power|beta2_power|save_counter"
    r"|(gsum|save)/.*"  # Leela Zero's gradient accumulators; lczero's snapshot copies
    r"|.*/(Momentum|Adam|Adam_1|RMSProp|RMSProp_1|Adagrad|Ftrl|Ftrl_1)"  # optimizer slots
)
SWA_PREFIX = "swa/"
FP32_STORAGE = "fp32_storage/"  # mixed-precision training kept float32 masters under this scope


def normalize(name: str) -> str:
    """`fp32_storage/bn1//batch_normalization/beta:0` → `bn1/batch_normalization/beta`."""
    name = name.split(":")[0]
    name = re.sub("/{2,}", "/", name)
    if name.startswith(FP32_STORAGE):
        name = name[len(FP32_STORAGE):]
    return name


@dataclass
class Assignment:
    target: str  # Network path, e.g. "residual.0.conv2.gammas"
    name: str  # the variable's (normalized) name
    kind: str  # CONV, DENSE, VECTOR or STDDEV


@dataclass
class Mapping:
    scheme: str
    assignments: list[Assignment]
    ignored: list[str]
    unmapped: list[str]
    conv_policy: bool | None = None  # known from the names (TF1 eras); None: decided by the targets


def detect(names) -> tuple[Scheme | None, bool]:
    """The scheme of a set of normalized names: (named scheme, is_keras_auto)."""
    for scheme in (KERAS_NAMED, *TF1_SCHEMES):
        if any(re.fullmatch(scheme.marker, n) for n in names):
            return scheme, False
    if any(re.fullmatch(KERAS_AUTO_MARKER, n) for n in names):
        return None, True
    return None, False


def resolve(shapes: dict[str, tuple[int, ...]]) -> Mapping:
    """Map normalized variable names (with their shapes) to Network targets.

    `shapes` holds only network candidates (bookkeeping already removed). The
    result lists every name as assigned, ignored or unmapped.
    """
    names = sorted(shapes)
    scheme, auto = detect(names)
    if auto:
        return keras_auto_targets(shapes)
    if scheme is None:
        return Mapping("unknown", [], [], names)
    conv_policy = None
    if scheme.conv_policy_marker is not None:
        conv_policy = any(re.fullmatch(scheme.conv_policy_marker, n) for n in names)
    raw: list[tuple[str, str, str]] = []  # (template-expanded target, name, kind)
    ignored, unmapped = [], []
    for name in names:
        hit = scheme.match(name)
        if hit is None:
            unmapped.append(name)
            continue
        rule, m = hit
        groups = m.groupdict()
        kind = rule.kind
        if kind == IGNORED:
            ignored.append(name)
            continue
        if kind == BN:
            role = BN_SUFFIXES[groups["bn"]]
            if role is None:
                ignored.append(name)
                continue
            groups["bn"], kind = role
        if groups.get("b1") is not None:
            groups["block"] = int(groups["b1"]) - 1
        elif groups.get("b0") is not None:
            groups["block"] = int(groups["b0"])
        raw.append((rule.target.format(**groups), name, kind))
    assignments, more_unmapped = _resolve_ordinals(raw, scheme, conv_policy)
    return Mapping(scheme.name, assignments, ignored, sorted(unmapped + more_unmapped), conv_policy)


def _resolve_ordinals(raw, scheme: Scheme, conv_policy: bool | None):
    """Replace `#k` by the block it is, given the construction order of `scheme`."""
    ordinals = sorted({int(t[1:].split(".")[0]) for t, _, _ in raw if t.startswith("#")})
    if not ordinals:
        return [Assignment(t, n, k) for t, n, k in raw], []
    count = len(ordinals)
    tower = count - 1 - len(scheme.heads)
    if ordinals != list(range(count)) or tower < 0 or tower % 2:
        # Not the layout the training code builds: say so through the unmapped list.
        return [Assignment(t, n, k) for t, n, k in raw if not t.startswith("#")], \
            [n for t, n, k in raw if t.startswith("#")]
    heads = [("policy1" if conv_policy else "policy") if h == "policy_head" else h for h in scheme.heads]

    def block(k: int) -> str:
        if k == 0:
            return "input"
        if k <= tower:
            return f"residual.{(k - 1) // 2}.conv{1 + (k - 1) % 2}"
        return heads[k - 1 - tower]

    out, unmapped = [], []
    for target, name, kind in raw:
        if not target.startswith("#"):
            out.append(Assignment(target, name, kind))
            continue
        k_text, rest = target[1:].split(".", 1)
        where = block(int(k_text))
        if rest.startswith("se."):
            # SE units live in the scope of a residual block's second convolution.
            if not (where.startswith("residual.") and where.endswith(".conv2")):
                unmapped.append(name)
                continue
            where = where[: -len(".conv2")]
        out.append(Assignment(f"{where}.{rest}", name, kind))
    return out, unmapped


def keras_auto_targets(shapes: dict[str, tuple[int, ...]]) -> Mapping:
    """Keras auto-named layers (conv2d_N, batch_normalization_N, dense_N) by construction order and shape.

    The training code of that era built, in order: the input conv block; per
    residual block conv1+BN, conv2+BN, SE dense1/dense2; then the policy head
    (convolution: a 3×3 conv block then a 3×3 conv to 80 planes with a bias;
    classical: a 1×1 conv block and a dense layer), the value head (1×1 conv
    block, dense, dense) and a moves-left head (same) if any. The 80-plane conv
    and a dense layer whose kernel has an input of C are recognised by shape.
    """
    layers: dict[str, dict[int, dict[str, str]]] = {"conv2d": {}, "batch_normalization": {}, "dense": {}}
    unmapped, ignored = [], []
    for name in sorted(shapes):
        m = KERAS_AUTO_NAME.fullmatch(name)
        if m is None:
            unmapped.append(name)
            continue
        n = int(m["n"]) if m["n"] else 0
        layers[m["layer"]].setdefault(n, {})[m["var"]] = name
    convs = [layers["conv2d"][k] for k in sorted(layers["conv2d"])]
    bns = [layers["batch_normalization"][k] for k in sorted(layers["batch_normalization"])]
    denses = [layers["dense"][k] for k in sorted(layers["dense"])]
    out: list[Assignment] = []

    def fail(reason_names):
        return Mapping("Keras auto-named layers", [], [], sorted(set(unmapped) | set(reason_names)))

    if not convs or "kernel" not in convs[0]:
        return fail(shapes)
    filters = shapes[convs[0]["kernel"]][-1]

    def kernel(layer):
        return shapes.get(layer.get("kernel", ""), ())

    conv_policy = any(len(kernel(c)) == 4 and kernel(c)[-1] == 80 and kernel(c)[:2] == (3, 3) for c in convs)
    square = [c for c in convs[1:] if kernel(c) == (3, 3, filters, filters)]
    tower = len(square) - (1 if conv_policy else 0)
    if tower < 0 or tower % 2:
        return fail(shapes)
    blocks = tower // 2
    conv_slots = ["input"] + [f"residual.{i}.conv{j}" for i in range(blocks) for j in (1, 2)]
    conv_slots += ["policy1", "policy"] if conv_policy else ["policy"]
    conv_slots += ["value", "moves_left"]
    bn_slots = [s for s in conv_slots if not (conv_policy and s == "policy")]
    se_denses = [d for d in denses if len(kernel(d)) == 2 and kernel(d)[0] == filters]
    has_se = len(se_denses) == blocks and blocks > 0
    dense_slots = []
    if has_se:
        dense_slots += [(f"residual.{i}.se.w{j}", f"residual.{i}.se.b{j}") for i in range(blocks) for j in (1, 2)]
    if not conv_policy:
        dense_slots.append(("ip_pol_w", "ip_pol_b"))
    dense_slots += [("ip1_val_w", "ip1_val_b"), ("ip2_val_w", "ip2_val_b"),
                    ("ip1_mov_w", "ip1_mov_b"), ("ip2_mov_w", "ip2_mov_b")]
    for layers_, slots, what in ((convs, conv_slots, "conv"), (bns, bn_slots, "bn"), (denses, dense_slots, "dense")):
        if len(layers_) > len(slots) or (what == "conv" and len(layers_) < len(slots) - 1):
            return fail([n for layer in layers_ for n in layer.values()])
        for layer, slot in zip(layers_, slots):
            for var, name in layer.items():
                if what == "conv":
                    if var == "kernel":
                        out.append(Assignment(f"{slot}.weights", name, CONV))
                    elif var == "bias":
                        out.append(Assignment(f"{slot}.biases", name, VECTOR))
                    else:
                        unmapped.append(name)
                elif what == "bn":
                    role = BN_SUFFIXES.get(var, "unknown")
                    if role == "unknown":
                        unmapped.append(name)
                    elif role is None:
                        ignored.append(name)
                    else:
                        out.append(Assignment(f"{slot}.{role[0]}", name, role[1]))
                else:
                    weight, bias = slot
                    if var == "kernel":
                        out.append(Assignment(weight, name, DENSE))
                    elif var == "bias":
                        out.append(Assignment(bias, name, VECTOR))
                    else:
                        unmapped.append(name)
    return Mapping("Keras auto-named layers", out, ignored, sorted(unmapped), conv_policy)
