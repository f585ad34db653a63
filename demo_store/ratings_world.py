"""A second world, unlike the beauty store: a shop whose customers only rate, in bursts.

The beauty store's customers browse, cart and buy one visit every few weeks, from ten
categories. Here everything the defaults could have assumed about that is false:

- the only events are ratings (1-5), the only transaction type; no views, no carts;
- customers rate in bursts: a session of 5-40 ratings a minute or two apart, then nothing
  for days or weeks (a 24-hour holdout window would remove most of a user's history);
- no category: products have tags (multi-valued) and a release year, nothing else;
- a long-tail catalogue (Zipf popularity over many products);
- planted, learnable structure: a latent taste (tags reveal part of it), and series whose
  parts are rated in order within a session (what a sequence-aware model can learn and
  popularity cannot).

It is written as files with their own `dataset.toml` (a folder the nightly reads as its
source), so it also tests that a shop is described by its files, not by our code:

    python -m demo_store.ratings_world --preset ratings-small --out data/ratings-world

Vectorised with numpy: the only Python loop runs over sessions rounds (a user's k-th
burst), never over users, products or events.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

LATENT_DIM = 8
N_TAGS = 24
SERIES_SHARE = 0.3  # products that belong to a series of 2-5 parts
START = pd.Timestamp("2025-01-01", tz="UTC")

DATASET_TOML = """\
# The ratings world: ratings are the only events, and the transactions.
[events]
weights = { rating = 1.0 }
transaction_types = ["rating"]

[user_features]
age_band = "categorical"
country = "categorical"

[product_features]
tags = { kind = "multi", sep = "|" }
year = { kind = "numeric", bins = 5 }

