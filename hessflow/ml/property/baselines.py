"""scikit-learn baselines on the same features and splits as the neural networks: random forest,
support-vector regression, gradient boosting and kernel ridge (the vibration paper's comparison).
Hyper-parameters are chosen by cross-validation on the training split only."""

from __future__ import annotations

import numpy as np

from ..core.metrics import regression_metrics

BASELINES = ("rf", "svr", "gbr", "krr")


def make(name: str, seed: int = 0):
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR
    if name == "rf":
        return RandomForestRegressor(n_estimators=300, random_state=seed, n_jobs=1)
    if name == "gbr":
        return GradientBoostingRegressor(random_state=seed)
    if name == "svr":
        return GridSearchCV(make_pipeline(StandardScaler(), SVR()),
                            {"svr__C": [1, 10, 100], "svr__gamma": ["scale", 0.01, 0.1]}, cv=3)
    if name == "krr":
        return GridSearchCV(make_pipeline(StandardScaler(), KernelRidge(kernel="rbf")),
                            {"kernelridge__alpha": [1e-3, 1e-2, 1e-1],
                             "kernelridge__gamma": [1e-3, 1e-2, 1e-1]}, cv=3)
    raise ValueError(f"baseline: {name!r} is not one of {', '.join(BASELINES)}")


def evaluate(name: str, x, y, splits: dict, seed: int = 0) -> dict:
    """Fit on the training split (hyper-parameters by inner CV), metrics on every split."""
    x, y = np.asarray(x), np.asarray(y)
    model = make(name, seed).fit(x[splits["train"]], y[splits["train"]])
    return {s: regression_metrics(y[idx], model.predict(x[idx])) for s, idx in splits.items()
            if len(idx)}
