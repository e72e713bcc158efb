"""`audit` section of params.yaml: the typed config of dedup and the overlap audit (light: no heavy imports)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class AuditConfig:
    """Settings of `dedup` and `overlap_audit`.

    Attributes:
        dedup_policy: "report" (only report), "keep_one" (exclude all but the first key of each
            near-duplicate cluster) or "drop" (exclude every member of a cluster).
        hamming_threshold: a pair is a candidate when the Hamming distance of the 64-bit perceptual
            hashes is <= this.
        use_embeddings: also take as candidates the pairs whose image descriptors (blurred 8x8 colour
            thumbnails, FAISS) have cosine >= `embedding_threshold`; catches crops that move the
            pHash by 6-18 bits. Costs decoding the training images once.
        embedding_threshold: cosine threshold of the descriptor match (a range search).
        knn: cap on the descriptor neighbours in range kept per image; the images that reach it are counted
            (`capped_images` in dedup.json and overlap.json): raise it when that count is not 0.
        verify: confirm each candidate pair with the aligned pixel comparison (`verify.AlignedVerifier`);
            false counts every candidate as a duplicate (the searches alone: fast, many look-alikes).
        verify_threshold: a verified pair is a duplicate when its aligned residual is <= this.
        verify_method: "ecc" (the default): dense affine alignment (OpenCV ECC, align.EccVerifier) decides every audit
            candidate (after a 16 px screen) and the dedup candidates the pixel check scores <= 4x `verify_threshold`:
            rescale + crop + shift + small rotation together, either image the crop, with a local-difference term
            against look-alikes; 64 px thumbnails (12 KB per training image). "orb": the aligned pixel check, and ORB
            keypoints + RANSAC similarity transform for the pairs it nearly accepts (the default before; ~1/3 of the
            dedup and 1/5 of the audit time of "ecc" on the demo, 0.6 of its recall on real images). "pixel": the
            aligned pixel check alone (32 px thumbnails). See verify.verify_pairs and components/audit/README.md.
        orb_threshold: with "orb", an ORB-aligned pair is a duplicate when its residual after the alignment is <= this.
        orb_min_inliers: with "orb", RANSAC inliers a pair needs to count as aligned.
        ecc_threshold: with "ecc", an aligned pair is a duplicate when its residual over the overlap is <= this.
        crop_queries: the overlap audit also queries each eval image as 30 crops of itself (and in grey, and by a
            centre descriptor that ignores corner captions/logos): finds cropped and overlaid copies; needs
            thumbnails (`verify` or any verify_method); dedup's candidate search is unchanged. On by default.
        overlap_thresholds: per eval dataset override of `verify_threshold` (or, with `verify: false`,
            of `hamming_threshold`); set it by inspecting OUT/audit/overlap.html.
        alpha: family-wise significance level; Bonferroni divides it by the datasets audited.
        confidence: two-sided confidence of the Clopper-Pearson interval on Overlap accuracy (paper: 99.5%).
        max_overlap_rate: gate: fail when any dataset's overlap rate is above this (1.0 = never).
        max_duplicate_rate: gate: fail when the training set's near-duplicate rate is above this.
        html_pairs: closest pairs shown per dataset on the overlap HTML page.
        shift_threshold: a dataset counts as "shifted" when |All - Clean| accuracy exceeds this
            (paper: 0.1 percentage point).
    """

    dedup_policy: Literal["drop", "keep_one", "report"] = "report"
    hamming_threshold: int = 4
    use_embeddings: bool = True
    embedding_threshold: float = 0.8
    knn: int = 10
    verify: bool = True
    verify_threshold: float = 0.125
    verify_method: Literal["ecc", "orb", "pixel"] = "ecc"
    orb_threshold: float = 0.1
    orb_min_inliers: int = 8
    ecc_threshold: float = 0.12
    crop_queries: bool = True
    overlap_thresholds: Mapping[str, float] = field(default_factory=dict)
    alpha: float = 0.05
    confidence: float = 0.995
    max_overlap_rate: float = 1.0
    max_duplicate_rate: float = 1.0
    html_pairs: int = 24
    shift_threshold: float = 0.001

    def __post_init__(self) -> None:
        # the params loader hands mappings over as read-only proxies; keep a plain dict so asdict()/JSON work
        object.__setattr__(self, "overlap_thresholds", {str(k): float(v) for k, v in dict(self.overlap_thresholds).items()})
        if self.verify_method not in ("ecc", "orb", "pixel"):
            raise ValueError(f"verify_method={self.verify_method!r}: must be 'ecc', 'orb' or 'pixel'")
        if not 0 < self.ecc_threshold <= 10:
            raise ValueError(f"ecc_threshold={self.ecc_threshold}: an aligned residual, must be in (0, 10]")
        if not 0 < self.orb_threshold <= 10:
            raise ValueError(f"orb_threshold={self.orb_threshold}: an aligned residual, must be in (0, 10]")
        if self.orb_min_inliers < 3:
            raise ValueError(f"orb_min_inliers={self.orb_min_inliers}: must be >= 3 (a similarity transform needs 2 points)")
        if not 0 <= int(self.hamming_threshold) <= 32:
            raise ValueError(f"hamming_threshold: {self.hamming_threshold} out of range 0..32 (64-bit hashes)")
        if not 0 < self.verify_threshold <= 10:
            raise ValueError(f"verify_threshold={self.verify_threshold}: an aligned residual, must be in (0, 10]")
        for name, t in self.overlap_thresholds.items():
            ok = 0 < t <= 10 if self.verify else (t == int(t) and 0 <= t <= 32)
            if not ok:
                want = "a residual in (0, 10]" if self.verify else "a Hamming distance 0..32"
                raise ValueError(f"overlap_thresholds.{name}: {t} must be {want}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha={self.alpha}: must be in (0, 1)")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence={self.confidence}: must be in (0, 1)")
        if self.knn < 1:
            raise ValueError(f"knn={self.knn}: must be >= 1")
        if not -1 <= self.embedding_threshold <= 1:
            raise ValueError(f"embedding_threshold={self.embedding_threshold}: a cosine, must be in [-1, 1]")

    def threshold_for(self, dataset: str) -> float:
        """The deciding threshold for eval dataset `dataset`: aligned residual (verify) or Hamming distance."""
        default = self.verify_threshold if self.verify else self.hamming_threshold
        return float(self.overlap_thresholds.get(dataset, default))