[publishing]
name_column = "title"
"""


@dataclass(frozen=True)
class RatingsPreset:
    n_users: int
    n_products: int
    sessions_per_user: float  # mean bursts per user (at least one)
    months: int


RATINGS_PRESETS: dict[str, RatingsPreset] = {
    "ratings-tiny": RatingsPreset(n_users=400, n_products=300, sessions_per_user=2.0, months=6),
    "ratings-small": RatingsPreset(
        n_users=3_000, n_products=2_000, sessions_per_user=2.5, months=12
    ),
}


@dataclass
class RatingsWorld:
    users: pd.DataFrame
    products: pd.DataFrame
    events: pd.DataFrame

    def write(self, folder: Path) -> Path:
        """users.csv, products.parquet, events.csv and dataset.toml in `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.users.to_csv(folder / "users.csv", index=False)
        self.products.to_parquet(folder / "products.parquet", index=False)
        self.events.to_csv(folder / "events.csv", index=False)
        (folder / "dataset.toml").write_text(DATASET_TOML)
        return folder


def _products(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(products, latent vectors, series: (series id, part) per product, -1 alone)."""
    vectors = rng.normal(0, 1, (n, LATENT_DIM))
    # tags reveal part of the taste: each tag leans on one latent dimension
    tag_axis = rng.integers(0, LATENT_DIM, N_TAGS)
    tag_sign = rng.choice([-1.0, 1.0], N_TAGS)
    affinity = vectors[:, tag_axis] * tag_sign + rng.normal(0, 1.0, (n, N_TAGS))
    top = np.argsort(-affinity, axis=1)[:, :3]
    tags = pd.Series(["|".join(f"tag{t:02d}" for t in row) for row in np.sort(top, axis=1)])
    # series: consecutive runs of 2-5 products share a series and resemble each other
    in_series = rng.random(n) < SERIES_SHARE
    lengths = rng.integers(2, 6, n)
    series = np.full(n, -1)
    part = np.full(n, -1)
    starts = np.flatnonzero(in_series)
    taken = np.zeros(n, dtype=bool)
    for offset in range(5):  # at most five parts: a loop over parts, not over products
        at = starts + offset
        ok = (at < n) & (offset < lengths[starts]) & ~taken[np.minimum(at, n - 1)]
        series[at[ok]] = starts[ok]
        part[at[ok]] = offset
        taken[at[ok]] = True
        if offset:
            vectors[at[ok]] = 0.7 * vectors[starts[ok]] + 0.3 * vectors[at[ok]]
    popularity = rng.zipf(1.6, n).astype(float)  # the long tail
    years = rng.integers(1970, 2026, n)
    products = pd.DataFrame(
        {
            "product_id": [f"T{i:05d}" for i in range(n)],
            "title": [f"Title {i}" for i in range(n)],
            "tags": tags,
            "year": years,
        }
    )
    return products, vectors, np.stack([series, part, np.log(popularity)], axis=1)


def generate_ratings_world(preset: str = "ratings-small", seed: int = 7) -> RatingsWorld:
    """The world of `preset`, the same for the same seed."""
    spec = RATINGS_PRESETS[preset]
    rng = np.random.default_rng(seed)
    products, item_vectors, extra = _products(rng, spec.n_products)
    series, part, log_pop = extra[:, 0].astype(int), extra[:, 1].astype(int), extra[:, 2]
    taste = rng.normal(0, 1, (spec.n_users, LATENT_DIM))
    users = pd.DataFrame(
        {
            "user_id": [f"V{i:05d}" for i in range(spec.n_users)],
            # attributes weakly tied to taste (profile-only users learn a little from them)
            "age_band": np.where(
                taste[:, 0] + rng.normal(0, 1, spec.n_users) > 0, "under-35", "35-plus"
            ),
            "country": rng.choice(["NL", "DE", "FR", "ES"], spec.n_users),
        }
    )
    n_sessions = 1 + rng.poisson(spec.sessions_per_user - 1, spec.n_users)
    horizon = spec.months * 30 * 86_400
    successor = np.full(spec.n_products, -1)
    same = (series[1:] == series[:-1]) & (series[1:] >= 0) & (part[1:] == part[:-1] + 1)
    successor[:-1][same] = np.arange(1, spec.n_products)[same]

    rows: list[pd.DataFrame] = []
    seen = np.zeros((spec.n_users, spec.n_products), dtype=bool)
    first = rng.integers(0, horizon // 2, spec.n_users)
    for round_no in range(int(n_sessions.max())):  # the k-th burst of every user at once
        who = np.flatnonzero(n_sessions > round_no)
        begin = first[who] + round_no * rng.integers(3, 40, len(who)) * 86_400
        length = rng.integers(5, 41, len(who))
        scores = taste[who] @ item_vectors.T / np.sqrt(LATENT_DIM) * 1.8 + 0.6 * log_pop
        scores = np.where(seen[who], -np.inf, scores)
        gumbel = scores + rng.gumbel(size=scores.shape)
        k = int(length.max())
        picked = np.argsort(-gumbel, axis=1)[:, :k]  # preference order, no repeats
        # within a session, a series part is followed by its next part half the time
        follow = (successor[picked] >= 0) & (rng.random(picked.shape) < 0.5)
        nxt = successor[picked]
        ordered = np.where(follow, nxt, -1)
        # interleave: each pick, then (maybe) its successor, dropping repeats later
        both = np.stack([picked, ordered], axis=2).reshape(len(who), -1)
        position = np.arange(both.shape[1])[None, :].repeat(len(who), 0)
        user_row = np.repeat(who, both.shape[1])
        flat = both.ravel()
        keep = flat >= 0
        frame = pd.DataFrame(
            {"u": user_row[keep], "p": flat[keep], "pos": position.ravel()[keep]}
        ).drop_duplicates(["u", "p"], keep="first")
        frame = frame[~seen[frame["u"].to_numpy(), frame["p"].to_numpy()]]
        frame["n"] = frame.groupby("u").cumcount()
        limit = pd.Series(length, index=who)
        frame = frame[frame["n"] < frame["u"].map(limit)]
        gaps = rng.integers(20, 150, len(frame))  # seconds between ratings of a burst
        frame["t"] = frame["u"].map(pd.Series(begin, index=who)) + (
            pd.Series(gaps, index=frame.index).groupby(frame["u"]).cumsum()
        )
        affinity = np.einsum(
            "ij,ij->i", taste[frame["u"].to_numpy()], item_vectors[frame["p"].to_numpy()]
        ) / np.sqrt(LATENT_DIM)
        frame["rating"] = np.clip(
            np.round(3.2 + 1.1 * affinity + rng.normal(0, 0.7, len(frame))), 1, 5
        )
        seen[frame["u"].to_numpy(), frame["p"].to_numpy()] = True
        rows.append(frame)
    events = pd.concat(rows, ignore_index=True)
    events = events[events["t"] < horizon].sort_values(["t", "u"], kind="stable")
    events = pd.DataFrame(
        {
            "user_id": users["user_id"].to_numpy()[events["u"].to_numpy()],
            "product_id": products["product_id"].to_numpy()[events["p"].to_numpy()],
            "event_type": "rating",
            "occurred_at": (START + pd.to_timedelta(events["t"].to_numpy(), unit="s")).astype(str),
            "rating": events["rating"].astype(int).to_numpy(),
        }
    )
    return RatingsWorld(users, products, events)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo_store.ratings_world",
        description="Write the ratings world (bursts of ratings, no category) as files.",
    )
    parser.add_argument("--preset", choices=sorted(RATINGS_PRESETS), default="ratings-small")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("data/ratings-world"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    world = generate_ratings_world(args.preset, args.seed)
    world.write(args.out)
    print(
        f"wrote {args.preset} to {args.out}: {len(world.users):,} users, "
        f"{len(world.products):,} products, {len(world.events):,} ratings "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
