"""scikit-learn, LightGBM and XGBoost factories for the corpus, trained here on scikit-learn's bundled
datasets (nothing downloaded). lambdafit converts them itself (skl2onnx / onnxmltools)."""

from __future__ import annotations

from typing import Any

import numpy as np

SEED = 0


def iris_named() -> tuple[np.ndarray, np.ndarray]:
    """Iris features (float32) and class names as labels."""
    from sklearn.datasets import load_iris

    bunch = load_iris()
    return bunch.data.astype(np.float32), np.asarray(bunch.target_names)[bunch.target]


def wine() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_wine

    bunch = load_wine()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


def shop_frame(rows: int = 200, seed: int = SEED) -> tuple[Any, np.ndarray]:
    """A table with a string column (colour) and two numeric ones, and yes/no labels."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "color": rng.choice(["red", "green", "blue"], rows),
            "size": rng.random(rows).astype(np.float32),
            "weight": rng.random(rows).astype(np.float32),
        }
    )
    labels = np.where((frame["color"] == "red") | (frame["size"] > 0.7), "yes", "no")
    return frame, labels


REVIEW_WORDS = {
    "pos": ["great", "fun", "moving", "clever", "warm", "excellent"],
    "neg": ["dull", "slow", "flat", "noisy", "weak", "awful"],
}
FILLER = ["the", "film", "was", "and", "plot", "a", "very", "story"]


def reviews(rows: int = 120, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(rows):
        label = "pos" if i % 2 else "neg"
        texts.append(" ".join(rng.choice(FILLER + REVIEW_WORDS[label], size=7)))
        labels.append(label)
    return np.array(texts), np.array(labels)


def column_transformer() -> tuple[Any, Any]:
    """Pipeline(ColumnTransformer(OneHotEncoder on a string column, StandardScaler), LogisticRegression)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, labels = shop_frame()
    prep = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]), ("num", StandardScaler(), ["size", "weight"])]
    )
    model = Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(frame, labels)
    return model, frame.iloc[:20]


def tfidf_text() -> tuple[Any, Any]:
    """TfidfVectorizer + LogisticRegression on short reviews: one string input, string labels."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, labels = reviews()
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, labels)
    return model, {"text": texts[:20]}


def lightgbm_wine() -> tuple[Any, Any]:
    import lightgbm

    x, y = wine()
    model = lightgbm.LGBMClassifier(n_estimators=40, num_leaves=15, verbose=-1, random_state=SEED).fit(x, y)
    return model, x[:20]


def xgboost_wine() -> tuple[Any, Any]:
    import xgboost

    x, y = wine()
    model = xgboost.XGBClassifier(n_estimators=40, max_depth=4, random_state=SEED).fit(x, y)
    return model, x[:20]


def gradient_boosting_iris() -> tuple[Any, Any]:
    """GradientBoostingClassifier with class names as labels."""
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = iris_named()
    return GradientBoostingClassifier(n_estimators=30, random_state=SEED).fit(x, y), x[:20]
