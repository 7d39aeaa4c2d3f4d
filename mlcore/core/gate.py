"""The input gate: refuse images the model was not built for, with the reason in words.

Three checks, cheapest first:
1. The DICOM header (when there is one): modality CR/DX, a frontal view, a chest body part.
2. Colour: a radiograph has no colour, a photograph or a screenshot usually has.
3. Out-of-distribution distance, fitted on the training split and stored with the model version:
   class-conditional Mahalanobis distance with one shared, Ledoit-Wolf-shrunk covariance
   (Lee et al., NeurIPS 2018) on standardised features, in two feature spaces: the mean and spread
   of a middle block's activations (mixed5: texture and structure as the network sees them) and a
   32x32 standardised thumbnail (overall layout: a CT slice's round body, a page of text).
   Why this: it needs no outlier examples to train on (we have none from the hospital), its
   threshold comes from in-distribution data alone, the covariance shrinkage keeps it stable with a
   few hundred training images in 1,500 dimensions (scikit-learn's LedoitWolf), and the distance is
   deterministic and cheap (one matrix product per image) on features the network computes anyway.
4. View check (outlier exposure, Hendrycks et al., ICLR 2019), when the version was given examples to
   refuse (one folder per kind, e.g. CT/, LATERAL/): a multinomial logistic regression "frontal chest
   X-ray vs each known kind" on HOG of a 64 px thumbnail (scikit-image) and the 32x32 thumbnail. The
   distance above does not see a lateral view (its grey levels and texture are a radiograph's); its
   silhouette and edge directions differ, and a classifier shown a few laterals learns that. These
   features do not depend on the network, so the check works however well the network was trained.
   Its score is 1 - P(frontal); the reason names the most likely kind.

The limits (one per check) are set together on held-out in-distribution images: out-of-fold scores of
the training split (grouped K-fold by patient: each check fitted without a patient scores that patient)
pooled with the validation split's scores. Every check's limit is the same quantile p of its pooled
scores, with p the lowest at which the checks together refuse at most 1 - ``quantile`` of the pooled
images. Why: a 99% quantile of ~130 validation images is their second-highest score, too noisy a limit,
and one per check at 99% refuses up to three times 1%; the pooled set is six times larger and the
union is what a doctor sees. Gates fitted before this (``calibration`` "validation") keep the old
rule: distances over their validation medians, one limit at the quantile of the larger on validation.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mlcore.core.imaging import DICOM, DicomHeader, sniff_format

CHEST_MODALITIES = ("CR", "DX")
NON_FRONTAL_VIEWS = ("LL", "RL", "LAT", "LATERAL", "RLD", "LLD", "RLO", "LLO", "OBLIQUE", "DECUBITUS")
CHEST_BODY_PARTS = ("CHEST", "THORAX", "LUNG", "TORAX", "BRUST", "THORAC")
NON_SPECIFIC_BODY_PARTS = ("", "UNKNOWN", "OTHER", "NONE")
THUMBNAIL_SIDE = 32
DEFAULT_QUANTILE = 0.98  # the checks together refuse 2% of held-out frontal images (README: the sweep)
CROSS_VALIDATION_FOLDS = 5
CROSS_VALIDATED = "cross-validated"  # how the limits were set; old gate files say "validation"
COLOUR_CHROMA = 0.1  # a pixel's max-min channel difference (of 1.0) that counts as coloured
COLOUR_SHARE = 0.05  # share of coloured pixels above which an image is a colour picture
VIEW = "view"  # the view check's feature space, kept apart from the distance's
VIEW_THUMBNAIL_SIDE = 64
VIEW_REGULARISATION = 0.01  # logistic regression's C: strong, as a few dozen refuse examples face ~2,800 features
FRONTAL = "FRONTAL"
KIND_WORDS = {
    "LATERAL": "looks like a lateral view",
    "CT": "looks like a CT slice",
}
DETECTOR_WORDS = {
    "network": "what the network sees",
    "appearance": "overall appearance",
}


@dataclass
class GateVerdict:
    """Whether a reading may be shown, why not, and the figures behind the decision."""

    assessable: bool
    reason: str = ""
    figures: dict = field(default_factory=dict)


def header_refusal(header: DicomHeader) -> str:
    """The reason a DICOM header alone rules the image out, or "" when it does not.

    An absent field is no reason: the image is judged by the other checks.
    """
    modality = header.modality.strip().upper()
    if modality and modality not in CHEST_MODALITIES:
        return (
            f"The DICOM modality is {modality}, not a chest radiograph (CR or DX): "
            "this model reads only frontal chest X-rays."
        )
    view = header.view_text.strip().upper()
    words = set(re.split(r"[^A-Z]+", view))
    if view and (words & set(NON_FRONTAL_VIEWS) or "LAT" in view):
        return (
            f"The DICOM view position is {view}, not a frontal (PA or AP) view: "
            "this model reads only frontal chest X-rays."
        )
    body_part = header.body_part.strip().upper()
    if body_part not in NON_SPECIFIC_BODY_PARTS and not any(part in body_part for part in CHEST_BODY_PARTS):
        return f"The DICOM body part examined is {body_part}, not the chest: this model reads only chest X-rays."
    return ""


def colour_share(data: bytes) -> float | None:
    """Share of clearly coloured pixels of a PNG or JPEG, from a small copy; None for DICOM."""
    if sniff_format(data[:132]) in (None, DICOM):
        return None
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (256, 256))  # JPEG decodes at reduced size, cheaply
    if image.mode in ("L", "I", "I;16", "I;16B", "I;16L", "F", "1", "LA"):
        return 0.0
    image = image.convert("RGB")
    image.thumbnail((256, 256))
    rgb = np.asarray(image, dtype=np.float32) / 255.0
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    return float(np.mean(chroma > COLOUR_CHROMA))


def colour_refusal(share: float | None) -> str:
    if share is None or share <= COLOUR_SHARE:
        return ""
    return (
        f"The image is in colour ({share:.0%} of its pixels are coloured): it looks like a photograph or a "
        "screenshot, not a radiograph."
    )


def thumbnails(images: np.ndarray) -> np.ndarray:
    """(n, size, size, channels) network inputs -> (n, 32*32) thumbnails, each standardised to mean 0, sd 1.

    Standardising keeps the layout and drops overall brightness and contrast, which vary between
    scanners and say nothing about whether this is a frontal chest radiograph.
    """
    images = np.asarray(images, dtype=np.float32)
    if len(images) == 0:
        return np.zeros((0, THUMBNAIL_SIDE * THUMBNAIL_SIDE), np.float32)
    gray = images[..., 0]
    rows = []
    for picture in gray:
        small = Image.fromarray(np.ascontiguousarray(picture)).resize(
            (THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX
        )
        values = np.asarray(small, dtype=np.float32).ravel()
        rows.append((values - values.mean()) / (values.std() + 1e-6))
    return np.stack(rows)


def view_features(images: np.ndarray) -> np.ndarray:
    """(n, size, size, channels) network inputs -> HOG of a 64 px thumbnail beside the 32x32 thumbnail.

    HOG (9 orientations, 8 px cells, 2x2 blocks, L2-Hys) describes edge directions per region, the
    shape of a silhouette (one lung field and the spine at the side, or a round body) rather than
    grey levels; it is normalised per block, so exposure and contrast matter little.
    """
    from skimage.feature import hog

    images = np.asarray(images, dtype=np.float32)
    thumbs = thumbnails(images)
    rows = []
    for picture in images[..., 0]:
        small = Image.fromarray(np.ascontiguousarray(picture)).resize(
            (VIEW_THUMBNAIL_SIDE, VIEW_THUMBNAIL_SIDE), Image.Resampling.BOX
        )
        rows.append(hog(np.asarray(small), orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)))
    return np.concatenate([np.stack(rows), thumbs], axis=1).astype(np.float32) if rows else np.zeros((0, 0))


def kind_words(kind: str) -> str:
    return KIND_WORDS.get(kind.upper(), f"looks like {kind.replace('_', ' ').lower()}")


@dataclass
class ViewCheck:
    """Frontal chest X-ray vs the kinds of image the version was shown to refuse (module docstring, 4)."""

    kinds: list[str]  # the classifier's classes, FRONTAL among them
    coef: np.ndarray  # (kinds, d), on standardised features
    intercept: np.ndarray  # (kinds,)
    centre: np.ndarray  # (d,)
    spread: np.ndarray  # (d,)
    threshold: float
    quantile: float
    examples: dict[str, int]  # images per kind it learned from, frontal training images included
    validation_refused: float = 0.0

    METHOD = (
        "Multinomial logistic regression (balanced classes, C={c}) on HOG of a 64 px thumbnail and the 32x32 "
        "thumbnail: frontal training images against the examples to refuse; score 1 - P(frontal), {limit_rule}."
    )

    @classmethod
    def fit(
        cls, *, frontal: np.ndarray, refuse: dict[str, np.ndarray], quantile: float = DEFAULT_QUANTILE
    ) -> ViewCheck:
        """The classifier alone; the gate sets its limit together with the other checks'."""
        from sklearn.linear_model import LogisticRegression

        refuse = {kind.upper(): features for kind, features in refuse.items() if len(features)}
        if not refuse:
            raise ValueError("The view check needs at least one example to refuse.")
        if FRONTAL in refuse:
            raise ValueError(f"A folder of images to refuse cannot be called {FRONTAL}.")
        features = np.concatenate([frontal, *refuse.values()]).astype(np.float64)
        labels = np.array([FRONTAL] * len(frontal) + [kind for kind, rows in refuse.items() for _ in rows])
        centre, spread = features.mean(axis=0), features.std(axis=0) + 1e-6
        model = LogisticRegression(C=VIEW_REGULARISATION, class_weight="balanced", max_iter=5000)
        model.fit((features - centre) / spread, labels)
        coef, intercept = model.coef_, model.intercept_
        if len(model.classes_) == 2:  # scikit-learn keeps one row for two classes: P(second) = sigmoid(row)
            coef, intercept = np.stack([-coef[0] / 2, coef[0] / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
        return cls(
            kinds=[str(kind) for kind in model.classes_],
            coef=coef.astype(np.float32),
            intercept=intercept.astype(np.float32),
            centre=centre.astype(np.float32),
            spread=spread.astype(np.float32),
            threshold=np.inf,
            quantile=quantile,
            examples={FRONTAL: len(frontal)} | {kind: len(rows) for kind, rows in refuse.items()},
        )

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        logits = ((np.asarray(features, dtype=np.float32) - self.centre) / self.spread) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def scores(self, features: np.ndarray) -> np.ndarray:
        return 1.0 - self.probabilities(features)[:, self.kinds.index(FRONTAL)]

    def refusals(self, features: np.ndarray) -> list[str]:
        """The reason for each image: "" when it passes, else what it looks like, in words."""
        probabilities = self.probabilities(features)
        frontal = self.kinds.index(FRONTAL)
        reasons = []
        for row in probabilities:
            if 1.0 - row[frontal] <= self.threshold:
                reasons.append("")
                continue
            others = [i for i in range(len(self.kinds)) if i != frontal]
            kind = self.kinds[max(others, key=lambda i: row[i])]
            reasons.append(
                f"The image {kind_words(kind)}, not a frontal chest X-ray (the view check gives it "
                f"{row[frontal]:.0%} chance of being frontal; the gate's limits are set to refuse "
                f"{1 - self.quantile:.1%} of frontal chest X-rays): this model reads only frontal chest X-rays."
            )
        return reasons

    def summary(self, limit_rule: str) -> dict:
        return {
            "fitted": True,
            "method": self.METHOD.format(c=VIEW_REGULARISATION, limit_rule=limit_rule),
            "examples": self.examples,
            "limit": self.threshold,
            "validation_refused": self.validation_refused,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "view__kinds": np.array(self.kinds),
            "view__coef": self.coef,
            "view__intercept": self.intercept,
            "view__centre": self.centre,
            "view__spread": self.spread,
            "view__threshold": np.array(self.threshold),
            "view__quantile": np.array(self.quantile),
            "view__examples_kinds": np.array(list(self.examples)),
            "view__examples_counts": np.array(list(self.examples.values())),
            "view__validation_refused": np.array(self.validation_refused),
        }

    @classmethod
    def from_arrays(cls, arrays) -> ViewCheck | None:
        if "view__coef" not in arrays:
            return None
        return cls(
            kinds=[str(kind) for kind in arrays["view__kinds"]],
            coef=arrays["view__coef"],
            intercept=arrays["view__intercept"],
            centre=arrays["view__centre"],
            spread=arrays["view__spread"],
            threshold=float(arrays["view__threshold"]),
            quantile=float(arrays["view__quantile"]),
            examples={
                str(kind): int(count)
                for kind, count in zip(arrays["view__examples_kinds"], arrays["view__examples_counts"], strict=True)
            },
            validation_refused=float(arrays["view__validation_refused"]),
        )


VIEW_CHECK_NOT_FITTED = (
    "Not fitted: the version was given no examples to refuse (train_model or fit_input_gate --refuse-examples "
    "DIR), so headerless lateral views are not caught by the image check."
)


@dataclass
class _Detector:
    """Class-conditional Mahalanobis distance with a tied, shrunk covariance in one feature space."""

    means: np.ndarray  # (classes, d), in standardised units
    precision: np.ndarray  # (d, d)
    scale: float  # median distance of the validation split
    centre: np.ndarray  # (d,) training mean, and spread, that standardise each feature
    spread: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray) -> _Detector:
        from scipy import linalg
        from sklearn.covariance import LedoitWolf

        features = np.asarray(features, dtype=np.float64)
        centre, spread = features.mean(axis=0), features.std(axis=0) + 1e-6
        features = (features - centre) / spread
        classes = sorted(set(np.asarray(labels).tolist()))
        means = np.stack([features[labels == c].mean(axis=0) for c in classes])
        centred = np.concatenate([features[labels == c] - means[i] for i, c in enumerate(classes)])
        covariance = LedoitWolf(assume_centered=True, store_precision=False).fit(centred).covariance_
        # Shrunk, so positive definite: a Cholesky inverse, a third of the time of the pseudo-inverse
        # (an eigendecomposition) that LedoitWolf would compute, and the same matrix to rounding.
        precision = linalg.cho_solve(linalg.cho_factor(covariance, lower=True), np.eye(len(covariance)))
        return cls(
            means=means.astype(np.float32),
            precision=precision.astype(np.float32),
            scale=1.0,
            centre=centre.astype(np.float32),
            spread=spread.astype(np.float32),
        )

    def distances(self, features: np.ndarray) -> np.ndarray:
        features = (np.asarray(features, dtype=np.float32) - self.centre) / self.spread
        per_class = []
        for mean in self.means:
            centred = features - mean
            # One matrix product through BLAS: the three-operand einsum looped in plain C, ~10 ms per image.
            per_class.append(np.einsum("ij,ij->i", centred @ self.precision, centred))
        return np.sqrt(np.maximum(np.min(np.stack(per_class), axis=0), 0.0))


def held_out_folds(groups: list | np.ndarray, folds: int = CROSS_VALIDATION_FOLDS) -> list[np.ndarray]:
    """Index sets that each hold out whole patients (``groups``, None: the image is its own patient);
    none when there are fewer than two patients."""
    from sklearn.model_selection import GroupKFold

    keys = [f"image-{i}" if key is None else f"patient-{key}" for i, key in enumerate(groups)]
    count = min(folds, len(set(keys)))
    if count < 2:
        return []
    return [held for _, held in GroupKFold(n_splits=count).split(np.zeros(len(keys)), groups=keys)]


def out_of_fold_scores(fit_and_score, count: int, folds: list[np.ndarray]) -> np.ndarray:
    """Each image's score from a check fitted without its patient: ``fit_and_score(kept, held)``; empty
    when there are no folds."""
    if not folds:
        return np.zeros(0)
    scores = np.empty(count, dtype=np.float64)
    for held in folds:
        kept = np.setdiff1d(np.arange(count), held)
        scores[held] = fit_and_score(kept, held)
    return scores


def joint_limits(pooled: dict[str, np.ndarray], refuse_share: float) -> tuple[dict[str, float], float, float]:
    """One limit per check, each the same quantile p of its pooled scores, with p the lowest at which the
    checks together refuse at most ``refuse_share`` of the pooled images (refused: score above its limit).

    Returns the limits, p and the share the union refuses.
    """
    names = list(pooled)
    for p in np.linspace(1.0 - refuse_share, 1.0, 2001):
        limits = {name: float(np.quantile(pooled[name], p)) for name in names}
        refused = np.any([pooled[name] > limits[name] for name in names], axis=0)
        if refused.mean() <= refuse_share:
            return limits, float(p), float(refused.mean())
    raise AssertionError("unreachable: at p = 1 no score lies above its maximum")


@dataclass
class FeatureGate:
    """The stored out-of-distribution check of one model version (see the module docstring)."""

    detectors: dict[str, _Detector]
    threshold: float
    quantile: float
    validation_refused: float = 0.0
    view: ViewCheck | None = None
    calibration: str = "validation"  # how the limits were set: CROSS_VALIDATED, or "validation" (older files)
    limit_quantile: float | None = None  # p, the common quantile of each check's pooled scores
    calibration_images: int = 0  # held-out in-distribution images the limits were set on
    calibration_refused: float | None = None  # the share of those the gate refuses
    folds: int = 0

    METHOD = (
        "Class-conditional Mahalanobis distance (tied Ledoit-Wolf covariance, fitted on the training split) "
        "on standardised features: the mean and spread of the network's middle block (mixed5) and 32x32 "
        "standardised thumbnails. {limit_rule}"
    )
    LIMIT_RULE = (
        "Each check's limit is the {limit_quantile:.2%} quantile of its scores on {images} held-out frontal "
        "images ({folds}-fold out-of-fold scores of the training split, grouped by patient, and the validation "
        "split), the quantile at which the checks together refuse {refuse_share:.1%} of them."
    )
    OLD_LIMIT_RULE = (
        "Each distance divided by its validation median, the larger is the score; the limit is the score's "
        "{quantile:.1%} quantile on the validation split."
    )

    @classmethod
    def fit(
        cls,
        *,
        train: dict[str, np.ndarray],
        train_labels: np.ndarray,
        validation: dict[str, np.ndarray],
        quantile: float = DEFAULT_QUANTILE,
        refuse: dict[str, np.ndarray] | None = None,
        train_groups: list | np.ndarray | None = None,
        folds: int = CROSS_VALIDATION_FOLDS,
    ) -> FeatureGate:
        """Fit each check on the training split, then set the limits together on held-out images (module
        docstring). ``train_groups``: the training images' patients, so a fold holds out whole patients
        (None: every image its own). ``refuse`` (view features of examples to refuse, per kind) adds the
        view check; without it the gate has none."""
        if not 0.5 <= quantile < 1.0:
            raise ValueError(f"The gate's quantile must lie in [0.5, 1), not {quantile}.")
        train_labels = np.asarray(train_labels)
        count = len(train_labels)
        held_out = held_out_folds([None] * count if train_groups is None else list(train_groups), folds)
        detectors, pooled = {}, {}
        for name, features in train.items():
            if name == VIEW:
                continue
            features = np.asarray(features)
            detectors[name] = _Detector.fit(features, train_labels)
            out_of_fold = out_of_fold_scores(
                lambda kept, held, f=features: _Detector.fit(f[kept], train_labels[kept]).distances(f[held]),
                count,
                held_out,
            )
            pooled[name] = np.concatenate([out_of_fold, detectors[name].distances(validation[name])])
        view = None
        if refuse:
            frontal = np.asarray(train[VIEW])
            view = ViewCheck.fit(frontal=frontal, refuse=refuse, quantile=quantile)
            out_of_fold = out_of_fold_scores(
                lambda kept, held: ViewCheck.fit(frontal=frontal[kept], refuse=refuse).scores(frontal[held]),
                count,
                held_out,
            )
            pooled[VIEW] = np.concatenate([out_of_fold, view.scores(validation[VIEW])])
        limits, limit_quantile, refused = joint_limits(pooled, 1.0 - quantile)
        for name, detector in detectors.items():
            detector.scale = max(limits[name], 1e-12)  # scores are distances in units of the limit
        gate = cls(
            detectors=detectors,
            threshold=1.0,
            quantile=quantile,
            view=view,
            calibration=CROSS_VALIDATED,
            limit_quantile=limit_quantile,
            calibration_images=len(next(iter(pooled.values()))),
            calibration_refused=refused,
            folds=len(held_out),
        )
        if view is not None:
            view.threshold = limits[VIEW]
            view.validation_refused = float(np.mean(view.scores(validation[VIEW]) > view.threshold))
        gate.validation_refused = float(np.mean([not v.assessable for v in gate.verdicts(validation)]))
        return gate

    @property
    def names(self) -> list[str]:
        return list(self.detectors)

    def scores(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """(n, detectors) distances, each in units of its limit (older gates: of its validation median)."""
        return np.stack(
            [self.detectors[name].distances(features[name]) / self.detectors[name].scale for name in self.names],
            axis=1,
        )

    def verdicts(self, features: dict[str, np.ndarray]) -> list[GateVerdict]:
        """Refused by the view check (when there is one) with what the image looks like, else by the distance."""
        verdicts = []
        rows = self.scores(features)
        view_scores = self.view.scores(features[VIEW]) if self.view is not None else [None] * len(rows)
        view_reasons = self.view.refusals(features[VIEW]) if self.view is not None else [""] * len(rows)
        for row, view_score, view_reason in zip(rows, view_scores, view_reasons, strict=True):
            score = float(row.max())
            figures = {
                "score": score,
                "limit": self.threshold,
                "quantile": self.quantile,
                "per_feature_space": {name: float(value) for name, value in zip(self.names, row, strict=True)},
                "view_check": "not fitted"
                if self.view is None
                else {"score": float(view_score), "limit": self.view.threshold, "refused": bool(view_reason)},
            }
            if view_reason:  # the more specific reason, whether or not the distance refuses too
                verdicts.append(GateVerdict(False, reason=view_reason, figures=figures))
                continue
            if score <= self.threshold:
                verdicts.append(GateVerdict(True, figures=figures))
                continue
            worst = self.names[int(row.argmax())]
            verdicts.append(
                GateVerdict(
                    False,
                    reason=(
                        "The image is unlike the frontal chest X-rays this model was trained on "
                        f"(its {DETECTOR_WORDS.get(worst, worst)} is {score / self.threshold:.1f} times the "
                        f"limit, which {self._limit_words()}): it may be a CT, a lateral view, a photograph or a "
                        "document, so the model has nothing to say about it."
                    ),
                    figures=figures,
                )
            )
        return verdicts

    def _limit_words(self) -> str:
        if self.calibration == CROSS_VALIDATED:
            return f"refuses {1 - self.quantile:.1%} of frontal chest X-rays held out from fitting"
        return f"refuses {1 - self.quantile:.1%} of validation images"

    def limit_rule(self) -> str:
        if self.calibration == CROSS_VALIDATED:
            return self.LIMIT_RULE.format(
                limit_quantile=self.limit_quantile,
                images=self.calibration_images,
                folds=self.folds,
                refuse_share=1 - self.quantile,
            )
        return self.OLD_LIMIT_RULE.format(quantile=self.quantile)

    def summary(self) -> dict:
        rule = self.limit_rule()
        return {
            "method": self.METHOD.format(limit_rule=rule),
            "calibration": self.calibration,
            "quantile": self.quantile,
            "limit": self.threshold,
            "limit_quantile": self.limit_quantile,
            "calibration_images": self.calibration_images,
            "calibration_refused": self.calibration_refused,
            "folds": self.folds,
            "feature_spaces": {
                name: {"dimensions": int(d.precision.shape[0]), "classes": len(d.means), "scale": d.scale}
                for name, d in self.detectors.items()
            },
            "validation_refused": self.validation_refused,
            "view_check": self.view.summary(rule[0].lower() + rule[1:].rstrip("."))
            if self.view is not None
            else {"fitted": False},
        }

    def save(self, path: str | Path) -> None:
        arrays = {"threshold": np.array(self.threshold), "quantile": np.array(self.quantile)}
        arrays["validation_refused"] = np.array(self.validation_refused)
        arrays["names"] = np.array(self.names)
        if self.calibration == CROSS_VALIDATED:
            arrays |= {
                "calibration": np.array(self.calibration),
                "limit_quantile": np.array(self.limit_quantile),
                "calibration_images": np.array(self.calibration_images),
                "calibration_refused": np.array(self.calibration_refused),
                "folds": np.array(self.folds),
            }
        for name, detector in self.detectors.items():
            arrays[f"{name}__means"] = detector.means
            arrays[f"{name}__precision"] = detector.precision
            arrays[f"{name}__scale"] = np.array(detector.scale)
            arrays[f"{name}__centre"] = detector.centre
            arrays[f"{name}__spread"] = detector.spread
        if self.view is not None:
            arrays |= self.view.arrays()
        with open(path, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    @classmethod
    def load(cls, source) -> FeatureGate:
        with np.load(source, allow_pickle=False) as arrays:
            detectors = {
                str(name): _Detector(
                    means=arrays[f"{name}__means"],
                    precision=arrays[f"{name}__precision"],
                    scale=float(arrays[f"{name}__scale"]),
                    centre=arrays[f"{name}__centre"],
                    spread=arrays[f"{name}__spread"],
                )
                for name in arrays["names"]
            }
            return cls(
                detectors=detectors,
                threshold=float(arrays["threshold"]),
                quantile=float(arrays["quantile"]),
                validation_refused=float(arrays["validation_refused"]),
                view=ViewCheck.from_arrays(arrays),
                **cls._calibration_from(arrays),
            )

    @staticmethod
    def _calibration_from(arrays) -> dict:
        """How the limits were set; files written before the cross-validated limits have none of it."""
        if "calibration" not in arrays:
            return {}
        return {
            "calibration": str(arrays["calibration"]),
            "limit_quantile": float(arrays["limit_quantile"]),
            "calibration_images": int(arrays["calibration_images"]),
            "calibration_refused": float(arrays["calibration_refused"]),
            "folds": int(arrays["folds"]),
        }


def gate_features(pooled: np.ndarray, images: np.ndarray) -> dict[str, np.ndarray]:
    """The feature spaces the gate measures: the network's middle-block statistics, the thumbnails and
    the view check's silhouette features."""
    return {
        "network": np.asarray(pooled, dtype=np.float32),
        "appearance": thumbnails(images),
        VIEW: view_features(images),
    }


IMAGE_CHECK_UNAVAILABLE = (
    "The image check could not run: this model version has no stored out-of-distribution statistics "
    "(it was trained before the input gate existed). Only the DICOM header and colour were checked, so "
    "this reading was not screened for CT slices, lateral views or documents."
)


def screen(*, header: DicomHeader | None, colour: float | None, image_check: GateVerdict | None) -> GateVerdict:
    """One verdict from the checks that ran; ``image_check`` None means the version has no gate."""
    figures = {
        "header_checked": header is not None,
        "colour_share": colour,
        "image_check": "run" if image_check is not None else "unavailable",
    }
    reason = (header_refusal(header) if header is not None else "") or colour_refusal(colour)
    if reason:
        return GateVerdict(False, reason, figures)
    if image_check is None:
        return GateVerdict(True, figures=figures | {"warning": IMAGE_CHECK_UNAVAILABLE})
    return GateVerdict(image_check.assessable, image_check.reason, figures | image_check.figures)
