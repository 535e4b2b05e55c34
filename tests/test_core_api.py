"""The compiled core as the single source of what it knows: configurations (ModelConfig,
OptimConfig), cell structure, parameter counts and layouts, workspace sizes, and the type stubs
that describe the module.

The workspace tests hold the core to its own word: after a call, the scalars its buffers
actually hold (allocated_elements) equal what workspace_elements said beforehand, since both
come from the same sizing functions.
"""

import ast
import pathlib
import pickle

import numpy as np
import pytest

import lstm_native
from lstm_native import _core, _network, diagnostics, nn

import reference as ref

MODELS = (_core.Model32, _core.Model64)


# ------------------------------------------------------------------------------------------
# ModelConfig
# ------------------------------------------------------------------------------------------
def test_model_config_defaults_and_keywords():
    c = _core.ModelConfig()
    assert c.to_dict() == dict(
        cell="lstm",
        input_size=1,
        hidden_size=1,
        num_layers=1,
        output_size=1,
        bias=True,
        bidirectional=False,
        return_sequences=False,
        dropout=0.0,
        loss="mse",
        huber_delta=1.0,
        quantiles=[],
        precision="float32",
    )
    c = _core.ModelConfig(
        "rnn",
        3,
        4,
        2,
        5,
        bias=False,
        bidirectional=True,
        return_sequences=True,
        dropout=0.25,
        loss="softmax",
    )
    assert c.cell == "rnn_tanh"  # the alias, canonical
    assert (c.input_size, c.hidden_size, c.num_layers, c.output_size) == (3, 4, 2, 5)
    assert (c.bias, c.bidirectional, c.return_sequences) == (False, True, True)
    assert c.dropout == 0.25 and c.loss == "softmax"
    with pytest.raises(TypeError):  # bias and what follows are keyword-only
        _core.ModelConfig("lstm", 1, 1, 1, 1, False)
    # numpy scalars are numbers too
    c = _core.ModelConfig(
        "gru", np.int64(3), np.int32(4), dropout=np.float32(0.5), bias=np.bool_(False)
    )
    assert c.input_size == 3 and c.hidden_size == 4 and c.dropout == 0.5 and c.bias is False
    c = _core.ModelConfig(
        "gru",
        2,
        3,
        1,
        6,
        loss="quantile",
        quantiles=(0.1, np.float32(0.5), 0.9),
        huber_delta=np.int64(2),
    )
    assert c.loss == "quantile" and c.quantiles == [0.1, 0.5, 0.9] and c.huber_delta == 2.0
    assert type(c.quantiles) is list and type(c.huber_delta) is float
    c.quantiles.append(0.95)  # a copy
    assert c.quantiles == [0.1, 0.5, 0.9]
    for loss in ("absolute_error", "huber"):
        assert _core.ModelConfig(loss=loss, huber_delta=0.25).loss == loss


