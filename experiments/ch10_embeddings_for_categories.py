"""Chapter 10: an MLP over learned embeddings handles categorical columns; MLPs live inside
modern architectures.

The book's claim: "Are MLPs obsolete? No; they remain strong for tabular data, embeddings, and as
components inside modern architectures."

Measured here:

1. **A table with categorical columns**, generated here (no file to ship): the sales records of
   a retailer, one row per (store, product, weekday) with two numeric columns (price, discount),
   and whether the product sold out. 200 stores and 50 products each carry a hidden taste
   vector (2 numbers); the chance to sell out rises with the agreement of the store's and the
   product's vectors, with the discount, and on weekends. The ids themselves say nothing in
   order (store 17 is not "between" 16 and 18), and most (store, product) pairs never occur in
   training, so a model must learn what each id stands for. Four models on the same 6,000 rows:
   an MLP over learned embeddings (4 numbers per store and per product, started at standard
   deviation 0.1, the scale a dense layer over one-hot columns starts at;
   :func:`jaxnn.layers.embedding`), the same MLP over one-hot columns, the same MLP over the raw
   integer codes, and a random forest of 200 trees (scikit-learn) over the codes. Asserted: the
   embedding MLP's test accuracy is within 2 points of the one-hot MLP's (a one-hot column times
   a dense layer is an embedding of the layer's width) while it spends at most a fifth of the
   parameters on the categorical columns (its tables against the one-hot MLP's first-layer
   weights on them), and at least 5 points above both the integer-code MLP and the forest.
2. **Inside a Transformer.** The parameters of one block of :func:`jaxnn.layers.
   init_transformer_block` (width 128, 4 heads, MLP 4x the width): asserted that its MLP holds at
   least 60% of them (exactly 2/3 of the weights: 8 D^2 against attention's 4 D^2).

``--quick`` uses 4,000 rows (full: 8,000) and fewer epochs; the assertions are the same.

Figure: test accuracy and parameter count of the four models; where a Transformer block's
parameters are.

Run: ``python -m experiments.ch10_embeddings_for_categories [--quick] [--out DIR]``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import Experiment, fit_config
from experiments.style import PALETTE, legend_below, panels, threshold_line
from jaxnn.data import Dataset, DatasetInfo, Splits, pipeline
from jaxnn.layers import embedding, init_embedding, init_transformer_block
from jaxnn.models import Model, build, mlp, param_count
from jaxnn.train import fit

CLAIM = (
    "Chapter 10: an MLP over learned embeddings of categorical columns matches a one-hot MLP "
    "with a fifth of the parameters on those columns and beats integer codes and a random "
    "forest; and MLPs are "
    "components of modern architectures: most of a Transformer block's parameters are its MLP."
)
STORES, PRODUCTS, WEEKDAYS = 60, 30, 7
CATEGORIES = (STORES, PRODUCTS, WEEKDAYS)
EMBED, HIDDEN = 4, (64, 64)
EMBED_STD = 0.1  # about the scale of a Glorot first layer over one-hot columns
COLUMNS = ("store", "product", "weekday", "price", "discount")


def sales_table(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The generated table: ``x`` (N, 5) float32 with the three codes then the two numbers, and
    whether the product sold out, ``y`` (N,)."""
    rng = np.random.default_rng(seed)
    taste_s = rng.standard_normal((STORES, 2))
    taste_p = rng.standard_normal((PRODUCTS, 2))
    store = rng.integers(0, STORES, rows)
    product = rng.integers(0, PRODUCTS, rows)
    weekday = rng.integers(0, WEEKDAYS, rows)
    price = rng.lognormal(2.0, 0.5, rows)
    discount = rng.uniform(0.0, 0.5, rows)
    logit = (2.0 * np.sum(taste_s[store] * taste_p[product], 1) + 4.0 * (discount - 0.25)
             + 1.0 * (weekday >= 5) - 0.5 * (np.log(price) - 2.0))  # fmt: skip
    y = (logit + rng.logistic(0.0, 0.5, rows) > 0).astype(np.int32)
    x = np.stack([store, product, weekday, price, discount], 1).astype(np.float32)
    return x, y


def _splits(x, y, name: str, n_train: int, n_val: int) -> Splits:
    cut = (n_train, n_train + n_val)
    parts = [Dataset(a, b) for a, b in zip(np.split(x, cut), np.split(y, cut), strict=True)]
    info = DatasetInfo(name=name, task="classification", input_shape=x.shape[1:],
                       num_classes=2, modality="tabular",
                       description="generated retail sales, sold out or not")  # fmt: skip
    return Splits(*parts, info)


