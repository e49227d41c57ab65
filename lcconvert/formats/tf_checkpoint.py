"""TensorFlow training checkpoints (lczero-training, Leela Zero) → Network.

Why: network authors otherwise export through the training code itself, which
needs the whole training setup at its exact version. This reader needs only
TensorFlow's checkpoint reader, imported lazily so the rest of lcconvert starts
and works without TensorFlow.

Facts: FORMATS.md §6. The names → slots table is tf_names.py; this module finds
the variables (object graph for TF2, plain names for TF1), applies the table,
converts layouts (HWIO → OIHW, [in,out] → [out,in], ghost-BN shapes, renorm
stddev → variance), and sets the network format from the weights, the training
YAML and options (training_config.py). Tensors are FLOAT32; writers choose the
output encoding.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile

import numpy as np

from lcconvert import shapes, versions
from lcconvert.codecs import Encoding
from lcconvert.constants import (
    ACTIVATION_RELU,
    INPUT_PLANES,
    MOVES_LEFT_NONE,
    MOVES_LEFT_V1,
    NETWORK_CLASSICAL_WITH_HEADFORMAT,
    NETWORK_SE_WITH_HEADFORMAT,
    POLICY_CLASSICAL,
    POLICY_CONVOLUTION,
    TRAINING_INPUT_FORMATS,
    TRAINING_MOVES_LEFT_FORMATS,
    TRAINING_POLICY_FORMATS,
    TRAINING_VALUE_FORMATS,
    VALUE_CLASSICAL,
    VALUE_WDL,
    Family,
)
from lcconvert.errors import DependencyError, FormatError, NetworkError
from lcconvert.formats import tf_names, training_config
from lcconvert.network import ConvBlock, NetFormat, Network, Residual, SEUnit, Source
from lcconvert.tensor import Tensor

TRAINING_EPSILON = 1e-5  # every lczero-training / Leela Zero batch norm (FORMATS.md §6)
RULE50_PLANE = 109
RULE50_SCALE = 99  # formats < 4 train on rule50/99 and engines feed the raw count
HECTOPLIES_INPUT = 4  # INPUT_112_WITH_CANONICALIZATION_HECTOPLIES: engines feed rule50/100 from here on
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
# Root objects of lczero-training's tf.train.Checkpoint that are not the model.
TF2_BOOKKEEPING = ("optimizer", "global_step", "swa_count", "save_counter")
TF2_SWA_LIST = "listed"
INSTALL_MESSAGE = "reading TensorFlow checkpoints needs TensorFlow: " + training_config.INSTALL_HINT


# -- locating the checkpoint (no TensorFlow needed) ---------------------------

def resolve_prefix(path: str) -> str:
    """The checkpoint prefix (`dir/name-20`) for a folder, a prefix or an `.index` file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        state = os.path.join(path, "checkpoint")
        try:
            with open(state, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:
            raise FormatError(path, f"a folder without a readable `checkpoint` file ({e.strerror or e})") from None
        m = re.search(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"', text, re.MULTILINE)
        if m is None:
            raise FormatError(state, "no model_checkpoint_path line: not a TensorFlow checkpoint state file")
        latest = m.group(1).encode().decode("unicode_escape")
        prefix = latest if os.path.isabs(latest) else os.path.join(path, latest)
        if not os.path.isfile(prefix + ".index"):
            # CheckpointManager writes absolute paths; a moved folder still holds the files by base name.
            moved = os.path.join(path, os.path.basename(latest))
            if os.path.isfile(moved + ".index"):
                return moved
            raise FormatError(state, f"latest checkpoint {latest!r} has no {os.path.basename(latest)}.index")
        return prefix
    if path.endswith(".index") and os.path.isfile(path):
        return path[: -len(".index")]
    if os.path.isfile(path + ".index"):
        return path
    raise FormatError(path, "not a TensorFlow checkpoint: no such folder, prefix or .index file")


def _import_tensorflow(path: str):
    """Import TensorFlow with its start-up chatter kept off the terminal.

    TF 2.21 prints absl/oneDNN/CUDA lines on file descriptor 2 while importing,
    whatever TF_CPP_MIN_LOG_LEVEL says, which would break lcconvert's one-line
    errors. They go to a temporary file, shown only if the import itself fails.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as chatter:
        os.dup2(chatter.fileno(), 2)
        try:
            import tensorflow as tf
        except ImportError:
            raise DependencyError(path, INSTALL_MESSAGE) from None
        except Exception:
            os.dup2(saved, 2)
            chatter.seek(0)
            sys.stderr.write(chatter.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tf


def _tensor(reader, key: str, path: str) -> np.ndarray:
    """One variable's value; a missing or truncated data shard is a one-line FormatError."""
    try:
        return reader.get_tensor(key)
    except Exception as e:  # TF raises OpError, IndexError... for damaged shards
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FormatError(path, f"cannot read variable {key} (damaged or missing data file?): {first}") from None


# -- finding the network's variables ------------------------------------------

def _object_graph(reader, tf, path: str):
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(_tensor(reader, OBJECT_GRAPH_KEY, path))
    return graph


def _variable_key(node) -> str | None:
    for attribute in node.attributes:
        if attribute.name == "VARIABLE_VALUE":
            return attribute.checkpoint_key
    return None


def _tf2_variables(reader, graph, path: str, swa: bool):
    """{name: checkpoint key} of the model (SWA copies instead when `swa`), plus bookkeeping keys ignored.

    The model's variables are those under the root's `model` child; their names are
    Keras full names. lczero-training saves its SWA averages as the list `listed`,
    one unnamed variable per `model.weights` entry in order; that order is the
    model's layers (`layer_with_weights-N`) and each layer's variables in creation
    order, which is what the walk below reproduces.
    """
    nodes = graph.nodes
    slot_nodes = {s.slot_variable_node_id for n in nodes for s in n.slot_variables}
    root = {c.local_name: c.node_id for c in nodes[0].children}
    model_id = root.get("model")
    ignored = []
    if model_id is None:
        raise FormatError(path, "a TF2 checkpoint without a `model` object: not written by lczero-training "
                                f"(root objects: {', '.join(sorted(root)) or 'none'})")

    ordered: list[int] = []  # variable node ids in model.weights order
    seen: set[int] = set()

    def walk(node_id: int):
        if node_id in seen or node_id in slot_nodes:
            return
        seen.add(node_id)
        node = nodes[node_id]
        if _variable_key(node) is not None:
            ordered.append(node_id)
        for child in node.children:
            walk(child.node_id)

    layers = [c for c in nodes[model_id].children if c.local_name.startswith("layer_with_weights-")]
    layers.sort(key=lambda c: int(c.local_name.rsplit("-", 1)[1]))
    for child in layers:
        walk(child.node_id)
    walk(model_id)  # anything a model holds outside its layers

    names = {}
    for node_id in ordered:
        node = nodes[node_id]
        full_name = next(a.full_name for a in node.attributes if a.name == "VARIABLE_VALUE")
        names[tf_names.normalize(full_name)] = _variable_key(node)

    for local, node_id in root.items():
        if local == "model":
            continue
        if local in TF2_BOOKKEEPING or local == TF2_SWA_LIST:
            ignored.append(local)
            continue
        key = _variable_key(nodes[node_id])
        shape = reader.get_variable_to_shape_map().get(key, []) if key else []
        if key is None or len(shape) == 0:
            ignored.append(local)  # other scalars and containers: counters, not weights
        else:
            raise FormatError(path, f"unexpected variable {local!r} {list(shape)} outside the model")

    if swa:
        swa_ids = nodes[root[TF2_SWA_LIST]].children if TF2_SWA_LIST in root else []
        swa_keys = [_variable_key(nodes[c.node_id]) for c in sorted(swa_ids, key=lambda c: int(c.local_name))
                    if c.local_name.isdigit()]
        if not swa_keys:
            raise FormatError(path, "--swa: this checkpoint holds no SWA weights (training ran without swa)")
        if len(swa_keys) != len(ordered):
            raise FormatError(path, f"--swa: {len(swa_keys)} SWA weights for {len(ordered)} model variables")
        shapes = reader.get_variable_to_shape_map()
        replaced = {}
        for (name, key), swa_key in zip(names.items(), swa_keys):
            if shapes[key] != shapes[swa_key]:
                raise FormatError(path, f"--swa: SWA weight {swa_key.split('/')[1]} has shape {shapes[swa_key]}, "
                                        f"model variable {name} {shapes[key]}")
            replaced[name] = swa_key
        names = replaced
    return names, ignored


def _tf1_variables(reader, path: str, swa: bool):
    """{normalized name: checkpoint key} of the network in a tf.train.Saver checkpoint, and keys ignored."""
    names, copies, ignored = {}, {}, []
    for key in reader.get_variable_to_shape_map():
        if key.startswith(tf_names.SWA_PREFIX):
            copies[tf_names.normalize(key[len(tf_names.SWA_PREFIX):])] = key
            continue
        name = tf_names.normalize(key)
        if tf_names.TF1_IGNORED.fullmatch(name):
            ignored.append(key)
            continue
        if name in names:
            raise FormatError(path, f"variables {names[name]!r} and {key!r} are the same weight")
        names[name] = key
    if swa:
        if not copies:
            raise FormatError(path, "--swa: this checkpoint holds no SWA weights (no swa/ variables)")
        missing = sorted(n for n in names if n not in copies and n != "policy_map")
        if missing:
            raise FormatError(path, f"--swa: no SWA copy of {', '.join(missing[:5])}")
        names = {n: copies.get(n, k) for n, k in names.items()}
    else:
        ignored.extend(copies.values())
    return names, ignored


# -- values ------------------------------------------------------------------

def _convert(array: np.ndarray, kind: str, name: str, path: str) -> np.ndarray:
    a = np.asarray(array)
    if a.dtype.kind not in "fV":  # "V": bfloat16 from mixed-precision training
        raise FormatError(path, f"{name}: values of type {a.dtype}, expected floats")
    a = a.astype(np.float32)
    if kind == tf_names.CONV:
        if a.ndim != 4:
            raise FormatError(path, f"{name}: shape {list(a.shape)} is not a convolution kernel [h, w, in, out]")
        return np.ascontiguousarray(a.transpose(3, 2, 0, 1))
    if kind == tf_names.DENSE:
        if a.ndim != 2:
            raise FormatError(path, f"{name}: shape {list(a.shape)} is not a dense kernel [in, out]")
        return np.ascontiguousarray(a.T)
    if sum(1 for d in a.shape if d != 1) > 1:
        raise FormatError(path, f"{name}: shape {list(a.shape)} is not a vector (one axis of length C)")
    flat = a.reshape(-1)
    if kind == tf_names.STDDEV:
        # Batch renorm tracks the moving stddev = sqrt(variance + ε) (lczero-training's export inverts it).
        return (flat.astype(np.float64) ** 2 - TRAINING_EPSILON).astype(np.float32)
    return flat


def _set(net: Network, target: str, values: np.ndarray, path: str, name: str) -> None:
    t = Tensor.from_values(values.reshape(-1), Encoding.FLOAT32)
    parts = target.split(".")
    if parts[0] == "residual":
        i = int(parts[1])
        while len(net.residual) <= i:
            net.residual.append(Residual())
        r = net.residual[i]
        if parts[2] == "se":
            if r.se is None:
                r.se = SEUnit()
            setattr(r.se, parts[3], t)
        else:
            setattr(getattr(r, parts[2]), parts[3], t)
        return
    if len(parts) == 2:
        block = getattr(net, parts[0])
        if block is None:
            block = ConvBlock()
            setattr(net, parts[0], block)
        setattr(block, parts[1], t)
        return
    setattr(net, parts[0], t)


# -- the reader --------------------------------------------------------------

def read(path, config: str | None = None, input_format=None, policy=None, value=None, moves_left=None,
         swa: bool = False, se_ratio=None) -> Network:
    """Read a TF checkpoint (folder, prefix or `.index`) as a FLOAT32 Network.

    config: lczero-training YAML (its `model:` section); the other arguments
    override it (names as in the YAML, or protobuf numbers). swa: read the SWA
    averages instead of the live weights. se_ratio: checked against the SE size.
    """
    path = os.fspath(path)
    cfg = training_config.load(config) if config else training_config.ModelConfig()
    cfg = cfg.merged(
        input=None if input_format is None else training_config.parse_input_format(input_format, path),
        policy=None if policy is None else training_config.parse_policy(policy, path),
        value=None if value is None else training_config.parse_value(value, path),
        moves_left=None if moves_left is None else training_config.parse_moves_left(moves_left, path),
        se_ratio=se_ratio,
    )
    prefix = resolve_prefix(path)
    tf = _import_tensorflow(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as e:  # TF raises several internal error types for damaged files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FormatError(path, f"cannot read the checkpoint: {first}") from None
    shapes_by_key = reader.get_variable_to_shape_map()
    tf2 = OBJECT_GRAPH_KEY in shapes_by_key
    if tf2:
        keys, _ignored = _tf2_variables(reader, _object_graph(reader, tf, path), path, swa)
    else:
        keys, _ignored = _tf1_variables(reader, path, swa)
    shapes = {name: tuple(shapes_by_key[key]) for name, key in keys.items()}
    mapping = tf_names.resolve(shapes)
    if mapping.unmapped:
        listed = ", ".join(f"{n} {list(shapes[n])}" for n in mapping.unmapped[:8])
        more = f" and {len(mapping.unmapped) - 8} more" if len(mapping.unmapped) > 8 else ""
        raise FormatError(path, f"{len(mapping.unmapped)} variable(s) with no place in the network "
                                f"({mapping.scheme}): {listed}{more}")

    # Renorm: moving_stddev is the truth for the variance; the plain moving_variance is dropped.
    chosen: dict[str, tf_names.Assignment] = {}
    for a in mapping.assignments:
        other = chosen.get(a.target)
        if other is None or (a.kind == tf_names.STDDEV and other.kind == tf_names.VECTOR):
            chosen[a.target] = a
        elif not (other.kind == tf_names.STDDEV and a.kind == tf_names.VECTOR):
            raise FormatError(path, f"{other.name} and {a.name} both map to {a.target}")

    net = Network()
    net.source = Source(path=path, kind="checkpoint", size_bytes=_size(prefix))
    net.epsilon = TRAINING_EPSILON
    for target, a in chosen.items():
        _set(net, target, _convert(_tensor(reader, keys[a.name], path), a.kind, a.name, path), path, a.name)
    chess_options = any(v is not None for v in (input_format, policy, value, moves_left))
    _finish(net, cfg, mapping, chess_options, path)
    return net


def _size(prefix: str) -> int:
    folder, base = os.path.split(prefix)
    total = 0
    for entry in os.listdir(folder or "."):
        if entry == base + ".index" or entry.startswith(base + ".data-"):
            total += os.path.getsize(os.path.join(folder, entry))
    return total


def _finish(net: Network, cfg: training_config.ModelConfig, mapping: tf_names.Mapping, chess_options: bool,
            path: str) -> None:
    """Family and format from the weights, checked against the YAML/options; input scaling; min_version."""
    w = net.input.weights
    if w is None:
        raise NetworkError(path, "no input convolution found")
    c = net.input.out_channels
    if c is None:
        raise NetworkError(path, "input block has no batch-norm statistics")
    planes = w.size // (9 * c) if w.size % (9 * c) == 0 else None
    family = next((f for f, p in INPUT_PLANES.items() if p == planes), None)
    if family is None:
        raise NetworkError(path, f"input convolution has {w.size} values: not 3×3×{c} over 112 (chess) or 18 (Go) "
                                 "planes")
    net.family = family
    # Where a conv block has betas but no gammas the training used scale=False: γ = 1, left absent
    # (absent means 1 to every engine, FORMATS.md §3).

    problems = []
    if cfg.filters is not None and cfg.filters != c:
        problems.append(f"the config says {cfg.filters} filters, the checkpoint has {c}")
    if cfg.residual_blocks is not None and cfg.residual_blocks != net.blocks:
        problems.append(f"the config says {cfg.residual_blocks} residual blocks, the checkpoint has {net.blocks}")
    se = net.se_channels
    if cfg.se_ratio:
        if not se:
            problems.append(f"se_ratio {cfg.se_ratio} given, the checkpoint has no SE units")
        elif c // cfg.se_ratio != se:
            problems.append(f"se_ratio {cfg.se_ratio} means {c // cfg.se_ratio} SE channels, the checkpoint has {se}")

    if family is Family.GO:
        if chess_options:
            problems.append("--input-format/--policy/--value/--moves-left describe chess networks; this is a Go "
                            "(Leela Zero) network")
        if problems:
            raise NetworkError(path, "; ".join(problems))
        shapes.check(net)
        net.min_version = None  # Leela Zero files have no version
        return

    conv_policy = net.policy1 is not None or (net.policy is not None and net.policy.biases is not None
                                              and net.policy.means is None)
    found_policy = POLICY_CONVOLUTION if conv_policy else POLICY_CLASSICAL
    out = net.ip2_val_b.size if net.ip2_val_b is not None else None
    found_value = VALUE_WDL if out == 3 else VALUE_CLASSICAL
    found_ml = MOVES_LEFT_V1 if net.moves_left is not None else MOVES_LEFT_NONE
    for what, said, found, names in (
        ("policy", cfg.policy, found_policy, TRAINING_POLICY_FORMATS),
        ("value", cfg.value, found_value, TRAINING_VALUE_FORMATS),
        ("moves_left", cfg.moves_left, found_ml, TRAINING_MOVES_LEFT_FORMATS),
    ):
        if said is not None and said != found:
            name = {v: k for k, v in names.items()}
            problems.append(f"{what} is {name[said]!r} in the {'config' if cfg.source else 'options'}, "
                            f"the checkpoint has a {name[found]} head")
    if problems:
        raise NetworkError(path, "; ".join(problems))

    input_format = cfg.input
    if input_format is None:
        if mapping.scheme == tf_names.KERAS_NAMED.name:
            # Named-layer training code had input_type; guessing it would silently mis-scale rule50.
            raise FormatError(path, "the input format is not stored in a checkpoint: give --config training.yaml "
                                    "or --input-format (" + ", ".join(TRAINING_INPUT_FORMATS) + ")")
        input_format = 1  # the TF1 and auto-named eras predate input types: always classical
    net.format = NetFormat(
        input=input_format,
        output=2 if found_value == VALUE_WDL else 1,
        network=NETWORK_SE_WITH_HEADFORMAT if se else NETWORK_CLASSICAL_WITH_HEADFORMAT,
        policy=found_policy,
        value=found_value,
        moves_left=found_ml,
        default_activation=cfg.default_activation if cfg.default_activation is not None else ACTIVATION_RELU,
    )
    shapes.check(net)
    if input_format < HECTOPLIES_INPUT:
        kernel = net.input.weights.values.reshape(c, planes, 3, 3).copy()
        kernel[:, RULE50_PLANE] /= RULE50_SCALE
        net.input.weights = Tensor.from_values(kernel.reshape(-1), Encoding.FLOAT32)
    # The version the architecture needs; writers raise it further for non-LINEAR16 layers.
    net.min_version = versions.required(net, encodings=False)
