"""OpenP5's sequential-recommendation prompt templates (``agiresearch/OpenP5``, ``prompt.txt``).

Ten "seen" templates are used for training; evaluation uses one named template, e.g. ``seen:0`` (OpenP5's
``--test_prompt seen:0``) or ``unseen:0``, the one template never trained on. The output template of
every OpenP5 sequential prompt is ``{dataset} {target}``; we generate only ``{target}`` (the item
number) so that the trie of valid outputs is the same for every dataset name.
"""

from __future__ import annotations

SEEN_TEMPLATES: tuple[str, ...] = (
    "Considering {dataset} user_{user_id} has interacted with {dataset} items {history} . "
    "What is the next recommendation for the user ?",
    "Here is the purchase history of {dataset} user_{user_id} : {dataset} item {history} . "
    "I wonder what is the next recommended item for the user .",
    "{dataset} user_{user_id} has purchased {dataset} items {history}, predict next possible item to be "
    "bought by the user ?",
    "I find the purchase list of {dataset} user_{user_id} : {dataset} items {history} , I wonder what other "
    "itmes does the user need . Can you help me decide ?",
    "According to what items {dataset} user_{user_id} has purchased : {dataset} items {history} , Can you "
    "recommend another item to the user ?",
    "What would {dataset} user_{user_id} be likely to purchase next after buying {dataset} items {history} ?",
    "By analyzing the {dataset} user_{user_id} 's purchase of {dataset} items {history} , what is the next "
    "item expected to be bought ?",
    "Can you recommend the next item for {dataset} user_{user_id} , given the user 's purchase of {dataset} "
    "items {history} ?",
    "After buying {dataset} items {history} , what is the next item that could be recommended for {dataset} "
    "user_{user_id} ?",
    "The {dataset} user_{user_id} has bought items : {dataset} items {history} , What else do you think is "
    "necessary for the user ?",
)
UNSEEN_TEMPLATES: tuple[str, ...] = (
    "What is the top recommended item for {dataset} user_{user_id} who interacted with {dataset} item {history} ?",
)
TEMPLATES = {"seen": SEEN_TEMPLATES, "unseen": UNSEEN_TEMPLATES}
# OpenP5 joins the history with " , " (its ``--his_sep`` default).
HISTORY_SEPARATOR = " , "


def parse_prompt_choice(choice: str) -> tuple[str, int]:
    """``"seen:0"`` -> ``("seen", 0)``; one clear error for anything else."""
    kind, _, number = str(choice).partition(":")
    templates = TEMPLATES.get(kind)
    if templates is None or not number.isdigit() or int(number) >= len(templates):
        allowed = ", ".join(f"{k}:0..{len(v) - 1}" for k, v in TEMPLATES.items())
        raise ValueError(f"test_prompt '{choice}' is not a template: allowed {allowed}")
    return kind, int(number)


def render(template: str, dataset: str, user_id: int | str, history: list[str]) -> str:
    """One prompt: the template filled with the dataset name, the user and the history item numbers."""
    return template.format(dataset=dataset, user_id=user_id, history=HISTORY_SEPARATOR.join(history))