def one_hot(x: np.ndarray) -> np.ndarray:
    """The three codes as one-hot columns beside the two numbers: (N, 257 + 2)."""
    hot = [np.eye(k, dtype=np.float32)[x[:, i].astype(int)] for i, k in enumerate(CATEGORIES)]
    return np.concatenate([*hot, x[:, 3:]], 1)


@dataclasses.dataclass(frozen=True)
class EmbeddingMLPConfig:
    categories: tuple = CATEGORIES
    dims: tuple = (EMBED, EMBED, 2)
    numeric: int = 2
    hidden: tuple = HIDDEN
    num_classes: int = 2


def embedding_mlp(cfg: EmbeddingMLPConfig) -> Model:
    """An MLP over one learned embedding per categorical column and the numeric columns."""
    head = mlp.Config(input_dim=sum(cfg.dims) + cfg.numeric, hidden=cfg.hidden,
                      num_classes=cfg.num_classes)  # fmt: skip

    def init(key):
        keys = jax.random.split(key, len(cfg.categories) + 1)
        tables = zip(keys, cfg.categories, cfg.dims, strict=False)
        params = {f"embed_{i}": init_embedding(k, n, d, stddev=EMBED_STD)
                  for i, (k, n, d) in enumerate(tables)}  # fmt: skip
        params["mlp"] = mlp.init(keys[-1], head)
        return params, {}

    def apply(params, x, *, state=None, train=False, key=None):
        codes = x[:, : len(cfg.categories)].astype(jnp.int32)  # (B, 3)
        vectors = [embedding(params[f"embed_{i}"], codes[:, i]) for i in range(codes.shape[1])]
        h = jnp.concatenate([*vectors, x[:, len(cfg.categories) :]], axis=1)  # (B, 10 + 2)
        return mlp.apply(params["mlp"], h, cfg=head)[0], {}

    return Model(name="embedding_mlp", cfg=cfg, init=init, apply=apply)


def _standardize_numbers(splits: Splits, first: int) -> Splits:
    """Standardize columns ``first:`` with training statistics; the codes stay integers."""
    mean = splits.train.x[:, first:].mean(0)
    std = splits.train.x[:, first:].std(0)

    def fix(ds):
        x = ds.x.copy()
        x[:, first:] = (x[:, first:] - mean) / std
        return Dataset(x, ds.y)

    return splits.replace(train=fix(splits.train), val=fix(splits.val),
                          test=splits.test.map(fix))  # fmt: skip


def table_models(rows: int, epochs: int) -> dict:
    from sklearn.ensemble import RandomForestClassifier

    x, y = sales_table(rows)
    n_train, n_val = int(0.7 * rows), int(0.15 * rows)
    codes = _standardize_numbers(_splits(x, y, "sales", n_train, n_val), first=3)
    hot, _ = pipeline.standardize(_splits(one_hot(x), y, "sales_one_hot", n_train, n_val))
    raw_codes, _ = pipeline.standardize(_splits(x, y, "sales_codes", n_train, n_val))
    cfg = fit_config(epochs=epochs, batch_size=64, lr=3e-3, seed=0, progress=False,
                    checkpoint=False)  # fmt: skip
    out = {}
    for name, model, data in (
        ("embeddings", embedding_mlp(EmbeddingMLPConfig()), codes),
        ("one-hot", build("mlp", hot.info, hidden=HIDDEN), hot),
        ("integer codes", build("mlp", raw_codes.info, hidden=HIDDEN), raw_codes),
    ):
        result = fit(model, data, cfg, verbose=False)
        out[name] = {"accuracy": result.summary["test_accuracy"],
                     "params": param_count(result.best_params)}  # fmt: skip
    test = codes.test.unseal("ch10: score the random forest on the codes")
    forest = RandomForestClassifier(n_estimators=200, random_state=0)
    forest.fit(np.concatenate([codes.train.x, codes.val.x]),
               np.concatenate([codes.train.y, codes.val.y]))  # fmt: skip
    nodes = int(sum(t.tree_.node_count for t in forest.estimators_))
    out["forest"] = {"accuracy": float(forest.score(test.x, test.y)), "params": nodes}
    out["majority"] = float(max(test.y.mean(), 1 - test.y.mean()))
    seen = set(zip(x[:n_train, 0].astype(int), x[:n_train, 1].astype(int), strict=True))
    pairs = zip(test.x[:, 0].astype(int), test.x[:, 1].astype(int), strict=True)
    out["unseen_pairs_in_test"] = float(np.mean([p not in seen for p in pairs]))
    return out


def transformer_share(dim: int = 128, heads: int = 4) -> dict:
    block = init_transformer_block(jax.random.PRNGKey(0), dim, heads)
    parts = {name: param_count(sub) for name, sub in block.items()}
    return {"parts": parts, "total": param_count(block)}