@pytest.mark.parametrize(
    "field, value",
    [
        ("cell", "transformer"),
        ("cell", 3),
        ("input_size", 0),
        ("hidden_size", -1),
        ("num_layers", 0),
        ("output_size", 0),
        ("input_size", True),
        ("input_size", 2.0),
        ("input_size", "3"),
        ("input_size", 2**70),
        ("bias", 1),
        ("bias", None),
        ("bidirectional", 0),
        ("return_sequences", "yes"),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("dropout", float("nan")),
        ("dropout", True),
        ("dropout", "0.1"),
        ("loss", "hinge"),
        ("loss", None),
        ("loss", "quantile"),
        ("huber_delta", 0.0),
        ("huber_delta", -1.0),
        ("huber_delta", float("nan")),
        ("huber_delta", float("inf")),
        ("huber_delta", True),
        ("huber_delta", "1"),
        ("quantiles", 0.5),
        ("quantiles", "0.5"),
        ("quantiles", None),
        ("quantiles", [0.5, True]),
        ("quantiles", [0.0]),
        ("quantiles", [1.0]),
        ("quantiles", [0.5, 0.5]),
        ("quantiles", [0.9, 0.1]),
        ("quantiles", [float("nan")]),
        ("quantiles", [i / 101 for i in range(1, 101)]),
        ("quantiles", np.array([0.5])),
    ],
)
def test_model_config_refuses_a_bad_value_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        _core.ModelConfig(**{field: value})
    c = _core.ModelConfig("gru", 2, 3)
    before = c.to_dict()
    with pytest.raises(ValueError, match=field):
        setattr(c, field, value)
    assert c.to_dict() == before  # a refused assignment changes nothing


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(quantiles=[]), "at least one level"),
        (dict(quantiles=[0.1, 0.5]), "multiple of the number of levels"),
        (dict(quantiles=[0.1, 0.5, 0.9], output_size=4), "multiple"),
    ],
)
def test_model_config_quantile_loss_needs_levels_dividing_the_outputs(kw, match):
    base = dict(loss="quantile", output_size=3)
    with pytest.raises(ValueError, match=match):
        _core.ModelConfig(**{**base, **kw})
    assert _core.ModelConfig(loss="quantile", quantiles=[0.5]).output_size == 1
    levels = [j / 100 for j in range(1, 100)]  # 99 levels: the most
    assert _core.ModelConfig(output_size=99, loss="quantile", quantiles=levels).quantiles == levels


def test_model_config_switches_to_the_quantile_loss_one_field_at_a_time():
    """Other losses ignore (but check) the levels, so the fields can be set in turn."""
    c = _core.ModelConfig("lstm", 2, 3, 1, 1)
    c.quantiles = [0.1, 0.9]
    assert c.loss == "mse" and c.quantiles == [0.1, 0.9]
    with pytest.raises(ValueError, match="multiple"):
        c.loss = "quantile"
    c.output_size = 4
    c.loss = "quantile"
    assert c == _core.ModelConfig("lstm", 2, 3, 1, 4, loss="quantile", quantiles=[0.1, 0.9])
    with pytest.raises(ValueError, match="at least one"):
        c.quantiles = []
    assert c.quantiles == [0.1, 0.9]


def test_model_config_attributes_dict_pickle_repr_equality():
    c = _core.ModelConfig("cifg", 3, 4, 2, 2, dropout=0.5)
    c.hidden_size = 6
    c.cell = "rnn"
    assert c.hidden_size == 6 and c.cell == "rnn_tanh"
    d = c.to_dict()
    assert all(type(v) in (str, int, bool, float, list) for v in d.values())
    assert type(d["dropout"]) is float and type(d["bias"]) is bool
    assert _core.ModelConfig.from_dict(d) == c
    assert pickle.loads(pickle.dumps(c)) == c
    assert eval(repr(c), {"ModelConfig": _core.ModelConfig}) == c
    assert c != _core.ModelConfig() and c != d  # a dict is not a config
    other = _core.ModelConfig.from_dict(d)
    other.dropout = 0.0
    assert other != c
    q = _core.ModelConfig(
        "gru", 3, 4, 1, 4, loss="quantile", quantiles=[0.25, 0.75], huber_delta=0.5
    )
    d = q.to_dict()
    assert d["quantiles"] == [0.25, 0.75] and all(type(v) is float for v in d["quantiles"])
    assert _core.ModelConfig.from_dict(d) == q
    assert _core.ModelConfig.from_dict(dict(d, quantiles=(0.25, 0.75))) == q
    assert pickle.loads(pickle.dumps(q)) == q
    assert eval(repr(q), {"ModelConfig": _core.ModelConfig}) == q
    for field, value in (("huber_delta", 0.25), ("quantiles", [0.25, 0.8])):
        other = _core.ModelConfig.from_dict(d)
        setattr(other, field, value)
        assert other != q


