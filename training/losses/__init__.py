"""One loss per module; each is a weighted, switchable ``nn.Module`` returning (scalar, logs)."""

from training.losses._base import LossTerm, ids_to_tensor, same_id_matrix
from training.losses.contrastive import ContrastiveLoss
from training.losses.emotion_kd import EmotionKDLoss
from training.losses.matching import MatchingLoss
from training.losses.mining import (
    HardNegativeMiner,
    HardNegatives,
    dialogue_polarity,
    mine_hard_negatives,
    polarity_agreement,
    sticker_polarity,
)
from training.losses.topic import InterTopicLoss, IntraTopicLoss

__all__ = [
    "ContrastiveLoss",
    "EmotionKDLoss",
    "HardNegativeMiner",
    "HardNegatives",
    "InterTopicLoss",
    "IntraTopicLoss",
    "LossTerm",
    "MatchingLoss",
    "dialogue_polarity",
    "ids_to_tensor",
    "mine_hard_negatives",
    "polarity_agreement",
    "same_id_matrix",
    "sticker_polarity",
]
