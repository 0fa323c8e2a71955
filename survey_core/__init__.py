"""Blinded pairwise realism survey: preparation, server-side session rules, vote store, analysis.

``survey.py`` (the Gradio app and CLI) is a thin layer over this package.
"""

from .design import (
    CATCH_WRONG,
    MODES,
    REAL,
    Manifest,
    PrepareConfig,
    SurveyError,
    Trial,
    participant_order,
    prepare_survey,
)
from .session import APP_VERSION, SurveySession
from .votes import (
    VOTE_FIELDS,
    DuplicateVote,
    VoteNotSaved,
    VoteStore,
    VoteStoreError,
    repair_and_read,
)

__all__ = [
    "APP_VERSION",
    "CATCH_WRONG",
    "MODES",
    "REAL",
    "VOTE_FIELDS",
    "DuplicateVote",
    "Manifest",
    "PrepareConfig",
    "SurveyError",
    "SurveySession",
    "Trial",
    "VoteStore",
    "VoteNotSaved",
    "VoteStoreError",
    "participant_order",
    "prepare_survey",
    "repair_and_read",
]