def test_model_config_from_dict_refuses_bad_dicts():
    d = _core.ModelConfig().to_dict()
    with pytest.raises(ValueError, match="dtype"):
        _core.ModelConfig.from_dict(dict(d, dtype="float32"))
    missing = dict(d)
    del missing["num_layers"]
    with pytest.raises(ValueError, match="num_layers"):
        _core.ModelConfig.from_dict(missing)
    with pytest.raises(ValueError, match="bias"):
        _core.ModelConfig.from_dict(dict(d, bias=1))
    with pytest.raises(ValueError, match="hidden_size"):
        _core.ModelConfig.from_dict(dict(d, hidden_size=4.0))
    with pytest.raises(ValueError):
        _core.ModelConfig.from_dict([("cell", "lstm")])


def test_model_config_fields_describe_the_schema():
    fields = _core.ModelConfig.FIELDS
    default = _core.ModelConfig().to_dict()
    assert [f[0] for f in fields] == list(default)
    for name, typ, value in fields:
        assert type(value) is typ and value == default[name]
    assert [f[0] for f in _core.OptimConfig.FIELDS] == list(_core.OptimConfig().to_dict())


CONFIGS = [
    dict(cell="lstm", input_size=3, hidden_size=5, num_layers=1, output_size=2),
    dict(cell="gru", input_size=3, hidden_size=5, num_layers=2, output_size=2, bidirectional=True),
    dict(
        cell="lstm_peephole",
        input_size=2,
        hidden_size=4,
        num_layers=2,
        output_size=3,
        return_sequences=True,
        dropout=0.3,
    ),
    dict(
        cell="cell_as_input",
        input_size=4,
        hidden_size=3,
        num_layers=3,
        output_size=1,
        bidirectional=True,
        return_sequences=True,
    ),
    dict(
        cell="ungated",
        input_size=2,
        hidden_size=6,
        num_layers=1,
        output_size=4,
        bias=False,
        loss="softmax",
    ),
    dict(
        cell="rnn_relu",
        input_size=1,
        hidden_size=7,
        num_layers=2,
        output_size=2,
        dropout=0.5,
        loss="softmax",
    ),
    dict(
        cell="gru",
        input_size=2,
        hidden_size=5,
        num_layers=2,
        output_size=6,
        return_sequences=True,
        loss="quantile",
        quantiles=[0.1, 0.5, 0.9],
    ),
    dict(
        cell="lstm",
        input_size=3,
        hidden_size=4,
        num_layers=1,
        output_size=2,
        loss="huber",
        huber_delta=0.5,
    ),
    dict(
        cell="rnn_tanh",
        input_size=3,
        hidden_size=4,
        num_layers=1,
        output_size=2,
        bidirectional=True,
        loss="absolute_error",
    ),
]


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: kw["cell"])
def test_model_config_answers_what_the_model_says(kw):
    c = _core.ModelConfig(**kw)
    for M in MODELS:
        m = M(c)
        assert m.config == c and m.config is not m.config  # a copy
        assert c.num_params == m.num_params
        assert c.layout() == m.layout()
        assert sum(int(np.prod(s)) for _, _, s in c.layout()) == c.num_params


def test_num_params_is_exact_and_refuses_overflow():
    c = _core.ModelConfig("lstm", 3, 2**14, 2, 7, bidirectional=True)
    assert isinstance(c.num_params, int)
    assert c.num_params == sum(int(np.prod(s)) for _, _, s in c.layout())
    assert c.num_params > 2**31
    for kw in (
        dict(hidden_size=2**40),
        dict(output_size=2**62),
        dict(input_size=2**62),
        dict(num_layers=2**62, hidden_size=2**10),
    ):
        with pytest.raises(MemoryError):
            _ = _core.ModelConfig("lstm", **{"input_size": 1, "hidden_size": 3, **kw}).num_params
    with pytest.raises(MemoryError, match="TiB"):  # too large to build: refused, not built
        _core.ModelConfig("lstm", 1, 3, 2**40).layout()
    with pytest.raises(MemoryError):
        _core.ModelConfig("lstm", 1, 2**40, 2).workspace_elements(1, 1, True)
    # counts need no network: a billion layers are counted at once
    assert _core.ModelConfig("lstm", 1, 3, 10**9).workspace_elements(32, 100, True) > 10**12