def draw(exp, table, share, mlp_key):
    figs, (ax, bx) = panels(2, size=(4.4, 3.8))
    names = ["embeddings", "one-hot", "integer codes", "forest"]
    colors = [PALETTE[2], PALETTE[0], PALETTE[1], PALETTE[4]]
    bars = ax.barh(names, [table[n]["accuracy"] for n in names], color=colors)
    sizes = [f"{table[n]['params']:,} {'nodes' if n == 'forest' else 'params'}" for n in names]
    ax.bar_label(bars, labels=[f"{table[n]['accuracy']:.3f} ({s})" for n, s in
                               zip(names, sizes, strict=True)])  # fmt: skip
    threshold_line(ax, table["embeddings"]["accuracy"] - 0.05,
                   "asserted: codes, forest <= emb. - 5", horizontal=False)  # fmt: skip
    ax.axvline(table["majority"], color="#7f7f7f", ls=":", label="majority class")
    ax.invert_yaxis()
    ax.set_xlim(0.4, 1.35)
    ax.set_xlabel("test accuracy (sold out?)")
    ax.set_title("Categorical columns")
    legend_below(ax)
    parts = share["parts"]
    labels = list(parts)
    bars = bx.bar(labels, [parts[k] / share["total"] for k in labels],
                  color=[PALETTE[2] if k == mlp_key else PALETTE[0] for k in labels])  # fmt: skip
    bx.bar_label(bars, fmt="%.2f")
    threshold_line(bx, 0.6, "asserted: MLP >= 0.6")
    bx.set_ylim(0, 1.0)
    bx.set_ylabel("share of the block's parameters")
    bx.set_title("Inside a Transformer block")
    bx.legend(loc="upper left")
    exp.save(
        figs,
        "embeddings.png",
        caption="Learned embeddings of store and product match one-hot columns with a fraction "
        "of the parameters and leave integer codes and the forest behind; in a Transformer "
        "block, the MLP holds two thirds of the parameters.",
        alt=[
            "Horizontal bars of test accuracy on the generated sales table for the embedding "
            "MLP, the one-hot MLP, the integer-code MLP and the random forest, with their sizes.",
            "Bars of the share of a Transformer block's parameters in each part: the MLP about "
            "two thirds, attention one third, the layer norms almost nothing.",
        ],
    )


def main(argv=None) -> None:
    exp = Experiment("ch10_embeddings_for_categories", CLAIM, argv)
    rows, epochs = (4000, 30) if exp.quick else (8000, 40)
    if exp.quick:
        exp.notes.append("--quick: 4,000 rows, 30 epochs (full: 8,000, 40)")
    table = table_models(rows, epochs)
    share = transformer_share()
    mlp_key = next(k for k in share["parts"] if "mlp" in k)
    mlp_share = share["parts"][mlp_key] / share["total"]
    cfg = EmbeddingMLPConfig()
    input_params = {
        "embeddings": sum(n * d for n, d in zip(cfg.categories, cfg.dims, strict=True)),
        "one-hot": sum(CATEGORIES) * HIDDEN[0],
    }
    exp.record(
        rows=rows,
        columns=list(COLUMNS),
        unseen_pairs_in_test=table["unseen_pairs_in_test"],
        test_accuracy={k: table[k]["accuracy"] for k in ("embeddings", "one-hot",
                                                         "integer codes", "forest")},
        parameters={k: table[k]["params"] for k in ("embeddings", "one-hot", "integer codes")},
        forest_nodes=table["forest"]["params"],
        parameters_on_categorical_columns=input_params,
        majority_class=table["majority"],
        transformer_block_parameters=share["parts"],
        transformer_mlp_share=mlp_share,
    )  # fmt: skip
    draw(exp, table, share, mlp_key)

    emb, hot = table["embeddings"], table["one-hot"]
    exp.check(
        emb["accuracy"] >= hot["accuracy"] - 0.02
        and input_params["embeddings"] <= input_params["one-hot"] / 5,
        f"embeddings score {emb['accuracy']:.3f} against one-hot's {hot['accuracy']:.3f} (within "
        f"2 points) with {input_params['embeddings']:,} parameters on the categorical columns "
        f"against {input_params['one-hot']:,} (<= a fifth)",
    )
    for other in ("integer codes", "forest"):
        exp.check(
            emb["accuracy"] >= table[other]["accuracy"] + 0.05,
            f"embeddings beat the {other} by >= 5 points ({emb['accuracy']:.3f} vs "
            f"{table[other]['accuracy']:.3f})",
        )
    exp.check(
        mlp_share >= 0.6,
        f"the MLP holds {mlp_share:.1%} of a Transformer block's parameters (>= 60%)",
    )
    exp.finish()


if __name__ == "__main__":
    main()