def test_recurrent_counts_without_building():
    for cell in _core.CELLS:
        for L, bias in ((1, True), (3, False)):
            for R in (_core.Recurrent32, _core.Recurrent64):
                assert R.count_params(cell, 4, 5, L, bias) == R(cell, 4, 5, L, bias).num_params
    assert _core.Recurrent64.count_params("rnn", 2, 3) == 3 * 2 + 3 * 3 + 2 * 3
    with pytest.raises(ValueError, match="hidden_size"):
        _core.Recurrent64.count_params("lstm", 2, 0)
    with pytest.raises(MemoryError):
        _core.Recurrent64.count_params("lstm", 2, 2**40)


# ------------------------------------------------------------------------------------------
# OptimConfig
# ------------------------------------------------------------------------------------------
def test_optim_config_defaults_and_round_trips():
    o = _core.OptimConfig()
    assert o.to_dict() == dict(
        solver="adam",
        lr=1e-3,
        alpha=0.0,
        momentum=0.9,
        nesterov=True,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        max_grad_norm=0.0,
        batch_size=32,
        shuffle=True,
        seed=0,
    )
    o = _core.OptimConfig(solver="sgd", lr=0.5, batch_size=7, seed=2**63 + 5, shuffle=False)
    assert (o.solver, o.lr, o.batch_size, o.seed, o.shuffle) == ("sgd", 0.5, 7, 2**63 + 5, False)
    assert _core.OptimConfig.from_dict(o.to_dict()) == o
    assert pickle.loads(pickle.dumps(o)) == o
    with pytest.raises(TypeError):  # keyword-only
        _core.OptimConfig("sgd")


@pytest.mark.parametrize(
    "field, value",
    [
        ("solver", "lbfgs"),
        ("lr", -1.0),
        ("lr", float("nan")),
        ("alpha", -0.1),
        ("momentum", 1.5),
        ("beta1", 1.0),
        ("beta2", -0.5),
        ("eps", float("inf")),
        ("max_grad_norm", float("nan")),
        ("batch_size", 0),
        ("batch_size", 3.0),
        ("batch_size", True),
        ("shuffle", 1),
        ("nesterov", "yes"),
        ("seed", -1),
        ("seed", 2**64),
    ],
)
def test_optim_config_refuses_a_bad_value_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        _core.OptimConfig(**{field: value})
    o = _core.OptimConfig()
    with pytest.raises(ValueError, match=field):
        setattr(o, field, value)
    assert o == _core.OptimConfig()


# ------------------------------------------------------------------------------------------
# cells
# ------------------------------------------------------------------------------------------
def test_cell_info_names_blocks_and_keep():
    assert _core.CELL_ALIASES == {"rnn": "rnn_tanh"}
    assert nn.CELLS == tuple(_core.CELLS) and _network.CELL_ALIASES == _core.CELL_ALIASES
    keep = {
        "lstm": "f",
        "gru": "z",
        "rnn_tanh": None,
        "rnn_relu": None,
        "lstm_peephole": "f",
        "lstm_1997": "1",
        "cifg": "1-i",
        "no_input_gate": "f",
        "no_output_gate": "f",
        "no_input_activation": "f",
        "no_output_activation": "f",
        "ungated": None,
        "cell_as_input": "f",
    }
    for cell in _core.CELLS:
        info = _core.cell_info(cell)
        assert info["blocks"] == diagnostics.GATE_BLOCKS[cell]
        assert len(info["blocks"]) in (0, info["gates"])
        if info["blocks"]:
            assert info["blocks"] == ref.gate_blocks(cell)
        assert info["keep"] == keep[cell]
        assert info["extra"] == (1 if cell == "gru" else 0)
    assert _core.cell_info("rnn") == _core.cell_info("rnn_tanh")
    with pytest.raises(ValueError, match="cell must be one of"):
        _core.cell_info("transformer")


# ------------------------------------------------------------------------------------------
# workspace sizes: what the core says it will hold is what it holds
# ------------------------------------------------------------------------------------------
def _data(rng, c, N, T, dtype):
    X = rng.standard_normal((N, T, c.input_size)).astype(dtype)
    lengths = rng.integers(1, T + 1, N).astype(np.int64)
    lengths[::4] = T  # every minibatch of 4 (unshuffled) has a full-length sequence
    seq = c.return_sequences
    if c.loss != "softmax":  # a quantile head has output_size / Q targets
        width = c.output_size // len(c.quantiles) if c.loss == "quantile" else c.output_size
        Y = rng.standard_normal((N, T, width) if seq else (N, width))
    else:
        Y = rng.integers(0, c.output_size, (N, T) if seq else (N,))
    return X, lengths, Y.astype(dtype), np.ones(N, dtype)


WORKSPACE_CONFIGS = CONFIGS + [
    dict(cell="lstm", input_size=8, hidden_size=64, num_layers=2, output_size=2),  # 2 parts
    dict(
        cell="no_output_gate",
        input_size=3,
        hidden_size=4,
        num_layers=1,
        output_size=1,
        return_sequences=True,
        bidirectional=True,
        dropout=0.1,
    ),
]


@pytest.mark.parametrize("kw", WORKSPACE_CONFIGS, ids=lambda kw: kw["cell"])
@pytest.mark.parametrize("M", MODELS, ids=["f32", "f64"])
def test_model_workspace_is_what_the_config_says(M, kw):
    rng = np.random.default_rng(0)
    c = _core.ModelConfig(**kw)
    dtype = np.float32 if M is _core.Model32 else np.float64
    N, T = 24, 9
    X, lengths, Y, sw = _data(rng, c, N, T, dtype)
    p = rng.uniform(-0.3, 0.3, c.num_params).astype(dtype)

    m = M(c)  # predict: in chunks of at most PREDICT_CHUNK
    out = np.empty((N, T, c.output_size) if c.return_sequences else (N, c.output_size), dtype)
    m.predict(p, X, lengths, out)
    assert m.allocated_elements() == c.workspace_elements(N, T, False)

    m = M(c)  # one epoch of minibatches of 4 (ragged lengths, one full-length in each)
    optim = _core.OptimConfig(batch_size=4, shuffle=False)
    m.train_epoch(p.copy(), np.zeros_like(p), np.zeros_like(p), 0, X, lengths, Y, sw, optim)
    assert m.allocated_elements() == c.workspace_elements(4, T, True)
    m.predict(p, X[:4], lengths[:4], out[:4])  # a call on no more sequences grows nothing
    assert m.allocated_elements() == c.workspace_elements(4, T, True)

    # the loss and its gradient over the whole set as one batch: a training minibatch's
    # workspace without the epoch's own buffers (gradient, gathered batch, dropout masks)
    m = M(c)
    m.loss_and_grad(p, X, lengths, Y, sw, 0.0, np.empty_like(p))
    want = c.workspace_elements(N, T, True)
    assert 0.75 * want <= m.allocated_elements() <= want

    assert c.workspace_elements(0, T, True) == 0 == c.workspace_elements(N, 0, False)
    with pytest.raises(ValueError):
        c.workspace_elements(-1, T, True)


ROLLOUT_CONFIGS = [
    kw for kw in WORKSPACE_CONFIGS if not kw.get("bidirectional") and not kw.get("return_sequences")
]


@pytest.mark.parametrize("kw", ROLLOUT_CONFIGS, ids=lambda kw: kw["cell"])
@pytest.mark.parametrize("M", MODELS, ids=["f32", "f64"])
def test_rollout_workspace_is_what_the_config_says(M, kw):
    rng = np.random.default_rng(2)
    c = _core.ModelConfig(**kw)
    dtype = np.float32 if M is _core.Model32 else np.float64
    N, T, horizon = 13, 6, 5
    X, lengths, _, _ = _data(rng, c, N, T, dtype)
    p = rng.uniform(-0.3, 0.3, c.num_params).astype(dtype)
    m = M(c)
    out = np.empty((N, horizon, c.output_size), dtype)
    m.rollout(p, X, lengths, horizon, None, [(0, 0)], out)
    want = c.workspace_elements(N, T, False, rollout=True)
    assert m.allocated_elements() == want > c.workspace_elements(N, T, False)
    m.predict(p, X, lengths, np.empty((N, c.output_size), dtype))  # grows nothing
    m.rollout(
        p, X, lengths, 2 * horizon, None, None, np.empty((N, 2 * horizon, c.output_size), dtype)
    )
    assert m.allocated_elements() == want  # nor does a longer horizon
    chunk = _core.PREDICT_CHUNK
    assert c.workspace_elements(3 * chunk, T, False, rollout=True) == c.workspace_elements(
        chunk, T, False, rollout=True
    )
    with pytest.raises(ValueError, match="exclude"):
        c.workspace_elements(N, T, True, rollout=True)


def test_predict_workspace_is_one_chunk():
    c = _core.ModelConfig("gru", 2, 3)
    chunk = _core.PREDICT_CHUNK
    assert c.workspace_elements(10 * chunk, 5, False) == c.workspace_elements(chunk, 5, False)
    m = _core.Model64(c)
    X = np.zeros((chunk + 3, 5, 2))
    m.predict(np.zeros(c.num_params), X, None, np.empty((chunk + 3, 1)))
    assert m.allocated_elements() == c.workspace_elements(chunk + 3, 5, False)


@pytest.mark.parametrize("cell", _core.CELLS)
def test_layer_workspace_is_what_the_layer_says(cell):
    rng = np.random.default_rng(1)
    for L, (B, T, H) in ((1, (3, 5, 7)), (2, (24, 30, 40))):  # the second: two parts
        layer = nn.Recurrent(4, H, num_layers=L, cell=cell, dtype=np.float64, random_state=0)
        x = rng.standard_normal((B, T, 4))
        layer.forward(x, inference=True)
        assert layer._core.allocated_elements() == layer._core.workspace_elements(B, T, False)
        layer.forward(x)
        layer.backward(rng.standard_normal((B, T, H)))
        assert layer._core.allocated_elements() == layer._core.workspace_elements(B, T, True)


# ------------------------------------------------------------------------------------------
# the type stubs
# ------------------------------------------------------------------------------------------
def _stub_names():
    """Public module-level names of _core.pyi, and each class's public names (its stub
    bases' included)."""
    path = pathlib.Path(lstm_native.__file__).with_name("_core.pyi")
    tree = ast.parse(path.read_text())
    module, classes, bases = set(), {}, {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
            classes[node.name] = names
            bases[node.name] = [
                b.value.id if isinstance(b, ast.Subscript) else getattr(b, "id", None)
                for b in node.bases
            ]
            module.add(node.name)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            module.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            module.add(node.target.id)

    def members(name):
        out = set(classes.get(name, ()))
        for b in bases.get(name, ()):
            out |= members(b)
        return out

    public = {n for n in module if not n.startswith("_")}
    return public, {
        c: {n for n in members(c) if not n.startswith("_")} for c in public if c in classes
    }


def test_stub_lists_every_public_name_and_nothing_else():
    stub_module, stub_classes = _stub_names()
    core_module = {n for n in dir(_core) if not n.startswith("_")}
    assert stub_module == core_module, (
        f"missing in the stub: {sorted(core_module - stub_module)}; "
        f"not in _core: {sorted(stub_module - core_module)}"
    )
    for name, stub_members in stub_classes.items():
        cls = getattr(_core, name)
        real = {n for n in vars(cls) if not n.startswith("_")}
        assert stub_members == real, (
            f"{name}: missing in the stub {sorted(real - stub_members)}; "
            f"not in _core {sorted(stub_members - real)}"
        )
